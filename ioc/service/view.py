"""What the PVs show, kept as plain data from the service's reports: the STATUS line, the
error latch, the running task, the history window and the ends `RUN` waits on.

No Channel Access here: the PV layer applies each report to a `WorkerView` and then writes
its fields, and unit tests drive it directly.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from ..messages import (
    QueueChanged,
    Report,
    RunProgressed,
    ShownState,
    StoreFailed,
    Suspended,
    TaskFinished,
    TaskRemoved,
    TaskStarted,
)
from ..models import FAILURES, Task, TaskOutcome, TaskResult, WorkerState

HISTORY_SHOWN = 50  # finished tasks on HISTORY


@dataclass
class ErrorLatch:
    """`ERROR:*`: the latest error, how many there were, and the failure not yet cleared."""

    latest: str = ""  # ERROR:MESSAGE: refused requests and commands too
    count: int = 0  # ERROR:COUNT
    active: str | None = None  # the failure ERROR:ACTIVE stands for, until cleared

    def record(self, message: str, *, failure: bool = False) -> None:
        """Count an error; a `failure` also raises the latch (and is what STATUS shows)."""
        self.latest = message
        self.count += 1
        if failure:
            self.active = message

    def clear(self) -> None:
        """Acknowledge the failure (`ERROR:CLEAR`, or a task that succeeded)."""
        self.active = None


@dataclass
class WorkerView:
    """The worker as the PVs show it."""

    state: WorkerState = WorkerState.UNKNOWN
    running: Task | None = None
    started: float | None = None
    percent: float = 0.0
    suspended: str = ""  # which suspender holds the task, and why
    queued: int = 0
    queue_enabled: bool = True
    held_by: str = ""  # why the queue is on hold
    errors: ErrorLatch = field(default_factory=ErrorLatch)
    history: deque[TaskOutcome] = field(default_factory=lambda: deque(maxlen=HISTORY_SHOWN))
    _store_failed: bool = False  # the running task's documents could not all be kept
    _ends: dict[str, asyncio.Future[TaskOutcome | None]] = field(default_factory=dict)
    _by_id: dict[str, TaskOutcome] = field(default_factory=dict)  # the history, by task id

    @property
    def last(self) -> TaskOutcome | None:
        """The task that finished most recently."""
        return self.history[-1] if self.history else None

    def newest_first(self) -> list[TaskOutcome]:
        """The history window, newest first (as `HISTORY` shows it)."""
        return list(reversed(self.history))

    def recovered(self, history: list[TaskOutcome], cut_short: TaskOutcome | None) -> None:
        """Start from what the state database kept (`history` newest first), with the
        failure of the task the IOC's last stop cut short, if any.
        """
        for outcome in reversed(history[:HISTORY_SHOWN]):
            self._remember(outcome)
        if cut_short is not None:
            self.errors.record(cut_short.error_message or "", failure=True)

    def status(self) -> tuple[str, bool]:
        """The `STATUS` line, and whether it is in alarm (a failure is active)."""
        if self.running is None:
            line = f"{self.state.lower()}, {self.queued} queued"
        else:
            task = self.running
            line = f"{self.state.lower()} {task.name} (task {task.task_id[:8]}) {self.percent:.0f}%"
            if self.suspended:
                line += f"; suspended by {self.suspended}"
        if not self.queue_enabled:
            line += f"; queue on Hold: {self.held_by}" if self.held_by else "; queue on Hold"
        if self.errors.active is not None:
            line += f"; error: {self.errors.active}"
        return line, self.errors.active is not None

    def task_end(self, task_id: str) -> asyncio.Future[TaskOutcome | None]:
        """A future of how `task_id` ends (None: removed before it ran), for a `RUN`
        (create it on the loop that applies the reports). A task may have ended, and its
        PVs been written, before its `RUN` asks: the future is then done already.
        """
        end = self._ends.get(task_id)
        if end is None:
            end = asyncio.get_running_loop().create_future()
            finished = self._by_id.get(task_id)
            if finished is not None:
                end.set_result(finished)
            else:
                self._ends[task_id] = end
        return end

    def apply(self, report: Report) -> None:
        """Take one report of the service into account."""
        if isinstance(report, ShownState):
            self.state = report.state
        elif isinstance(report, QueueChanged):
            self.queued, self.queue_enabled, self.held_by = len(report.tasks), report.enabled, report.held_by
        elif isinstance(report, TaskStarted):
            self.running, self.started, self.percent = report.task, report.started, 0.0
            self._store_failed = False
        elif isinstance(report, RunProgressed):
            self.percent = report.progress.percent
        elif isinstance(report, Suspended):
            self.suspended = report.reason
        elif isinstance(report, StoreFailed):
            self._store_failed = True
            self.errors.record(report.error, failure=True)
        elif isinstance(report, TaskRemoved):
            if report.task.task_id in self._ends:  # someone waits on RUN: tell them why
                self.errors.record(f"{report.task.task_id}: Removed: taken off the queue before it ran")
            self._ended(report.task.task_id, None)
        elif isinstance(report, TaskFinished):
            self._finished(report.outcome)

    def _finished(self, outcome: TaskOutcome) -> None:
        if outcome.result is TaskResult.SUCCESS:
            if not self._store_failed:
                self.errors.clear()
        elif outcome.result is not TaskResult.STOPPED:  # a stop is no error
            self.errors.record(outcome.error_message or "", failure=outcome.result in FAILURES)
        self.running, self.started, self.percent, self.suspended = None, None, 0.0, ""
        self._store_failed = False
        self._remember(outcome)

    def _remember(self, outcome: TaskOutcome) -> None:
        """Add `outcome` to the history window (and its index), the oldest going."""
        if len(self.history) == self.history.maxlen:
            self._by_id.pop(self.history[0].task.task_id, None)
        self.history.append(outcome)
        self._by_id[outcome.task.task_id] = outcome

    def release(self, outcome: TaskOutcome) -> None:
        """Complete the `RUN` that waits on `outcome`'s task (once its PVs are written)."""
        self._ended(outcome.task.task_id, outcome)

    def _ended(self, task_id: str, outcome: TaskOutcome | None) -> None:
        ended = self._ends.pop(task_id, None)
        if ended is not None and not ended.done():
            ended.set_result(outcome)

