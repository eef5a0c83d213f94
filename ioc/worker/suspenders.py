"""The declared suspenders, installed on the RunEngine and watched, so that the worker can
say which one holds the task (`suspender_file` builds them from the device file).

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
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bluesky import RunEngine
from bluesky.utils import Msg

from ..messages import Suspended, SuspendersChanged, WorkerReport
from .suspender_kinds import MACHINERY, NOT_RUNNING, Suspender, Watched

log = logging.getLogger(__name__)

Send = Callable[[WorkerReport], None]


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
            elif new in NOT_RUNNING:
                self._release()

    def on_message(self, msg: Msg) -> None:
        """The RunEngine processes `msg` (its `msg_hook`)."""
        command = msg.command
        if command not in MACHINERY and command != "wait_for" and not (self._waiting or self._starting):
            return  # the common case, without the lock
        with self._lock:
            if command == "_start_suspender":
                self._justification = str(msg.args[2] or "")
                self._hold()
            elif command == "wait_for" and self._waits_on_suspender(msg.args[0]):
                self._waiting = True
                self._hold()
            elif command not in MACHINERY and (self._waiting or self._starting):
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

    def _changed(self, suspender: Watched) -> None:
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
