"""A counter that counts for a preset time when triggered (`db/devices-epics.yaml`).

Its PVs, after the device's prefix: `CNT` (write 1 to count; the put completes when the
counting is done), `TP` (the counting time, s) and `COUNTS` (the counts of the last count),
as `scripts/sim_beamline.py` serves them. A real scaler record is `ophyd.scaler.EpicsScaler`.
"""

from __future__ import annotations

from typing import Annotated as A

from bluesky.protocols import Triggerable
from ophyd import Component, Device, EpicsSignal, EpicsSignalRO
from ophyd_async.core import DEFAULT_TIMEOUT, AsyncStatus, SignalR, SignalRW, StandardReadable
from ophyd_async.core import StandardReadableFormat as Format
from ophyd_async.epics.core import EpicsDevice, PvSuffix


class Counter(Device):
    """The counter for ophyd: `trigger()` puts 1 to `CNT` and is done when that put completes."""

    count = Component(EpicsSignal, "CNT", trigger_value=1, put_complete=True, kind="omitted")
    preset_time = Component(EpicsSignal, "TP", kind="config")
    counts = Component(EpicsSignalRO, "COUNTS", kind="hinted")


class AsyncCounter(StandardReadable, EpicsDevice, Triggerable):
    """The counter for ophyd-async."""

    count: A[SignalRW[bool], PvSuffix("CNT")]
    preset_time: A[SignalRW[float], PvSuffix("TP"), Format.CONFIG_SIGNAL]
    counts: A[SignalR[int], PvSuffix("COUNTS"), Format.HINTED_UNCACHED_SIGNAL]

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Count for the preset time; done when the counter is."""
        timeout = await self.preset_time.get_value() + DEFAULT_TIMEOUT
        await self.count.set(True, timeout=timeout)
