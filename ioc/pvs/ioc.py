"""The whole PV tree of the contract, and how worker reports land on it."""

from __future__ import annotations

import asyncio

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
from .fields import severity, write_text
from .last import LastPVs
from .queue import QueuePVs
from .submit import SubmitPVs
from .worker import Busy, WorkerPVs


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

    def __init__(self, service: WorkerService, *, prefix: str) -> None:
        """Build the PVs of `service`; call from within the server's running event loop."""
        self.service = service
        self._running: Task | None = None
        self._percent = 0.0
        self._task_ends: dict[str, asyncio.Future[TaskOutcome | None]] = {}
        super().__init__(prefix=prefix)
        self.bridge = LoopBridge(asyncio.get_running_loop(), self)
        service.subscribe(self.bridge)

    def task_end(self, task_id: str) -> asyncio.Future[TaskOutcome | None]:
        """A future of how `task_id` ends (None: removed before it ran)."""
        return self._task_ends.setdefault(task_id, asyncio.get_running_loop().create_future())

    def _ended(self, task_id: str, outcome: TaskOutcome | None) -> None:
        ended = self._task_ends.pop(task_id, None)
        if ended is not None and not ended.done():
            ended.set_result(outcome)

    async def show_catalog(self) -> None:
        """Show the plans, devices, pending queue and status of the service."""
        await self.catalog.show(self.service.context)
        await self.queue.show(self.service.queue.snapshot(), self.service.queue.enabled)
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
            line += f"; error: {self.errors.message.value.encode('latin-1').decode('utf-8')}"
        await write_text(self.worker.status, line, **severity(active))

    # Worker reports, applied in order on the server's loop by `LoopBridge`.
    async def state_changed(self, state: WorkerState) -> None:
        await self.worker.state.write(state)
        await self.refresh_status()

    async def queue_changed(self, tasks: list[Task], enabled: bool) -> None:
        await self.queue.show(tasks, enabled)
        await self.refresh_status()

    async def task_removed(self, task: Task) -> None:
        if task.task_id in self._task_ends:  # someone waits on RUN: tell them why
            await self.errors.record(f"{task.task_id}: Removed: taken off the queue before it ran")
        self._ended(task.task_id, None)

    async def catalog_changed(self) -> None:
        await self.catalog.show(self.service.context)

    async def task_started(self, task: Task, started: float) -> None:
        self._running, self._percent = task, 0.0
        await self.worker.busy.write(Busy.BUSY)
        await self.current.show_task(task, started)
        await self.refresh_status()

    async def run_progress(self, progress: RunProgress) -> None:
        self._percent = progress.percent
        await self.current.show_run(progress)
        await self.refresh_status()

    async def task_finished(self, outcome: TaskOutcome) -> None:
        # Everything a client may read on seeing LAST:TASK_ID or BUSY change is set first.
        if outcome.result is TaskResult.SUCCESS:
            if self.errors.is_active:
                await self.errors.set_active(False)
        else:
            await self.errors.record(outcome.error_message or "", failure=outcome.result in FAILURES)
        self._running = None
        await self.current.show_task(None)
        await self.last.show(outcome)
        await self.worker.busy.write(Busy.IDLE)
        await self.refresh_status()
        self._ended(outcome.task.task_id, outcome)
