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
