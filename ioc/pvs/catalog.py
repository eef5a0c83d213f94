"""`PLANS`, `PLANS:NAMES`, `DEVICES`: what can be run, and on what."""

from __future__ import annotations

from caproto import AlarmSeverity, AlarmStatus
from caproto.server import PVGroup

from ..messages import Catalog
from ..models import to_json
from .fields import JSON_BYTES, severity, strings, text, write_text
from .posting import show

MAX_PLANS = 256


class CatalogPVs(PVGroup):
    """The plans and devices the worker knows."""

    plans = text("PLANS", "Plans with their parameter schemas", max_bytes=JSON_BYTES)
    names = strings("PLANS:NAMES", "Plan names", max_items=MAX_PLANS)
    devices = text("DEVICES", "Devices with class and protocols", max_bytes=JSON_BYTES)

    async def show(self, catalog: Catalog) -> None:
        """Show `catalog`."""
        valid = severity(False)
        await write_text(self.plans, to_json(catalog.plans), **valid)
        await show(self.names, catalog.plan_names[:MAX_PLANS] or [""], **valid)
        await write_text(self.devices, to_json(catalog.devices), **valid)

    async def show_none_yet(self) -> None:
        """Show that no worker has loaded yet: empty, as a record never processed
        (severity INVALID, status UDF).
        """
        undefined = {"severity": AlarmSeverity.INVALID_ALARM, "status": AlarmStatus.UDF}
        await write_text(self.plans, "", **undefined)
        await show(self.names, [""], **undefined)
        await write_text(self.devices, "", **undefined)
