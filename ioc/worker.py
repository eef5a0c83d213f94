"""The thread that owns the RunEngine and runs queued tasks one at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from bluesky import RunEngine
from bluesky.run_engine import RunEngineResult

from .context import PlanContext
from .documents import RunProgress, RunTracker
from .models import Task, TaskOutcome, TaskResult, WorkerState, describe_exception
from .queue import QueueClosed, TaskQueue

log = logging.getLogger(__name__)


class WorkerListener(Protocol):
    """What the worker reports. Called from the worker's and the RunEngine's threads."""

    def state_changed(self, state: WorkerState) -> None:
        """The RunEngine's state changed."""

    def task_started(self, task: Task, started: float) -> None:
        """`task` left the queue and is about to run."""

    def run_progress(self, progress: RunProgress) -> None:
        """A run of the current task opened, moved on or closed."""

    def task_finished(self, outcome: TaskOutcome) -> None:
        """The current task ended."""

    def queue_changed(self, tasks: list[Task]) -> None:
        """The pending tasks changed; `tasks` are all of them, in run order."""


def make_run_engine() -> RunEngine:
    """A RunEngine fit for a server: no signal handlers, results returned."""
    return RunEngine(context_managers=[], call_returns_result=True)


class Worker:
    """Takes tasks from the queue and runs each to its end on the RunEngine."""

    def __init__(
        self,
        run_engine: RunEngine,
        context: Callable[[], PlanContext],
        queue: TaskQueue,
        listener: WorkerListener,
    ) -> None:
        self._run_engine = run_engine
        self._context = context
        self._queue = queue
        self._listener = listener
        self._tracker = RunTracker(listener.run_progress)
        self._thread = threading.Thread(target=self._serve, name="bluesky-worker", daemon=True)
        run_engine.state_hook = self._state_changed
        run_engine.subscribe(self._tracker)

    def start(self) -> None:
        """Start taking tasks."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Take no more tasks; wait for the thread when it is idle."""
        self._queue.close()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _serve(self) -> None:
        while True:
            try:
                task = self._queue.take()
            except QueueClosed:
                return
            self._listener.task_finished(self._run(task))

    def _run(self, task: Task) -> TaskOutcome:
        started = time.time()
        self._listener.task_started(task, started)
        self._tracker.begin_task()
        try:
            plan = self._context().build_plan(task.name, task.params)
            result = self._run_engine(plan, **task.run_metadata())
        except Exception as error:  # the plan's own failure: record it, go on with the next
            log.warning("task %s failed: %s", task.task_id, describe_exception(error))
            return self._outcome(task, started, TaskResult.FAILED, describe_exception(error))
        return self._outcome(task, started, *_result_of(result))

    def _outcome(
        self, task: Task, started: float, result: TaskResult, error: str | None = None
    ) -> TaskOutcome:
        return TaskOutcome(
            task=task,
            result=result,
            started=started,
            finished=time.time(),
            run_uids=tuple(self._tracker.run_uids),
            error=error,
        )

    def _state_changed(self, new: str, old: str) -> None:
        self._listener.state_changed(WorkerState(str(new).upper()))


def _result_of(result: RunEngineResult) -> tuple[TaskResult, str | None]:
    """The task result and error text of a RunEngine call that returned."""
    if result.exit_status == "success":
        return TaskResult.SUCCESS, None
    return TaskResult.FAILED, result.reason or result.exit_status
