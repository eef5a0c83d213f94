"""Typed wrappers of the common bluesky plans and plan stubs.

Run metadata is not a parameter: it is given to the RunEngine with the request.
Every parameter declares its bounds (pydantic constraints in `Annotated`), so `PLANS`
shows them and a request outside them is refused at submit, naming the field.

Point counts are at most `MAX_POINTS` per run (default 100,000, per axis of a grid and
for the whole grid); a site raises it with the environment variable
`BLUESKY_IOC_MAX_POINTS` of the IOC.
"""

import os
from collections.abc import Sequence
from typing import Annotated

import bluesky.plan_stubs as bps
import bluesky.plans as bp
from bluesky.protocols import Movable, Readable
from bluesky.utils import MsgGenerator
from pydantic import Field

MAX_POINTS = int(os.environ.get("BLUESKY_IOC_MAX_POINTS", "100000"))

Detectors = Annotated[Sequence[Readable], Field(min_length=1, description="detectors to read")]
Points = Annotated[int, Field(ge=1, le=MAX_POINTS, description="number of points")]
Position = Annotated[float, Field(allow_inf_nan=False, description="a finite position")]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False, description="seconds, >= 0")]


def _check_grid(num1: int, num2: int) -> None:
    """Refuse a grid of more than `MAX_POINTS` points in all."""
    if num1 * num2 > MAX_POINTS:
        raise ValueError(f"num1 * num2 = {num1 * num2} points: at most {MAX_POINTS} per run")


def count(detectors: Detectors, num: Points = 1, delay: Seconds = 0.0) -> MsgGenerator[str]:
    """Read detectors a number of times.

    Takes `num` readings of all `detectors`, waiting `delay` seconds between the starts
    of consecutive readings, in one run.
    """
    return (yield from bp.count(detectors, num=num, delay=delay))


def scan(
    detectors: Detectors, motor: Movable, start: Position, stop: Position, num: Points
) -> MsgGenerator[str]:
    """Step a motor between two absolute positions, reading detectors at each step.

    Moves `motor` to `num` evenly spaced positions from `start` to `stop` (both included)
    and reads `detectors` (and the motor) at each of them, in one run.
    """
    return (yield from bp.scan(detectors, motor, start, stop, num=num))


def rel_scan(
    detectors: Detectors, motor: Movable, start: Position, stop: Position, num: Points
) -> MsgGenerator[str]:
    """Step a motor between two positions relative to where it is, reading detectors.

    Like `scan`, with `start` and `stop` taken relative to the motor's current position;
    the motor returns there at the end.
    """
    return (yield from bp.rel_scan(detectors, motor, start, stop, num=num))


def list_scan(
    detectors: Detectors,
    motor: Movable,
    points: Annotated[list[Position], Field(min_length=1, max_length=MAX_POINTS)],
) -> MsgGenerator[str]:
    """Move a motor through a list of absolute positions, reading detectors at each.

    Moves `motor` to each of `points` in turn and reads `detectors` (and the motor)
    there, in one run.
    """
    return (yield from bp.list_scan(detectors, motor, points))  # type: ignore[arg-type]


def grid_scan(
    detectors: Detectors,
    motor1: Movable,
    start1: Position,
    stop1: Position,
    num1: Points,
    motor2: Movable,
    start2: Position,
    stop2: Position,
    num2: Points,
    snake_axes: bool = False,
) -> MsgGenerator[str]:
    """Scan a 2D grid of absolute positions of two motors, reading detectors at each point.

    `motor1` is the slow axis (`num1` positions from `start1` to `stop1`), `motor2` the fast
    one (`num2` positions from `start2` to `stop2`); with `snake_axes` the fast axis
    reverses direction on every other row instead of flying back.
    """
    _check_grid(num1, num2)
    axes = (motor1, start1, stop1, num1, motor2, start2, stop2, num2)
    return (yield from bp.grid_scan(detectors, *axes, snake_axes=snake_axes))


def rel_grid_scan(
    detectors: Detectors,
    motor1: Movable,
    start1: Position,
    stop1: Position,
    num1: Points,
    motor2: Movable,
    start2: Position,
    stop2: Position,
    num2: Points,
    snake_axes: bool = False,
) -> MsgGenerator[str]:
    """Scan a 2D grid of positions relative to where two motors are, reading detectors.

    Like `grid_scan`, with the start and stop positions taken relative to the motors'
    current positions; the motors return there at the end.
    """
    _check_grid(num1, num2)
    axes = (motor1, start1, stop1, num1, motor2, start2, stop2, num2)
    return (yield from bp.rel_grid_scan(detectors, *axes, snake_axes=snake_axes))


def mv(motor: Movable, position: Position) -> MsgGenerator[None]:
    """Move a motor to an absolute position and wait until it gets there.

    Not a run: no data are recorded.
    """
    yield from bps.mv(motor, position)


def mvr(motor: Movable, distance: Position) -> MsgGenerator[None]:
    """Move a motor by a distance from where it is and wait until it gets there.

    Not a run: no data are recorded.
    """
    yield from bps.mvr(motor, distance)


def sleep(seconds: Seconds) -> MsgGenerator[None]:
    """Wait for a number of seconds.

    Not a run: nothing is moved or recorded.
    """
    yield from bps.sleep(seconds)
