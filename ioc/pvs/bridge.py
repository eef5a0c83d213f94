"""Carries worker reports from the worker's threads onto the server's event loop, in order."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..documents import RunProgress
from ..models import Task, TaskOutcome, WorkerState

if TYPE_CHECKING:
    from .ioc import BlueskyIOC

log = logging.getLogger(__name__)

# Documents of which only the latest matters to a live view; the run store keeps them all.
STREAMED_DOCUMENTS = frozenset({"event", "event_page", "datum", "datum_page", "stream_datum"})

Update = tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]


@dataclass
class _Slot:
    """A queued update of a stream, replaceable until it is taken."""

    stream: str
    apply: Callable[..., Awaitable[None]]
    args: tuple[Any, ...]
    taken: bool = False


class LoopBridge:
    """A `WorkerListener` that never blocks its caller: each report is queued with
    `call_soon_threadsafe` and applied to the PVs by one task, in arrival order.
    Fast streams keep only their latest report while one is waiting to be applied."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ioc: BlueskyIOC) -> None:
        self._loop = loop
        self._ioc = ioc
        self._updates: asyncio.Queue[Update | asyncio.Future[None]] = asyncio.Queue()
        self._lock = threading.Lock()
        self._tail: _Slot | None = None
        self._applying = loop.create_task(self._run(), name="pv-updates")

    async def _run(self) -> None:
        """Apply updates for as long as the server runs."""
        while True:
            update = await self._updates.get()
            if isinstance(update, asyncio.Future):
                update.set_result(None)
                continue
            apply, args = update
            try:
                await apply(*args)
            except Exception:  # one bad update must not stop the PVs from moving
                log.exception("could not show %s%r", apply.__name__, args)

    async def settled(self) -> None:
        """Return once every report posted before this call has been applied."""
        barrier = self._loop.create_future()
        self._loop.call_soon_threadsafe(self._updates.put_nowait, barrier)
        await barrier

    def _post(self, apply: Callable[..., Awaitable[None]], *args: Any) -> None:
        with self._lock:
            self._tail = None
            self._loop.call_soon_threadsafe(self._updates.put_nowait, (apply, args))

    def _post_latest(self, stream: str, apply: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Post `apply(*args)`; if the last post queued is of the same `stream` and not yet
        applied, replace it instead, so a fast stream (event documents, progress, queue
        snapshots) never piles up. Only the tail is merged: nothing overtakes a report
        posted in between."""
        with self._lock:
            tail = self._tail
            if tail is not None and tail.stream == stream and not tail.taken:
                tail.args = args
                return
            self._tail = _Slot(stream, apply, args)
            self._loop.call_soon_threadsafe(self._updates.put_nowait, (self._apply_slot, (self._tail,)))

    async def _apply_slot(self, slot: _Slot) -> None:
        with self._lock:
            slot.taken = True
        await slot.apply(*slot.args)

    def state_changed(self, state: WorkerState) -> None:
        self._post(self._ioc.state_changed, state)

    def queue_changed(self, tasks: list[Task], enabled: bool) -> None:
        self._post_latest("queue", self._ioc.queue_changed, tasks, enabled)

    def task_submitted(self, task: Task) -> None:
        self._post(self._ioc.task_submitted, task)

    def task_rejected(self, error: str) -> None:
        self._post(self._ioc.task_rejected, error)

    def task_removed(self, task: Task) -> None:
        self._post(self._ioc.task_removed, task)

    def task_started(self, task: Task, started: float) -> None:
        self._post(self._ioc.task_started, task, started)

    def run_progress(self, progress: RunProgress) -> None:
        self._post_latest("run", self._ioc.run_progress, progress)

    def task_finished(self, outcome: TaskOutcome) -> None:
        self._post(self._ioc.task_finished, outcome)

    def catalog_changed(self) -> None:
        self._post(self._ioc.catalog_changed)

    def document(self, name: str, doc: dict[str, Any], task: Task | None) -> None:
        if name in STREAMED_DOCUMENTS:
            self._post_latest("document", self._ioc.show_document, name, doc, task)
        else:
            self._post(self._ioc.show_document, name, doc, task)

    def device_progress(self, views: dict[str, dict[str, Any]]) -> None:
        self._post_latest("progress", self._ioc.show_device_progress, views)

    def store_failed(self, error: str) -> None:
        self._post(self._ioc.store_failed, error)
