"""Whether a device is of a kind (a bluesky protocol or a device class), as plans need it.

`isinstance` alone is not enough for `Movable`: ophyd's read-only signals (`EpicsSignalRO`,
`SignalRO`, `SynSignalRO`, a `DerivedSignal` made read-only...) have a `set` that only
raises `ReadOnlyError`, so the protocol check passes them. They are no `Movable` here.
"""

import functools

import bluesky.protocols as bp
from ophyd.signal import EpicsSignalBase, EpicsSignalRO, Signal


def is_read_only(device: object) -> bool:
    """Whether `device` is an ophyd signal made read-only (ophyd-async's read-only signals
    have no `set` at all). A read/write EPICS signal counts as writable whatever the PV's
    access rights of the moment: those are checked when it is written.
    """
    if not isinstance(device, Signal):
        return False
    if isinstance(device, EpicsSignalBase) and not isinstance(device, EpicsSignalRO):
        return False
    return not device.write_access


def _needs_writing(kind: type) -> bool:
    """Whether `kind` is `Movable` or a protocol derived from it (`Locatable`)."""
    return bool(kind.__dict__.get("_is_protocol", False)) and bp.Movable in kind.__mro__


def is_kind(device: object, kind: type) -> bool:
    """Whether `device` is a `kind`, a read-only signal never being a `Movable`."""
    return _is_instance(device, kind) and not (_needs_writing(kind) and is_read_only(device))


def _is_instance(device: object, kind: type) -> bool:
    """`isinstance(device, kind)`, known once per device and kind: a protocol's
    `isinstance` inspects the whole class each time (device classes do not change).
    """
    try:
        return _cached_isinstance(device, kind)
    except TypeError:  # an unhashable object
        return isinstance(device, kind)


_cached_isinstance = functools.lru_cache(maxsize=4096)(isinstance)
