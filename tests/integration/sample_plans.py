"""Plans the integration tests load beside the standard ones."""

from collections.abc import Generator
from typing import Any

import bluesky.plan_stubs as bps
from bluesky.plans import count
from ophyd.sim import SynGauss


def fail(message: str = "boom") -> Generator[Any, Any, None]:
    """Take a checkpoint, then raise ValueError(message)."""
    yield from bps.checkpoint()
    raise ValueError(message)


def read_peak(detector: SynGauss) -> Generator[Any, Any, None]:
    """Count a peak detector once (the parameter takes SynGauss devices only)."""
    yield from count([detector])


def hold_interpreter(seconds: int = 30) -> Generator[Any, Any, None]:
    """Hold the worker's interpreter (the GIL) in C code for `seconds`, as a long regex,
    an h5py read or a vendor call would: libc's sleep called without releasing the GIL."""
    import ctypes

    yield from bps.checkpoint()
    ctypes.PyDLL(None).sleep(seconds)
    yield from bps.null()


def kill_own_process() -> Generator[Any, Any, None]:
    """Kill the process the plan runs in, as a segfaulting driver or the OOM killer would."""
    import os
    import signal

    yield from bps.checkpoint()
    os.kill(os.getpid(), signal.SIGKILL)
    yield from bps.null()


def read_nan() -> Generator[Any, Any, None]:
    """Count a signal that reads NaN (a detector that saw nothing)."""
    from ophyd import Signal

    yield from count([Signal(name="nan_signal", value=float("nan"))])
