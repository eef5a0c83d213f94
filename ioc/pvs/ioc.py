"""The whole PV tree of the contract, and how the service's reports land on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from caproto.server import PVGroup, SubGroup

from ..messages import (
    BusChanged,
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
from ..models import FAILURES
from ..service import WorkerService
from ..service.view import WorkerView
from .bridge import LoopBridge
from .bus import BusPVs
from .catalog import CatalogPVs
from .control import ControlPVs
from .current import CurrentPVs
from .errors import ErrorPVs
from .fields import fill_record_fields, severity, update, write_text
from .last import LastPVs
from .posting import show
from .queue import QueuePVs
from .streams import EventType, StreamPVs
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
    streams = SubGroup(StreamPVs, prefix="")
    bus = SubGroup(BusPVs, prefix="")

    def __init__(self, service: WorkerService, *, prefix: str) -> None:
        """Build the PVs of `service`; call from within the server's running event loop."""
        self.service = service
        self.view = WorkerView()
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
            StoreFailed: self._nothing_more,
            Suspended: self._suspended,
            SuspendersChanged: self._suspenders_changed,
            BusChanged: self._bus_changed,
        }
        self.bridge = LoopBridge(asyncio.get_running_loop(), self)
        service.subscribe(self.bridge, batch=self.bridge.batch)

    async def show(self, report: Report) -> None:
        """Apply one report of the service (in order, on the server's loop): to the view,
        then to the PVs it changes (`summarize` writes the PVs that sum up all reports).
        """
        self.view.apply(report)
        await self._handlers[type(report)](report)

    async def summarize(self) -> None:
        """Write the error latch (`ERROR:*`) and the one-line `STATUS` as the view has them
        now (`STATUS` only if it changed).
        """
        await self.errors.show(self.view.errors)
        status = self.view.status()
        if status != self._status_shown:
            self._status_shown = status
            line, alarm = status
            await write_text(self.worker.status, line, **severity(alarm))

    async def show_start(self) -> None:
        """Show what the service starts with: pending queue, history and the last task,
        status, and the worker's catalog if it is up already (else the catalog PVs are
        INVALID/UDF until it is).
        """
        await fill_record_fields(self.pvdb)
        self.view.recovered(self.service.recovery.history, self.service.cut_short)
        if self.service.supervisor.catalog is None:  # the first worker is loading
            await self.catalog.show_none_yet()
        else:
            await self.catalog.show(self.service.catalog)
        await self.worker.show_suspenders(self.service.catalog.suspenders)
        await self.worker.show_process(self.service.supervisor.pid, self.service.supervisor.restarts)
        queue = self.service.queue
        await self.show(QueueChanged(queue.snapshot(), queue.enabled, queue.held_by))
        await self.show(ShownState(self.service.state))
        await self.summarize()
        await self.bus.show(self.service.bus_health)
        await self.last.show_history(self.view.newest_first())
        if self.view.last is not None:
            await self.last.show(self.view.last)

    async def record_error(self, message: str) -> None:
        """Show a refused request or command (`<what>: <Type>: <message>`) as the latest error."""
        self.view.errors.record(message)
        await self.summarize()

    async def acknowledge(self) -> None:
        """`ERROR:CLEAR`: the active failure is acknowledged."""
        self.view.errors.clear()
        await self.summarize()

    # --- the PVs each report changes ----------------------------------------------------------
    async def _nothing_more(self, report: Report) -> None:
        """The view's error latch and STATUS say it all."""

    async def _state_shown(self, report: ShownState) -> None:
        if self.worker.state.value != report.state:
            await show(self.worker.state, report.state)
            await self.streams.post_event(EventType.STATE_CHANGED)

    async def _task_submitted(self, report: TaskSubmitted) -> None:
        await self.streams.post_event(EventType.TASK_SUBMITTED, report.task)

    async def _task_rejected(self, report: TaskRejected) -> None:
        await self.streams.post_event(EventType.TASK_REJECTED, error=report.error)

    async def _document(self, report: DocumentEmitted) -> None:
        await self.streams.show_document(report.name, report.doc, self.view.running)

    async def _device_progress(self, report: DeviceProgress) -> None:
        await self.streams.show_progress(report.views)

    async def _suspended(self, report: Suspended) -> None:
        await self.worker.show_suspended(report.reason)

    async def _suspenders_changed(self, report: SuspendersChanged) -> None:
        await self.worker.show_suspenders(report.suspenders)

    async def _bus_changed(self, report: BusChanged) -> None:
        await self.bus.show(report)

    async def _queue_changed(self, report: QueueChanged) -> None:
        await self.queue.show(report.tasks, report.enabled)

    async def _task_removed(self, report: TaskRemoved) -> None:
        await self.streams.post_event(EventType.TASK_REMOVED, report.task)

    async def _catalog_changed(self, report: CatalogChanged) -> None:
        await self.catalog.show(report.catalog)
        await self.worker.show_suspenders(report.catalog.suspenders)

    async def _worker_changed(self, report: WorkerChanged) -> None:
        await self.worker.show_process(report.pid, report.restarts)

    async def _task_started(self, report: TaskStarted) -> None:
        await update(self.worker.busy, Busy.BUSY)
        await self.current.show_task(report.task, report.started)
        await self.streams.post_event(EventType.TASK_STARTED, report.task)

    async def _run_progressed(self, report: RunProgressed) -> None:
        await self.current.show_run(report.progress)

    async def _task_finished(self, report: TaskFinished) -> None:
        # Everything a client may read on seeing LAST:TASK_ID or BUSY change is set first.
        outcome = report.outcome
        await self.summarize()
        await self.last.show_history(self.view.newest_first())
        await self.current.show_task(None)
        await self.streams.show_progress({})  # no status is waited on any more
        await self.last.show(outcome)
        await update(self.worker.busy, Busy.IDLE)
        self.view.release(outcome)
        kind = EventType.TASK_FAILED if outcome.result in FAILURES else EventType.TASK_FINISHED
        await self.streams.post_event(kind, outcome.task, outcome.error)
