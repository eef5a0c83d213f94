"""bluesky's suspender kinds, watched: each says when it trips, clears and is released;
ophyd-async signals adapted for them; `Suspender`, one declared suspender.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ophyd_async.core
from bluesky.suspenders import (
    SuspendBoolHigh,
    SuspendBoolLow,
    SuspendCeil,
    SuspenderBase,
    SuspendFloor,
    SuspendOutBand,
    SuspendWhenOutsideBand,
)

log = logging.getLogger(__name__)

MACHINERY = frozenset({"_start_suspender", "_resume_from_suspender", "rewindable"})
"""Messages of bluesky's suspension itself: they do not end a hold."""
NOT_RUNNING = frozenset({"idle", "pausing", "paused", "halting", "stopping", "aborting", "panicked"})


# --- bluesky's suspenders, watched ------------------------------------------------------------
class Watched(SuspenderBase):
    """A bluesky suspender that tells `listener` when it trips, clears, and is released
    (its `resume_after` over), and remembers the events the RunEngine waits on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listener: Callable[[Watched], None] = lambda suspender: None
        self.events: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()
        self.tripped_value: object = None
        self.pending = False
        """Tripped, or cleared but its `resume_after` not over: the RunEngine still waits."""
        self._generation = 0

    def __call__(self, value: Any, **kwargs: Any) -> None:
        """The signal's new `value` (bluesky's callback), noted before bluesky acts on it."""
        was = self.tripped
        if not was and self._trips(value):  # before bluesky has the RunEngine suspend
            self.tripped_value, self.pending = value, True
            self._generation += 1
        super().__call__(value, **kwargs)
        self._note_event()
        if self.tripped and not was:
            self.listener(self)
        elif was and not self.tripped:
            run_engine = self.RE
            if run_engine is None:
                self.pending = False
            else:  # as bluesky releases its event: after `sleep`, on the RunEngine's loop
                loop = run_engine.loop
                loop.call_soon_threadsafe(loop.call_later, self._sleep, self._released, self._generation)
            self.listener(self)

    def get_futures(self) -> tuple[list[Any], str]:
        """bluesky's: what the RunEngine waits on; the wait is noted."""
        futures, justification = super().get_futures()
        self._note_event()
        return futures, justification

    def holds(self, awaitable_factory: object) -> bool:
        """Whether `awaitable_factory` (of a `wait_for` message) waits on this suspender."""
        owner = getattr(awaitable_factory, "__self__", None)
        # Its current event may be waited on before `__call__` has noted it.
        return isinstance(owner, asyncio.Event) and (owner is self._ev or owner in self.events)

    def _trips(self, value: Any) -> bool:
        try:
            return self.RE is not None and bool(self._should_suspend(value))
        except Exception:  # bluesky's own call says why
            return False

    def _note_event(self) -> None:
        event = self._ev
        if event is not None:
            self.events.add(event)

    def _released(self, generation: int) -> None:
        if generation == self._generation and not self.tripped:
            self.pending = False
            self.listener(self)


class Floor(Watched, SuspendFloor):
    """Suspends while the signal is below a threshold."""


class Ceil(Watched, SuspendCeil):
    """Suspends while the signal is above a threshold."""


class BoolHigh(Watched, SuspendBoolHigh):
    """Suspends while the signal is high."""


class BoolLow(Watched, SuspendBoolLow):
    """Suspends while the signal is low."""


class InBand(Watched, SuspendWhenOutsideBand):  # bluesky's SuspendInBand, without its warning
    """Suspends while the signal is outside a band."""


class OutBand(Watched, SuspendOutBand):
    """Suspends while the signal is inside a band."""


class AsyncSignal:
    """An ophyd-async signal in the shape bluesky's suspenders expect of an ophyd one:
    `subscribe(callback, event_type=, run=)` calling `callback(value=...)`, `clear_sub`,
    `get` (the last value seen) and `name`.
    """

    def __init__(self, signal: ophyd_async.core.SignalR, loop: asyncio.AbstractEventLoop) -> None:
        self._signal = signal
        self._loop = loop
        self._value: Any = None
        self._subscriptions: dict[Callable[..., None], Callable[[dict[str, Any]], None]] = {}
        self.name = signal.name

    def __repr__(self) -> str:
        return repr(self._signal)

    def subscribe(self, callback: Callable[..., None], event_type: object = None, run: bool = True) -> None:
        """Call `callback(value=...)` on each new reading (ophyd's signal interface)."""
        def on_reading(readings: dict[str, Any]) -> None:
            self._value = next(iter(readings.values()))["value"]
            callback(value=self._value)

        self._subscriptions[callback] = on_reading
        self._in_loop(self._signal.subscribe_reading, on_reading)

    def clear_sub(self, callback: Callable[..., None]) -> None:
        """Stop calling `callback`."""
        on_reading = self._subscriptions.pop(callback, None)
        if on_reading is not None:
            self._in_loop(self._signal.clear_sub, on_reading)

    def get(self) -> Any:
        """The latest reading."""
        return self._value

    def _in_loop(self, function: Callable[..., None], *args: Any) -> None:
        """ophyd-async subscribes in its loop: call `function` there, and wait for it."""
        try:
            in_loop = asyncio.get_running_loop() is self._loop
        except RuntimeError:
            in_loop = False
        if in_loop:
            function(*args)
            return

        async def call() -> None:
            function(*args)

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(10.0)


# --- declarations -----------------------------------------------------------------------
@dataclass
class Suspender:
    """One declared suspender; `suspender` is None when its device is unavailable."""

    name: str
    kind: str
    signal: str
    resume_after: float
    tripped_message: str
    describe: Callable[[object], str]
    suspender: Watched | None
    error: str | None = None

    @property
    def tripped(self) -> bool:
        """Whether its signal is bad now."""
        return self.suspender is not None and self.suspender.tripped

    @property
    def pending(self) -> bool:
        """Whether the RunEngine would still wait on it: tripped, or its `resume_after` not over."""
        return self.suspender is not None and self.suspender.pending

    def holds(self, awaitable_factory: object) -> bool:
        """Whether `awaitable_factory` (of a `wait_for` message) waits on it."""
        return self.suspender is not None and self.suspender.holds(awaitable_factory)

    def entry(self) -> dict[str, Any]:
        """How `SUSPENDERS` shows it."""
        return {
            "name": self.name,
            "signal": self.signal,
            "kind": self.kind,
            "tripped": self.tripped,
            "available": self.suspender is not None,
            "error": self.error,
        }

    def reason(self) -> str:
        """Why it holds the task: `<name>: <signal> <value> < <threshold>` and the like."""
        value = self.suspender.tripped_value if self.suspender is not None else None
        text = f"{self.name}: {self.describe(value)}"
        if self.tripped_message:
            text += f" ({self.tripped_message})"
        if self.suspender is not None and not self.tripped:
            text += f", good again: resuming after {self.resume_after:g} s"
        return text


