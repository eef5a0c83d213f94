"""The one seam between the worker and the outside (the PV layer, tests, benchmarks).

Requests and commands come in as method calls; what happens goes out to every
subscribed `WorkerListener`, from whichever thread it happened on. Nothing here
knows Channel Access.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from concurrent.futures import Future

from bluesky import RunEngine

from .context import PlanContext
from .control import Command, Control
from .documents import RunProgress
from .errors import RequestError
from .models import Task, TaskOutcome, WorkerState, parse_request
from .queue import TaskQueue
from .runstore import DocumentWriter, Sink
from .store import StateStore
from .worker import Worker, WorkerListener


class WorkerService(WorkerListener):
    """Validates and queues requests, carries out commands; fans reports out to listeners."""

    def __init__(
        self,
        run_engine: RunEngine,
        context: PlanContext,
        *,
        reload_context: Callable[[], PlanContext],
        store: StateStore,
        run_store: Sequence[Sink] = (),
        continue_on_error: bool = False,
    ) -> None:
        """A service over `store`: pending tasks found there wait, with the queue on hold.
        Every document goes to each of the `run_store` sinks, on a writer thread of its own."""
        self._context = context
        self._reload_context = reload_context
        self._store = store
        self._listeners: list[WorkerListener] = []
        self.recovery = store.recover()
        self.queue = TaskQueue(
            self.queue_changed,
            enabled=not self.recovery.pending,  # nothing moves until an operator says Run
            journal=store,
            pending=self.recovery.pending,
        )
        self._worker = Worker(
            run_engine, lambda: self._context, self.queue, self, continue_on_error=continue_on_error
        )
        self._control = Control(self._worker, self._reload)
        # One writer thread per sink: a slow Tiled server never holds up the run files.
        self._writers = [DocumentWriter([sink], self.store_failed) for sink in run_store]
        for writer in self._writers:
            run_engine.subscribe(writer)

    @property
    def context(self) -> PlanContext:
        """The plans and devices requests are validated against."""
        return self._context

    @property
    def state(self) -> WorkerState:
        """The worker's state, as `STATE` shows it."""
        return self._worker.state

    def subscribe(self, listener: WorkerListener) -> None:
        """Report to `listener` from now on."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start running queued tasks."""
        self._worker.start()

    def stop(self) -> None:
        """Stop taking tasks."""
        self._worker.stop()
        for writer in self._writers:
            writer.close()
        self._store.close()

    def submit(self, text: str) -> Task:
        """Validate the request `text` and queue it; raise `RequestError` if it is refused."""
        try:
            request = parse_request(text)
            params = self._context.validate(request.name, request.params)
        except RequestError as error:
            self.task_rejected(str(error))
            raise
        task = Task.create(request, params)
        self.queue.append(task)
        self.task_submitted(task)
        return task

    def remove(self, task_id: str) -> Task:
        """Take the pending task `task_id` off the queue; `KeyError` if it is not pending."""
        task = self.queue.remove(task_id)
        self.task_removed(task)
        return task

    def clear(self) -> list[Task]:
        """Take every pending task off the queue."""
        removed = self.queue.clear()
        for task in removed:
            self.task_removed(task)
        return removed

    def command(self, command: Command) -> Future[None]:
        """Carry out `command`; the future completes when the worker has reached its target
        state, or fails with `CommandRefused`."""
        return self._control.execute(command)

    def _reload(self) -> None:
        self._context = self._reload_context()
        self.catalog_changed()

    # WorkerListener: tell every listener; after a state change or a task's end, let
    # waiting commands see where the worker now is.
    def _tell(self, report: str, *args: Any) -> None:
        for listener in self._listeners:
            getattr(listener, report)(*args)

    def state_changed(self, state: WorkerState) -> None:
        self._tell("state_changed", state)
        self._control.check()

    def task_finished(self, outcome: TaskOutcome) -> None:
        self._store.finish(outcome)
        self._tell("task_finished", outcome)
        self._control.check()

    def task_started(self, task: Task, started: float) -> None:
        self._tell("task_started", task, started)

    def run_progress(self, progress: RunProgress) -> None:
        self._tell("run_progress", progress)

    def task_removed(self, task: Task) -> None:
        self._tell("task_removed", task)

    def queue_changed(self, tasks: list[Task], enabled: bool) -> None:
        self._tell("queue_changed", tasks, enabled)

    def catalog_changed(self) -> None:
        self._tell("catalog_changed")

    def task_submitted(self, task: Task) -> None:
        self._tell("task_submitted", task)

    def task_rejected(self, error: str) -> None:
        self._tell("task_rejected", error)

    def document(self, name: str, doc: dict[str, Any], task: Task | None) -> None:
        self._tell("document", name, doc, task)

    def device_progress(self, views: dict[str, dict[str, Any]]) -> None:
        self._tell("device_progress", views)

    def store_failed(self, error: str) -> None:
        self._tell("store_failed", error)
