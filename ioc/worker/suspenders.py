"""Suspenders declared in the device file: checked, built on bluesky's suspender classes,
installed on the RunEngine, and watched, so that the worker can say which one holds the task.

bluesky says little about a suspension: the RunEngine is `suspending` only a moment and
then `running` while it waits for the suspender, so the hold is followed here from the
suspenders themselves (when they trip and clear), from the RunEngine's state changes and
from the messages it processes (`_start_suspender`, the `wait_for` of a suspender's event,
and the first message after that wait). Two gaps of bluesky are closed on the way: once a
suspension ends, the task waits again while another suspender is still tripped (bluesky
forgets a suspension that a second one interrupted), and a paused task resumed while a
suspender is tripped is suspended again (bluesky's `resume` does not look).
"""

from __future__ import annotations

import asyncio
import logging
import numbers
import re
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import ophyd
import ophyd_async.core
from bluesky import RunEngine
from bluesky.suspenders import (
    SuspendBoolHigh,
    SuspendBoolLow,
    SuspendCeil,
    SuspenderBase,
    SuspendFloor,
    SuspendOutBand,
    SuspendWhenOutsideBand,
)
from bluesky.utils import Msg

from ..messages import Suspended, SuspendersChanged, WorkerReport
from .devices import DeviceFileError, DeviceRegistry, SuspenderDeclaration

log = logging.getLogger(__name__)

Send = Callable[[WorkerReport], None]

KINDS = ("floor", "ceil", "bool_high", "bool_low", "in_band", "out_band")
"""The suspender kinds a declaration may name."""
_COMMON_KEYS = ("kind", "signal", "resume_after", "tripped_message")
_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "floor": ("threshold", "resume_threshold"),
    "ceil": ("threshold", "resume_threshold"),
    "bool_high": (),
    "bool_low": (),
    "in_band": ("band",),
    "out_band": ("band",),
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "floor": ("threshold",),
    "ceil": ("threshold",),
    "bool_high": (),
    "bool_low": (),
    "in_band": ("band",),
    "out_band": ("band",),
}
_SIGNAL_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_MACHINERY = frozenset({"_start_suspender", "_resume_from_suspender", "rewindable"})
"""Messages of bluesky's suspension itself: they do not end a hold."""
_NOT_RUNNING = frozenset({"idle", "pausing", "paused", "halting", "stopping", "aborting", "panicked"})


