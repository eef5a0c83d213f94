"""A device that is built only once a file exists: keeps a worker loading for as long as a
test needs (named by import path in test device files).
"""

import time
from pathlib import Path

from ophyd.sim import SynAxis

GATE_TIMEOUT = 60.0  # seconds; then the device is built anyway


def gated_axis(name: str, gate: str) -> SynAxis:
    """A `SynAxis`, returned once the file `gate` exists (or after `GATE_TIMEOUT`)."""
    deadline = time.monotonic() + GATE_TIMEOUT
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return SynAxis(name=name)
