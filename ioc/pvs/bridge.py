"""Carries worker reports from the worker's threads onto the server's event loop, in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..documents import RunProgress
from ..models import Task, TaskOutcome, WorkerState

if TYPE_CHECKING:
    from .ioc import BlueskyIOC

log = logging.getLogger(__name__)

Update = tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]


class LoopBridge:
    """A `WorkerListener` that never blocks its caller: each report is queued with
    `call_soon_threadsafe` and applied to the PVs by one task, in arrival order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, ioc: BlueskyIOC) -> None:
        self._loop = loop
        self._ioc = ioc
        self._updates: asyncio.Queue[Update | asyncio.Future[None]] = asyncio.Queue()
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
        self._loop.call_soon_threadsafe(self._updates.put_nowait, (apply, args))

    def state_changed(self, state: WorkerState) -> None:
        self._post(self._ioc.state_changed, state)

    def queue_changed(self, tasks: list[Task], enabled: bool) -> None:
        self._post(self._ioc.queue_changed, tasks, enabled)

    def task_removed(self, task: Task) -> None:
        self._post(self._ioc.task_removed, task)

    def catalog_changed(self) -> None:
        self._post(self._ioc.catalog_changed)

    def task_started(self, task: Task, started: float) -> None:
        self._post(self._ioc.task_started, task, started)

    def run_progress(self, progress: RunProgress) -> None:
        self._post(self._ioc.run_progress, progress)

    def task_finished(self, outcome: TaskOutcome) -> None:
        self._post(self._ioc.task_finished, outcome)