# --- bluesky's suspenders, watched ------------------------------------------------------------
class _Watched(SuspenderBase):
    """A bluesky suspender that tells `listener` when it trips, clears, and is released
    (its `resume_after` over), and remembers the events the RunEngine waits on.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.listener: Callable[[_Watched], None] = lambda suspender: None
        self.events: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()
        self.tripped_value: object = None
        self.pending = False
        """Tripped, or cleared but its `resume_after` not over: the RunEngine still waits."""
        self._generation = 0

    def __call__(self, value: Any, **kwargs: Any) -> None:
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


class _Floor(_Watched, SuspendFloor):
    pass


class _Ceil(_Watched, SuspendCeil):
    pass


class _BoolHigh(_Watched, SuspendBoolHigh):
    pass


class _BoolLow(_Watched, SuspendBoolLow):
    pass


class _InBand(_Watched, SuspendWhenOutsideBand):  # bluesky's SuspendInBand, without its warning
    pass


class _OutBand(_Watched, SuspendOutBand):
    pass


class _AsyncSignal:
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
        def on_reading(readings: dict[str, Any]) -> None:
            self._value = next(iter(readings.values()))["value"]
            callback(value=self._value)

        self._subscriptions[callback] = on_reading
        self._in_loop(self._signal.subscribe_reading, on_reading)

    def clear_sub(self, callback: Callable[..., None]) -> None:
        on_reading = self._subscriptions.pop(callback, None)
        if on_reading is not None:
            self._in_loop(self._signal.clear_sub, on_reading)

    def get(self) -> Any:
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
    suspender: _Watched | None
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


def load_suspenders(registry: DeviceRegistry, loop: asyncio.AbstractEventLoop) -> Suspenders:
    """The suspenders declared in the device file of `registry`, built on its devices
    (ophyd-async signals are watched in `loop`). A bad declaration raises `DeviceFileError`
    (`<file>:<line>: suspender '<name>': <problem>`); one on an unavailable device is kept,
    unavailable, with the reason.
    """
    suspenders = Suspenders()
    for declaration in registry.suspenders:
        suspenders.add(_build(declaration, registry, loop, suspenders.until_clear))
    return suspenders


def _build(
    declaration: SuspenderDeclaration,
    registry: DeviceRegistry,
    loop: asyncio.AbstractEventLoop,
    post_plan: Callable[[], Iterator[Msg]],
) -> Suspender:
    fields = declaration.fields

    def fail(key: str | None, problem: str) -> DeviceFileError:
        return DeviceFileError(f"{declaration.where(key)}: {problem}")

    if "kind" not in fields:
        raise fail(None, f"missing 'kind' (one of {', '.join(KINDS)})")
    kind = fields["kind"]
    if kind not in KINDS:
        raise fail("kind", f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    allowed = _COMMON_KEYS + _KIND_KEYS[kind]
    for key in fields:
        if key not in allowed:
            raise fail(key, f"unknown key {key!r} for kind {kind!r} (allowed: {', '.join(allowed)})")
    for key in ("signal", *_REQUIRED[kind]):
        if key not in fields:
            raise fail(None, f"missing {key!r} (kind {kind!r} needs it)")
    path = fields["signal"]
    if not isinstance(path, str) or not _SIGNAL_PATH.fullmatch(path):
        raise fail("signal", f"'signal' must be <device>[.<attribute>...], not {path!r}")
    resume_after = _number(fields.get("resume_after", 0), lambda p: fail("resume_after", p))
    if resume_after < 0:
        raise fail("resume_after", f"'resume_after' must be >= 0 seconds, not {resume_after!r}")
    message = fields.get("tripped_message", "")
    if not isinstance(message, str):
        raise fail("tripped_message", "'tripped_message' must be a string")

    threshold = resume = low = high = 0.0
    if kind in ("floor", "ceil"):
        threshold = _number(fields["threshold"], lambda p: fail("threshold", f"'threshold' {p}"))
        resume = _number(
            fields.get("resume_threshold", threshold),
            lambda p: fail("resume_threshold", f"'resume_threshold' {p}"),
        )
        if (kind == "floor" and resume < threshold) or (kind == "ceil" and resume > threshold):
            side = "at or above" if kind == "floor" else "at or below"
            raise fail("resume_threshold", f"'resume_threshold' must be {side} 'threshold' ({threshold!r})")
    if kind in ("in_band", "out_band"):
        band = fields["band"]
        if not isinstance(band, list) or len(band) != 2:
            raise fail("band", "'band' must be [low, high]")
        low, high = (_number(edge, lambda p: fail("band", f"'band' {p}")) for edge in band)
        if not low < high:
            raise fail("band", f"'band' must be [low, high] with low < high, not {band!r}")

    describe = _describer(kind, path, threshold, resume, low, high)
    entry = Suspender(declaration.name, kind, path, resume_after, message, describe, None)
    signal = _signal(declaration, registry, loop, path)
    if isinstance(signal, str):  # unavailable
        entry.error = f"{declaration.where('signal')}: {signal}"
        log.error("%s", entry.error)
        return entry
    options: dict[str, Any] = {"sleep": resume_after, "post_plan": post_plan, "tripped_message": message}
    with warnings.catch_warnings():  # SuspendOutBand warns that it is deprecated
        warnings.simplefilter("ignore")
        if kind == "floor":
            entry.suspender = _Floor(signal, threshold, resume_thresh=resume, **options)
        elif kind == "ceil":
            entry.suspender = _Ceil(signal, threshold, resume_thresh=resume, **options)
        elif kind == "bool_high":
            entry.suspender = _BoolHigh(signal, **options)
        elif kind == "bool_low":
            entry.suspender = _BoolLow(signal, **options)
        elif kind == "in_band":
            entry.suspender = _InBand(signal, low, high, **options)
        else:
            entry.suspender = _OutBand(signal, low, high, **options)
    return entry


def _number(value: object, fail: Callable[[str], DeviceFileError]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(f"must be a number, not {value!r}")
    return float(value)


def _signal(
    declaration: SuspenderDeclaration,
    registry: DeviceRegistry,
    loop: asyncio.AbstractEventLoop,
    path: str,
) -> object | str:
    """The signal `path` names, or why it cannot be watched now (its device is unavailable)."""
    device_name, *attributes = path.split(".")
    unavailable = registry.unavailable()
    if device_name in unavailable:
        return f"device {device_name!r} is unavailable"
    available = registry.available()
    if device_name not in available:
        names = ", ".join(sorted([*available, *unavailable])) or "none"
        raise DeviceFileError(
            f"{declaration.where('signal')}: unknown device {device_name!r} (the file declares: {names})"
        )
    target: object = available[device_name]
    for depth, attribute in enumerate(attributes):
        try:
            target = getattr(target, attribute)
        except AttributeError:
            owner = ".".join([device_name, *attributes[:depth]])
            raise DeviceFileError(
                f"{declaration.where('signal')}: {owner!r} has no signal {attribute!r}"
            ) from None
    if isinstance(target, ophyd.signal.Signal):
        return target
    if isinstance(target, ophyd_async.core.SignalR):
        return _AsyncSignal(target, loop)
    raise DeviceFileError(
        f"{declaration.where('signal')}: {path!r} is not a readable signal ({type(target).__name__})"
    )


def _describer(
    kind: str, signal: str, threshold: float, resume: float, low: float, high: float
) -> Callable[[object], str]:
    """How a suspender of `kind` says why `value` trips it."""

    def describe(value: object) -> str:
        shown = _shown(value)
        try:
            if kind == "floor":
                if value < threshold:  # type: ignore[operator]
                    return f"{signal} {shown} < {_shown(threshold)}"
                return f"{signal} {shown} < {_shown(resume)} (resume threshold)"
            if kind == "ceil":
                if value > threshold:  # type: ignore[operator]
                    return f"{signal} {shown} > {_shown(threshold)}"
                return f"{signal} {shown} > {_shown(resume)} (resume threshold)"
        except TypeError:
            return f"{signal} {shown}"
        if kind == "bool_high":
            return f"{signal} is high ({shown})"
        if kind == "bool_low":
            return f"{signal} is low ({shown})"
        where = "outside" if kind == "in_band" else "inside"
        return f"{signal} {shown} {where} ({_shown(low)}, {_shown(high)})"

    return describe


def _shown(value: object) -> str:
    """A value as a reason shows it: floats to 6 significant digits (3.2, 10.0)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    return repr(float(f"{float(value):.6g}"))


