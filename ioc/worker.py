"""The thread that owns the RunEngine and runs queued tasks one at a time."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any, Protocol

from bluesky import RunEngine
from bluesky.run_engine import RunEngineResult
from bluesky.utils import RunEngineInterrupted

from .context import PlanContext
from .documents import RunProgress, RunTracker
from .models import Task, TaskOutcome, TaskResult, WorkerState, describe_exception
from .progress import ProgressWatcher
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

    def queue_changed(self, tasks: list[Task], enabled: bool) -> None:
        """The pending tasks (all of them, in run order) or the hold/run gate changed."""

    def task_removed(self, task: Task) -> None:
        """`task` was taken off the queue before it ran."""

    def task_submitted(self, task: Task) -> None:
        """`task` was accepted and queued."""

    def task_rejected(self, error: str) -> None:
        """A request was refused; `error` says why."""

    def document(self, name: str, doc: dict[str, Any], task: Task | None) -> None:
        """The RunEngine emitted a document while running `task` (on the RunEngine's loop)."""

    def device_progress(self, views: dict[str, dict[str, Any]]) -> None:
        """The statuses the plan waits on moved (device name -> progress view)."""

    def store_failed(self, error: str) -> None:
        """The run store could not keep documents (the task goes on)."""

    def catalog_changed(self) -> None:
        """Plans and devices were reloaded."""


def make_run_engine() -> RunEngine:
    """A RunEngine fit for a server: no signal handlers, results returned."""
    return RunEngine(context_managers=[], call_returns_result=True)


FAILURES = frozenset({TaskResult.FAILED, TaskResult.ABORTED, TaskResult.HALTED})
NO_CHECKPOINT = "could not pause: the plan has no checkpoint, so bluesky aborted it"
PANIC_ENDING = (TaskResult.ABORTED, "aborted by PANIC")

Step = Callable[[], RunEngineResult]


class Worker:
    """Takes tasks from the queue and runs each to its end on the RunEngine.

    A paused task keeps the worker thread: it waits for the next step (`continue_with`:
    resume, stop, abort or halt), which only this thread may run. After a failed,
    aborted or halted task the queue gate is closed unless `continue_on_error`.
    """

    def __init__(
        self,
        run_engine: RunEngine,
        context: Callable[[], PlanContext],
        task_queue: TaskQueue,
        listener: WorkerListener,
        *,
        continue_on_error: bool = False,
    ) -> None:
        self._run_engine = run_engine
        self._context = context
        self._queue = task_queue
        self._listener = listener
        self._continue_on_error = continue_on_error
        self._tracker = RunTracker(listener.run_progress)
        self._thread = threading.Thread(target=self._serve, name="bluesky-worker", daemon=True)
        self._steps: queue.SimpleQueue[Step] = queue.SimpleQueue()
        self._task_lock = threading.Lock()
        self._ending: tuple[TaskResult, str] | None = None
        self._start_gate = threading.Lock()  # the RunEngine call begins, or a task is ended
        self._engine_started = False
        self._panicked = False
        self.current: Task | None = None
        run_engine.state_hook = self._state_changed
        run_engine.waiting_hook = ProgressWatcher(listener.device_progress)
        run_engine.subscribe(self._document)

    @property
    def run_engine(self) -> RunEngine:
        """The RunEngine this worker owns."""
        return self._run_engine

    @property
    def state(self) -> WorkerState:
        """The RunEngine's state, or PANICKED while the panic latch is set."""
        if self._panicked:
            return WorkerState.PANICKED
        return WorkerState(str(self._run_engine.state).upper())

    @property
    def panicked(self) -> bool:
        """Whether the panic latch is set."""
        return self._panicked

    def set_panicked(self, panicked: bool) -> None:
        """Set or lift the panic latch: while set, no task starts or resumes."""
        self._panicked = panicked
        self._queue.set_latched(panicked)
        self._listener.state_changed(self.state)

    def continue_with(self, step: Step) -> None:
        """Hand the paused task's next step (`RE.resume`, `RE.stop`, ...) to the worker thread."""
        self._steps.put(step)

    @contextmanager
    def ending(self, result: TaskResult, reason: str) -> Iterator[bool]:
        """Record how the current task is to end; yield whether its RunEngine call has begun
        (if so, the caller then ends it with stop/abort/halt). A task whose call has not
        begun never runs: the worker ends it as recorded."""
        with self._start_gate:
            self._ending = (result, reason)
            yield self._engine_started

    @contextmanager
    def idle(self) -> Iterator[bool]:
        """Yield True, keeping tasks from starting meanwhile, if no task is running; else False."""
        acquired = self._task_lock.acquire(blocking=False)
        try:
            yield acquired and self.current is None
        finally:
            if acquired:
                self._task_lock.release()

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
            with self._task_lock:
                with self._start_gate:
                    self._ending, self.current = None, task
                outcome = self._run(task)
                self.current, self._engine_started = None, False
            if outcome.result in FAILURES and not self._continue_on_error:
                self._queue.set_enabled(False)
            self._listener.task_finished(outcome)

    def _run(self, task: Task) -> TaskOutcome:
        started = time.time()
        self._listener.task_started(task, started)
        self._tracker.begin_task()
        try:
            plan = self._context().build_plan(task.name, task.params)
            step: Step = partial(self._run_engine, plan, **task.run_metadata())
            with self._start_gate:
                if self._panicked and self._ending is None:
                    self._ending = PANIC_ENDING
                if self._ending is not None:  # ended before it began: it never runs
                    return self._outcome(task, started, *self._ended_by_operator())
                self._engine_started = True
            while True:
                try:
                    result = step()
                    break
                except RunEngineInterrupted:
                    if self._run_engine.state != "paused":  # ended while running
                        return self._outcome(task, started, *self._ended_by_operator())
                    step = self._steps.get()
        except Exception as error:  # the plan's own failure: record it, go on with the next
            log.warning("task %s failed: %s", task.task_id, describe_exception(error))
            return self._outcome(task, started, TaskResult.FAILED, describe_exception(error))
        if result.interrupted and self._ending is not None:
            return self._outcome(task, started, *self._ended_by_operator())
        return self._outcome(task, started, *_result_of(result))

    def _ended_by_operator(self) -> tuple[TaskResult, str]:
        # Interrupted with no stop/abort/halt asked for: a pause the plan could not take.
        result, reason = self._ending or (TaskResult.ABORTED, NO_CHECKPOINT)
        return result, f"{result}: {reason}"

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

    def _document(self, name: str, doc: dict[str, Any]) -> None:
        self._tracker(name, doc)
        self._listener.document(name, doc, self.current)

    def _state_changed(self, new: str, old: str) -> None:
        self._listener.state_changed(self.state)  # the RunEngine has taken `new` already


def _result_of(result: RunEngineResult) -> tuple[TaskResult, str | None]:
    """The task result and error text of a RunEngine call that returned on its own."""
    if result.exit_status == "success":
        return TaskResult.SUCCESS, None
    if result.exit_status == "abort":
        return TaskResult.ABORTED, f"Aborted: {result.reason or 'the RunEngine aborted the plan'}"
    return TaskResult.FAILED, result.reason or result.exit_status
