"""The whole PV tree of the contract, and how worker reports land on it."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from caproto.server import PVGroup, SubGroup

from ..documents import RunProgress
from ..models import Task, TaskOutcome, TaskResult, WorkerState
from ..service import WorkerService
from ..worker import FAILURES
from .bridge import LoopBridge
from .catalog import CatalogPVs
from .control import ControlPVs
from .current import CurrentPVs
from .errors import ErrorPVs
from .fields import severity, update, write_text
from .last import LastPVs
from .queue import QueuePVs
from .streams import EventType, StreamPVs
from .submit import SubmitPVs
from .worker import Busy, WorkerPVs

HISTORY_SHOWN = 50  # finished tasks on HISTORY


class BlueskyIOC(PVGroup):
    """One sub-group per table of the contract; every name is spelled out in full."""

    worker = SubGroup(WorkerPVs, prefix="")
    submission = SubGroup(SubmitPVs, prefix="")
    queue = SubGroup(QueuePVs, prefix="")
    current = SubGroup(CurrentPVs, prefix="")
    last = SubGroup(LastPVs, prefix="")
    errors = SubGroup(ErrorPVs, prefix="")
    control = SubGroup(ControlPVs, prefix="")
    catalog = SubGroup(CatalogPVs, prefix="")
    streams = SubGroup(StreamPVs, prefix="")

    def __init__(self, service: WorkerService, *, prefix: str) -> None:
        """Build the PVs of `service`; call from within the server's running event loop."""
        self.service = service
        self._running: Task | None = None
        self._percent = 0.0
        self._task_ends: dict[str, asyncio.Future[TaskOutcome | None]] = {}
        self._history: deque[TaskOutcome] = deque(maxlen=HISTORY_SHOWN)
        self._store_failed = False  # the running task's documents could not all be kept
        self._status_shown: tuple[str, bool] | None = None
        super().__init__(prefix=prefix)
        self.bridge = LoopBridge(asyncio.get_running_loop(), self)
        service.subscribe(self.bridge)

    def task_end(self, task_id: str) -> asyncio.Future[TaskOutcome | None]:
        """A future of how `task_id` ends (None: removed before it ran), for a `RUN`."""
        return self._task_ends.setdefault(task_id, asyncio.get_running_loop().create_future())

    def _ended(self, task_id: str, outcome: TaskOutcome | None) -> None:
        ended = self._task_ends.pop(task_id, None)
        if ended is not None and not ended.done():
            ended.set_result(outcome)

    async def show_start(self) -> None:
        """Show what the service starts with: catalog, pending queue, history, status."""
        await self.catalog.show(self.service.context)
        await self.queue.show(self.service.queue.snapshot(), self.service.queue.enabled)
        await self.show_history(self.service.recovery.history)
        interrupted = self.service.recovery.interrupted
        if interrupted is not None:
            await self.errors.record(interrupted.error_message or "", failure=True)
        await self.refresh_status()

    async def refresh_status(self) -> None:
        """Compose the one-line `STATUS` from what the other PVs show."""
        if self._running is None:
            line = f"{self.worker.state.value.lower()}, {self.queue.count.value} queued"
            if self.queue.enable.value != "Run":
                line += " (queue on hold)"
        else:
            task = self._running
            state = WorkerState(self.worker.state.value).lower()
            line = f"{state} {task.name} (task {task.task_id[:8]}) {self._percent:.0f}%"
        active = self.errors.is_active
        if active:
            line += f"; error: {self.errors.latest}"
        if (line, active) != self._status_shown:  # post only what changed
            self._status_shown = (line, active)
            await write_text(self.worker.status, line, **severity(active))

    # Worker reports, applied in order on the server's loop by `LoopBridge`.
    async def show_history(self, outcomes: list[TaskOutcome]) -> None:
        """Show `outcomes` (newest first) as the history."""
        self._history.extend(reversed(outcomes[:HISTORY_SHOWN]))
        await self.last.show_history(list(reversed(self._history)))

    async def state_changed(self, state: WorkerState) -> None:
        await self.worker.state.write(state)
        await self.refresh_status()
        await self.streams.post_event(EventType.STATE_CHANGED)

    async def task_submitted(self, task: Task) -> None:
        await self.streams.post_event(EventType.TASK_SUBMITTED, task)

    async def task_rejected(self, error: str) -> None:
        await self.streams.post_event(EventType.TASK_REJECTED, error=error)

    async def show_document(self, name: str, doc: dict[str, Any], task: Task | None) -> None:
        await self.streams.show_document(name, doc, task)

    async def show_device_progress(self, views: dict[str, dict[str, Any]]) -> None:
        await self.streams.show_progress(views)

    async def store_failed(self, error: str) -> None:
        self._store_failed = True
        await self.errors.record(error, failure=True)

    async def queue_changed(self, tasks: list[Task], enabled: bool) -> None:
        await self.queue.show(tasks, enabled)
        await self.refresh_status()

    async def task_removed(self, task: Task) -> None:
        if task.task_id in self._task_ends:  # someone waits on RUN: tell them why
            await self.errors.record(f"{task.task_id}: Removed: taken off the queue before it ran")
        self._ended(task.task_id, None)
        await self.streams.post_event(EventType.TASK_REMOVED, task)

    async def catalog_changed(self) -> None:
        await self.catalog.show(self.service.context)

    async def task_started(self, task: Task, started: float) -> None:
        self._running, self._percent, self._store_failed = task, 0.0, False
        await update(self.worker.busy, Busy.BUSY)
        await self.current.show_task(task, started)
        await self.refresh_status()
        await self.streams.post_event(EventType.TASK_STARTED, task)

    async def run_progress(self, progress: RunProgress) -> None:
        self._percent = progress.percent
        await self.current.show_run(progress)
        await self.refresh_status()

    async def task_finished(self, outcome: TaskOutcome) -> None:
        # Everything a client may read on seeing LAST:TASK_ID or BUSY change is set first.
        if outcome.result is TaskResult.SUCCESS:
            if self.errors.is_active and not self._store_failed:
                await self.errors.set_active(False)
        else:
            await self.errors.record(outcome.error_message or "", failure=outcome.result in FAILURES)
        self._running = None
        self._history.append(outcome)
        await self.last.show_history(list(reversed(self._history)))
        await self.current.show_task(None)
        await self.last.show(outcome)
        await update(self.worker.busy, Busy.IDLE)
        await self.refresh_status()
        self._ended(outcome.task.task_id, outcome)
        kind = EventType.TASK_FAILED if outcome.result in FAILURES else EventType.TASK_FINISHED
        await self.streams.post_event(kind, outcome.task, outcome.error)