# --- the watch ----------------------------------------------------------------------------
class Suspenders:
    """The declared suspenders, installed on one RunEngine, and whether one holds its task.

    Reports (once `start`ed): `SuspendersChanged` when one trips or clears, `Suspended(reason)`
    when the task is held and `Suspended("")` when it goes on (or is paused or ended).
    """

    def __init__(self) -> None:
        self._entries: list[Suspender] = []
        self._lock = threading.RLock()
        self._send: Send | None = None
        self._run_engine: RunEngine | None = None
        self._settled: asyncio.Event | None = None  # set when a suspender is released
        self._holding = False
        self._waiting = False  # the RunEngine waits on a suspender now
        self._starting = False  # a task began while a suspender was tripped
        self._justification = ""
        self._shown = ""
        self._listed: list[dict[str, Any]] = []  # the catalog the IOC was last told

    def add(self, entry: Suspender) -> None:
        """Watch `entry` too (before `install`)."""
        self._entries.append(entry)
        if entry.suspender is not None:
            entry.suspender.listener = self._changed

    @property
    def entries(self) -> list[Suspender]:
        """The declared suspenders, in file order."""
        return list(self._entries)

    def catalog(self) -> list[dict[str, Any]]:
        """What `SUSPENDERS` shows: name, signal, kind, tripped (and availability)."""
        return [entry.entry() for entry in self._entries]

    def install(self, run_engine: RunEngine) -> None:
        """Install every available suspender on `run_engine` (each then watches its signal)."""
        self._run_engine = run_engine
        self._settled = asyncio.Event()
        for entry in self._entries:
            if entry.suspender is not None:
                run_engine.install_suspender(entry.suspender)

    def start(self, send: Send, shown: list[dict[str, Any]]) -> None:
        """Report through `send` from now on; `shown` is the catalog the IOC has."""
        with self._lock:
            self._send, self._listed = send, shown
            self._list()

    # --- what the RunEngine does (its state hook and message hook) --------------------------
    def on_state(self, new: str, old: str) -> None:
        """The RunEngine's state changed (reported before the state itself)."""
        with self._lock:
            if new == "suspending":
                self._hold()
            elif new == "running" and old == "idle" and self._tripped():
                self._starting = True  # bluesky makes the plan wait first
                self._hold()
            elif new == "running" and old == "paused" and self._tripped():
                self._suspend_again()
            elif new in _NOT_RUNNING:
                self._release()

    def on_message(self, msg: Msg) -> None:
        """The RunEngine processes `msg` (its `msg_hook`)."""
        command = msg.command
        if command not in _MACHINERY and command != "wait_for" and not (self._waiting or self._starting):
            return  # the common case, without the lock
        with self._lock:
            if command == "_start_suspender":
                self._justification = str(msg.args[2] or "")
                self._hold()
            elif command == "wait_for" and self._waits_on_suspender(msg.args[0]):
                self._waiting = True
                self._hold()
            elif command not in _MACHINERY and (self._waiting or self._starting):
                self._release()

    def until_clear(self) -> Iterator[Msg]:
        """A suspension's `post_plan`: go on only once no suspender is pending."""
        if any(entry.pending for entry in self._entries):
            yield Msg("wait_for", None, [self._all_clear])

    async def _all_clear(self) -> None:
        settled = self._settled
        assert settled is not None
        while any(entry.pending for entry in self._entries):
            settled.clear()
            await settled.wait()

    # --- internals (lock held) ----------------------------------------------------------------
    def _tripped(self) -> bool:
        return any(entry.tripped for entry in self._entries)

    def _waits_on_suspender(self, factories: Sequence[object]) -> bool:
        return any(
            factory == self._all_clear or any(entry.holds(factory) for entry in self._entries)
            for factory in factories
        )

    def _suspend_again(self) -> None:
        """A paused task resumes while a suspender is tripped: bluesky would let it run."""
        run_engine = self._run_engine
        if run_engine is not None:
            reasons = "; ".join(entry.reason() for entry in self._entries if entry.tripped)
            run_engine.request_suspend(self._all_clear, justification=reasons)

    def _changed(self, suspender: _Watched) -> None:
        """A suspender tripped, cleared or was released (any thread)."""
        with self._lock:
            self._list()
            self._show()
        settled, run_engine = self._settled, self._run_engine
        if not suspender.pending and settled is not None and run_engine is not None:
            run_engine.loop.call_soon_threadsafe(settled.set)

    def _list(self) -> None:
        listed = self.catalog()
        if listed != self._listed and self._send is not None:
            self._listed = listed
            self._send(SuspendersChanged(listed))

    def _hold(self) -> None:
        self._holding = True
        self._show()

    def _release(self) -> None:
        self._holding = self._waiting = self._starting = False
        self._justification = ""
        self._show()

    def _show(self) -> None:
        reason = ""
        if self._holding:
            pending = [entry for entry in self._entries if entry.pending]
            reason = "; ".join(entry.reason() for entry in pending)
            # None pending (just released, or a plan's own suspender): keep what is shown.
            reason = reason or self._shown or self._justification or "a suspender holds the task"
        if reason != self._shown and self._send is not None:
            self._shown = reason
            self._send(Suspended(reason))
