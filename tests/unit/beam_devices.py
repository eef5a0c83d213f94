"""Devices with a settable signal for suspenders to watch, named by import path in test
device files: a storage ring (ophyd and ophyd-async) and a shutter."""

from ophyd import Component, Device, Signal
from ophyd_async.core import StandardReadable, soft_signal_rw


class Ring(Device):
    """`current` in mA, 100 at the start."""

    current = Component(Signal, value=100.0, kind="hinted")


class Shutter(Device):
    """`open`: 1 when open (the start), 0 when closed."""

    open = Component(Signal, value=1)


class AsyncRing(StandardReadable):
    """ophyd-async `current` in mA, 100 at the start."""

    def __init__(self, name: str = "") -> None:
        with self.add_children_as_readables():
            self.current = soft_signal_rw(float, initial_value=100.0)
        super().__init__(name=name)
