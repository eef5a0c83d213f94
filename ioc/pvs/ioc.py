"""The whole PV tree of the contract, and how the service's reports land on it."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from caproto.server import PVGroup, SubGroup

from ..messages import (
    CatalogChanged,
    DeviceProgress,
    DocumentEmitted,
    QueueChanged,
    Report,
    RunProgressed,
    ShownState,
    StoreFailed,
    Suspended,
    SuspendersChanged,
    TaskFinished,
    TaskRejected,
    TaskRemoved,
    TaskStarted,
    TaskSubmitted,
    WorkerChanged,
)
from ..models import FAILURES, Task, TaskOutcome, TaskResult, WorkerState
from ..service import WorkerService
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
        self._handlers: dict[type, Callable[[Any], Awaitable[None]]] = {
            ShownState: self._state_shown,
            TaskSubmitted: self._task_submitted,
            TaskRejected: self._task_rejected,
            TaskRemoved: self._task_removed,
            TaskStarted: self._task_started,
            RunProgressed: self._run_progressed,
            TaskFinished: self._task_finished,
            QueueChanged: self._queue_changed,
            CatalogChanged: self._catalog_changed,
            WorkerChanged: self._worker_changed,
            DocumentEmitted: self._document,
            DeviceProgress: self._device_progress,
            StoreFailed: self._store_failure,
            Suspended: self._suspended,
            SuspendersChanged: self._suspenders_changed,
        }
        self.bridge = LoopBridge(asyncio.get_running_loop(), self)
        service.subscribe(self.bridge)

    async def show(self, report: Report) -> None:
        """Apply one report of the service (in order, on the server's loop)."""
        await self._handlers[type(report)](report)

    def task_end(self, task_id: str) -> asyncio.Future[TaskOutcome | None]:
        """A future of how `task_id` ends (None: removed before it ran), for a `RUN`."""
        return self._task_ends.setdefault(task_id, asyncio.get_running_loop().create_future())

    def _ended(self, task_id: str, outcome: TaskOutcome | None) -> None:
        ended = self._task_ends.pop(task_id, None)
        if ended is not None and not ended.done():
            ended.set_result(outcome)

    async def show_start(self) -> None:
        """Show what the service starts with: pending queue, history, status (and the
        worker, if it is up already).
        """
        await self.catalog.show(self.service.catalog)
        await self.worker.show_suspenders(self.service.catalog.suspenders)
        await self.worker.show_process(self.service.supervisor.pid, self.service.supervisor.restarts)
        await self.queue.show(self.service.queue.snapshot(), self.service.queue.enabled)
        await self.show_history(self.service.recovery.history)
        interrupted = self.service.recovery.interrupted
        if interrupted is not None:
            await self.errors.record(interrupted.error_message or "", failure=True)
        await self.worker.state.write(self.service.state)
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

    async def show_history(self, outcomes: list[TaskOutcome]) -> None:
        """Show `outcomes` (newest first) as the history."""
        self._history.extend(reversed(outcomes[:HISTORY_SHOWN]))
        await self.last.show_history(list(reversed(self._history)))

    # --- one handler per report ------------------------------------------------------------
    async def _state_shown(self, report: ShownState) -> None:
        if self.worker.state.value != report.state:
            await self.worker.state.write(report.state)
            await self.refresh_status()
            await self.streams.post_event(EventType.STATE_CHANGED)

    async def _task_submitted(self, report: TaskSubmitted) -> None:
        await self.streams.post_event(EventType.TASK_SUBMITTED, report.task)

    async def _task_rejected(self, report: TaskRejected) -> None:
        await self.streams.post_event(EventType.TASK_REJECTED, error=report.error)

    async def _document(self, report: DocumentEmitted) -> None:
        await self.streams.show_document(report.name, report.doc, self._running)

    async def _device_progress(self, report: DeviceProgress) -> None:
        await self.streams.show_progress(report.views)

    async def _store_failure(self, report: StoreFailed) -> None:
        self._store_failed = True
        await self.errors.record(report.error, failure=True)

    async def _suspended(self, report: Suspended) -> None:
        await self.worker.show_suspended(report.reason)
        await self.refresh_status()

    async def _suspenders_changed(self, report: SuspendersChanged) -> None:
        await self.worker.show_suspenders(report.suspenders)

    async def _queue_changed(self, report: QueueChanged) -> None:
        await self.queue.show(report.tasks, report.enabled)
        await self.refresh_status()

    async def _task_removed(self, report: TaskRemoved) -> None:
        task = report.task
        if task.task_id in self._task_ends:  # someone waits on RUN: tell them why
            await self.errors.record(f"{task.task_id}: Removed: taken off the queue before it ran")
        self._ended(task.task_id, None)
        await self.streams.post_event(EventType.TASK_REMOVED, task)

    async def _catalog_changed(self, report: CatalogChanged) -> None:
        await self.catalog.show(report.catalog)
        await self.worker.show_suspenders(report.catalog.suspenders)

    async def _worker_changed(self, report: WorkerChanged) -> None:
        await self.worker.show_process(report.pid, report.restarts)

    async def _task_started(self, report: TaskStarted) -> None:
        task = report.task
        self._running, self._percent, self._store_failed = task, 0.0, False
        await update(self.worker.busy, Busy.BUSY)
        await self.current.show_task(task, report.started)
        await self.refresh_status()
        await self.streams.post_event(EventType.TASK_STARTED, task)

    async def _run_progressed(self, report: RunProgressed) -> None:
        self._percent = report.progress.percent
        await self.current.show_run(report.progress)
        await self.refresh_status()

    async def _task_finished(self, report: TaskFinished) -> None:
        # Everything a client may read on seeing LAST:TASK_ID or BUSY change is set first.
        outcome = report.outcome
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
