"""The whole PV tree of the contract, and how worker reports land on it."""

from __future__ import annotations

from caproto.server import PVGroup, SubGroup

from ..documents import RunProgress
from ..models import Task, TaskOutcome, TaskResult, WorkerState
from ..service import WorkerService
from .catalog import CatalogPVs
from .current import CurrentPVs
from .errors import ErrorPVs
from .fields import severity, write_text
from .last import LastPVs
from .queue import QueuePVs
from .submit import SubmitPVs
from .worker import Busy, WorkerPVs

FAILURES = {TaskResult.FAILED, TaskResult.ABORTED, TaskResult.HALTED}


class BlueskyIOC(PVGroup):
    """One sub-group per table of the contract; every name is spelled out in full."""

    worker = SubGroup(WorkerPVs, prefix="")
    submission = SubGroup(SubmitPVs, prefix="")
    queue = SubGroup(QueuePVs, prefix="")
    current = SubGroup(CurrentPVs, prefix="")
    last = SubGroup(LastPVs, prefix="")
    errors = SubGroup(ErrorPVs, prefix="")
    catalog = SubGroup(CatalogPVs, prefix="")

    def __init__(self, service: WorkerService, *, prefix: str) -> None:
        self.service = service
        self._running: Task | None = None
        self._percent = 0.0
        super().__init__(prefix=prefix)

    async def show_catalog(self) -> None:
        """Show the plans, devices, pending queue and status of the service."""
        await self.catalog.show(self.service.context)
        await self.queue.show(self.service.queue.snapshot())
        await self.refresh_status()

    async def refresh_status(self) -> None:
        """Compose the one-line `STATUS` from what the other PVs show."""
        if self._running is None:
            line = f"idle, {self.queue.count.value} queued"
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

    async def queue_changed(self, tasks: list[Task]) -> None:
        await self.queue.show(tasks)
        await self.refresh_status()

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
        if outcome.result in FAILURES:
            await self.errors.record(outcome.error_message or "", failure=True)
        elif outcome.result is TaskResult.SUCCESS and self.errors.is_active:
            await self.errors.set_active(False)
        self._running = None
        await self.current.show_task(None)
        await self.last.show(outcome)
        await self.worker.busy.write(Busy.IDLE)
        await self.refresh_status()
