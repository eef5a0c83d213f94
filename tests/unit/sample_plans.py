"""Plans with every supported parameter shape, for the plan context tests.

Each plan's first message carries the arguments it was called with.
"""

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Annotated, Literal

from bluesky.plans import count  # noqa: F401  (imported plans are not this module's)
from bluesky.protocols import Locatable, Movable, Readable
from bluesky.utils import Msg, MsgGenerator
from ophyd.sim import SynGauss
from ophyd_async.core import Device
from pydantic import Field


class Color(Enum):
    RED = "red"
    BLUE = "blue"


def shapes(
    required: int,
    defaulted: float = 1.5,
    optional: int | None = None,
    either: int | str = 0,
    items: Sequence[float] = (),
    pair: tuple[int, str] = (0, ""),
    mapping: dict[str, list[int]] | None = None,
    mode: Literal["fast", "slow"] = "fast",
    color: Color = Color.RED,
    bounded: Annotated[int, Field(ge=0, le=10, description="from 0 to 10")] = 5,
    untyped=None,
    *args: int,
    **kwargs: int,
) -> MsgGenerator[None]:
    """Take one of each plain parameter shape.

    Nothing happens.
    """
    yield Msg("null", None, locals())


def devices(
    motor: Movable,
    detectors: Sequence[Readable] = (),
    maybe: Movable | None = None,
    nested: list[list[Readable]] | None = None,
    by_role: dict[str, Movable] | None = None,
    pair: tuple[Movable, Readable] | None = None,
    peak: SynGauss | None = None,
    located: Locatable[float] | None = None,
    either: Movable | float = 0.0,
    annotated: Annotated[Movable, "meta"] | None = None,
    async_device: Device | None = None,
) -> MsgGenerator[None]:
    yield Msg("null", None, locals())


def positional(first: int, /, second: int = 2) -> MsgGenerator[None]:
    yield Msg("null", None, (first, second))


def report(num: int) -> None:
    """A plain function, not a plan: the default callback."""


def with_callback(num: int = 1, callback: Callable[[int], None] = report) -> MsgGenerator[None]:
    yield Msg("null", None, (num, callback))


def _private() -> MsgGenerator[None]:
    yield Msg("null")
