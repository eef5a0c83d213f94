"""Plans the peers (and the bare RunEngine) run: bluesky's own, unchanged.

``count`` is ``bluesky.plans.count`` itself. ``scan`` is ``bluesky.plans.scan`` with
one motor behind an explicit signature: blueapi builds its parameter model from the
signature and cannot pass bluesky's ``*args``. Queueserver and the bare RunEngine use
the same wrapper so that all three run the very same plan.
"""
from collections.abc import Sequence

from bluesky import plans as bp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

count = bp.count


def scan(detectors: Sequence[Readable], motor: Movable, start: float, stop: float, num: int) -> MsgGenerator:
    """``bluesky.plans.scan(detectors, motor, start, stop, num)``."""
    return (yield from bp.scan(detectors, motor, start, stop, num))


__all__ = ["count", "scan"]
