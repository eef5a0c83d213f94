"""The one seam between the worker and the outside (the PV layer, tests, benchmarks).

Requests and commands come in as method calls; what happens goes out to every
subscribed `WorkerListener`, from whichever thread it happened on. Nothing here
knows Channel Access.
"""

from __future__ import annotations


from bluesky import RunEngine

from .context import PlanContext
from .documents import RunProgress
from .models import Task, TaskOutcome, WorkerState, parse_request
from .queue import TaskQueue
from .worker import Worker, WorkerListener



class WorkerService(WorkerListener):
    """Validates and queues requests for the worker; fans its reports out to listeners."""

    def __init__(self, run_engine: RunEngine, context: PlanContext) -> None:
        self._context = context
        self._listeners: list[WorkerListener] = []
        self.queue = TaskQueue(self.queue_changed)
        self._worker = Worker(run_engine, lambda: self._context, self.queue, self)

    @property
    def context(self) -> PlanContext:
        """The plans and devices requests are validated against."""
        return self._context

    def subscribe(self, listener: WorkerListener) -> None:
        """Report to `listener` from now on."""
        self._listeners.append(listener)

    def start(self) -> None:
        """Start running queued tasks."""
        self._worker.start()

    def stop(self) -> None:
        """Stop taking tasks."""
        self._worker.stop()

    def submit(self, text: str) -> Task:
        """Validate the request `text` and queue it; raise `RequestError` if it is refused."""
        request = parse_request(text)
        params = self._context.validate(request.name, request.params)
        task = Task.create(request, params)
        self.queue.append(task)
        return task

    # WorkerListener: fan out.
    def state_changed(self, state: WorkerState) -> None:
        for listener in self._listeners:
            listener.state_changed(state)

    def task_started(self, task: Task, started: float) -> None:
        for listener in self._listeners:
            listener.task_started(task, started)

    def run_progress(self, progress: RunProgress) -> None:
        for listener in self._listeners:
            listener.run_progress(progress)

    def task_finished(self, outcome: TaskOutcome) -> None:
        for listener in self._listeners:
            listener.task_finished(outcome)

    def queue_changed(self, tasks: list[Task]) -> None:
        for listener in self._listeners:
            listener.queue_changed(tasks)
