"""PyDM's pyepics `ca://` plugin, with string arrays (`QUEUE:NAMES`, `PLANS:NAMES`) shown.

pyepics hands its monitor callbacks a DBR_STRING array as a list (one element: a str),
and PyDM 1.29's plugin then fails (`TypeError` on emit) or shows one character per row.
This plugin passes them on as numpy arrays. PyDM loads it, in place of its own `ca://`
plugin, from the folders of `PYDM_DATA_PLUGINS_PATH` (see the README, "Operator screens").
PyDM registers every plugin class a plugin module's namespace holds: the stock plugin's
module is imported, not its classes, so that it is not registered again over this one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydm.data_plugins.epics_plugins import pyepics_plugin_component as pyepics


class StringArrayConnection(pyepics.Connection):
    """A `ca://` connection that delivers string arrays as arrays."""

    def send_new_value(self, value: Any = None, char_value: Any = None, *args: Any, **kwargs: Any) -> None:
        """Make a string array's value an array, then do as PyDM does."""
        if self.pv.nelm > 1 and isinstance(value, (list, str)):
            value = np.atleast_1d(np.asarray(value, dtype=str))
        super().send_new_value(value, char_value, *args, **kwargs)


class StringArrayPlugin(pyepics.PyEPICSPlugin):
    """`ca://` through pyepics, string arrays included."""

    protocol = "ca"
    connection_class = StringArrayConnection
