"""Typed wrappers of the common bluesky plans and plan stubs.

Run metadata is not a parameter: it is given to the RunEngine with the request.
"""

from collections.abc import Sequence

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator


def count(detectors: Sequence[Readable], num: int = 1, delay: float = 0.0) -> MsgGenerator[str]:
    """Read detectors a number of times.

    Takes `num` readings of all `detectors`, waiting `delay` seconds between the starts
    of consecutive readings, in one run.
    """
    return (yield from bp.count(detectors, num=num, delay=delay))


def scan(
    detectors: Sequence[Readable], motor: Movable, start: float, stop: float, num: int
) -> MsgGenerator[str]:
    """Step a motor between two absolute positions, reading detectors at each step.

    Moves `motor` to `num` evenly spaced positions from `start` to `stop` (both included)
    and reads `detectors` (and the motor) at each of them, in one run.
    """
    return (yield from bp.scan(detectors, motor, start, stop, num=num))


def rel_scan(
    detectors: Sequence[Readable], motor: Movable, start: float, stop: float, num: int
) -> MsgGenerator[str]:
    """Step a motor between two positions relative to where it is, reading detectors.

    Like `scan`, with `start` and `stop` taken relative to the motor's current position;
    the motor returns there at the end.
    """
    return (yield from bp.rel_scan(detectors, motor, start, stop, num=num))


def list_scan(
    detectors: Sequence[Readable], motor: Movable, points: list[float]
) -> MsgGenerator[str]:
    """Move a motor through a list of absolute positions, reading detectors at each.

    Moves `motor` to each of `points` in turn and reads `detectors` (and the motor)
    there, in one run.
    """
    return (yield from bp.list_scan(detectors, motor, points))  # type: ignore[arg-type]


def grid_scan(
    detectors: Sequence[Readable],
    motor1: Movable,
    start1: float,
    stop1: float,
    num1: int,
    motor2: Movable,
    start2: float,
    stop2: float,
    num2: int,
    snake_axes: bool = False,
) -> MsgGenerator[str]:
    """Scan a 2D grid of absolute positions of two motors, reading detectors at each point.

    `motor1` is the slow axis (`num1` positions from `start1` to `stop1`), `motor2` the fast
    one (`num2` positions from `start2` to `stop2`); with `snake_axes` the fast axis
    reverses direction on every other row instead of flying back.
    """
    axes = (motor1, start1, stop1, num1, motor2, start2, stop2, num2)
    return (yield from bp.grid_scan(detectors, *axes, snake_axes=snake_axes))


def rel_grid_scan(
    detectors: Sequence[Readable],
    motor1: Movable,
    start1: float,
    stop1: float,
    num1: int,
    motor2: Movable,
    start2: float,
    stop2: float,
    num2: int,
    snake_axes: bool = False,
) -> MsgGenerator[str]:
    """Scan a 2D grid of positions relative to where two motors are, reading detectors.

    Like `grid_scan`, with the start and stop positions taken relative to the motors'
    current positions; the motors return there at the end.
    """
    axes = (motor1, start1, stop1, num1, motor2, start2, stop2, num2)
    return (yield from bp.rel_grid_scan(detectors, *axes, snake_axes=snake_axes))


def mv(motor: Movable, position: float) -> MsgGenerator[None]:
    """Move a motor to an absolute position and wait until it gets there.

    Not a run: no data are recorded.
    """
    yield from bps.mv(motor, position)


def mvr(motor: Movable, distance: float) -> MsgGenerator[None]:
    """Move a motor by a distance from where it is and wait until it gets there.

    Not a run: no data are recorded.
    """
    yield from bps.mvr(motor, distance)


def sleep(seconds: float) -> MsgGenerator[None]:
    """Wait for a number of seconds.

    Not a run: nothing is moved or recorded.
    """
    yield from bps.sleep(seconds)
