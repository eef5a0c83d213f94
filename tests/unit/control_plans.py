"""Plans for tests/unit/test_control.py: long waits, cleanups, no checkpoints, failures.

`CLEANUPS` records, in order, the name of every plan whose cleanup ran; the tests
clear it before each use.
"""

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator

CLEANUPS: list[str] = []


def guarded_sleep(
    motor: Movable, seconds: float = 30.0, position: float = 5.0
) -> MsgGenerator[None]:
    """In a run, wait `seconds`; whatever happens, clean up by moving `motor` to `position`.

    The cleanup runs when the plan ends, fails, is stopped or aborted, not when halted.
    """

    def cleanup() -> MsgGenerator[None]:
        CLEANUPS.append("guarded_sleep")
        yield from bps.mv(motor, position)

    body = bpp.run_wrapper(bps.sleep(seconds), md={"plan_name": "guarded_sleep"})
    yield from bpp.finalize_wrapper(body, cleanup)


def no_checkpoint(detector: Readable, seconds: float = 30.0) -> MsgGenerator[None]:
    """In a run, forbid rewinding (no checkpoint), read `detector` once (the event says the
    checkpoint is gone), then wait `seconds`: the run cannot pause."""

    def body() -> MsgGenerator[None]:
        yield from bps.clear_checkpoint()
        yield from bps.trigger_and_read([detector])
        yield from bps.sleep(seconds)

    yield from bpp.run_wrapper(body(), md={"plan_name": "no_checkpoint"})


def explode(message: str = "boom") -> MsgGenerator[None]:
    """Fail at once with ValueError(`message`)."""
    yield from bps.null()
    raise ValueError(message)
