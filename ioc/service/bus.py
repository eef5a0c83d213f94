"""The message bus view: what blueapi (1.21) publishes, built from the service's reports.

blueapi sends every event to one topic, its bodies exactly its pydantic models dumped as
JSON (snake_case, every field, no other): `WorkerEvent` on every state change and task
status change, `ProgressEvent` while the plan waits on devices, `DataEvent` for every
document. The task's correlation id goes in the `correlation-id` header, as blueapi puts
it; what blueapi has no field for (this IOC's task id, the submitter) goes in headers too,
since blueapi's models forbid extra fields and its listeners drop a connection that
brings a body they cannot parse.

No transport here: a `BusView` hands each `BusMessage` to a publisher (`ioc.service.stomp`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..messages import (
    BusChanged,
    DeviceProgress,
    DocumentEmitted,
    Report,
    ShownState,
    TaskFinished,
    TaskStarted,
)
from ..models import FAILURES, BusStatus, Task, TaskOutcome, WorkerState, to_json

DESTINATION = "/topic/public.worker.event"  # blueapi's one topic for all its events
PROGRESS_INTERVAL = 0.1  # seconds: a task's ProgressEvents come at most 10 times a second
CORRELATION_ID = "correlation-id"  # blueapi's header (bluesky-stomp's CORRELATION_ID_HEADER)
OFF = BusChanged(BusStatus.OFF, 0)  # the bus's health without --stomp


@dataclass(frozen=True)
class BusMessage:
    """One message for the bus: its JSON body and its headers."""

    body: str
    headers: dict[str, str]


class Publisher(Protocol):
    """What delivers the bus's messages (`ioc.service.stomp.StompPublisher`)."""

    def publish(self, message: BusMessage) -> None:
        """Take `message` for delivery; never waits."""

    def start(self, on_health: Callable[[BusChanged], None]) -> None:
        """Start delivering; tell `on_health` whenever the connection or the drop count changes."""

    def close(self, timeout: float) -> None:
        """Deliver what is left for up to `timeout` seconds, then stop."""


# --- blueapi's models, as JSON-able dicts in its field order --------------------------------
def task_status(task: Task, outcome: TaskOutcome | None = None) -> dict[str, Any]:
    """Blueapi's `TaskStatus` of `task`: running (no `outcome`) or ended.

    Success and Stopped are a `TaskResult` with what the plan returned (a stopped plan:
    None); Failed, Aborted and Halted a `TaskError` whose `type` and `message` are those
    of the error PVs' text `<ExceptionType>: <message>`.
    """
    result: dict[str, Any] | None = None
    failed = outcome is not None and outcome.result in FAILURES
    if outcome is not None:
        if failed:
            kind, message = split_error(outcome.error or str(outcome.result))
            result = {"outcome": "error", "type": kind, "message": message}
        else:
            returned = outcome.returned
            result = {"outcome": "success", "result": returned.value, "type": returned.type}
    return {
        "task_id": task.task_id,
        "result": result,
        "task_complete": outcome is not None,
        "task_failed": failed,
    }


def split_error(error: str) -> tuple[str, str]:
    """(`ExceptionType`, `message`) of an error text `<ExceptionType>: <message>`."""
    kind, _, message = error.partition(": ")
    return kind, message


def worker_event(
    state: WorkerState, task: Task | None, outcome: TaskOutcome | None = None
) -> dict[str, Any]:
    """Blueapi's `WorkerEvent`: the state, the task's status (if a task is running or just
    ended) and, for a failed task, its error message (blueapi lists `str(exception)`).
    """
    errors = []
    status = None if task is None else task_status(task, outcome)
    if status is not None and status["task_failed"]:
        errors.append(status["result"]["message"] or status["result"]["type"])
    return {"state": str(state), "task_status": status, "errors": errors, "warnings": []}


def status_view(name: str, view: dict[str, Any]) -> dict[str, Any]:
    """Blueapi's `StatusView` of one device's progress as `PROGRESS` shows it. blueapi's
    `percentage` is a fraction (0-1; its CLI prints 100 x it), ours is percent.
    """
    percentage = _number(view.get("percentage"))
    precision = view.get("precision")
    return {
        "display_name": name,
        "current": _number(view.get("current")),
        "initial": _number(view.get("initial")),
        "target": _number(view.get("target")),
        "unit": str(view.get("unit") or "units"),
        "precision": precision if isinstance(precision, int) and not isinstance(precision, bool) else None,
        "done": bool(view.get("done")),
        "percentage": None if percentage is None else percentage / 100.0,
        "time_elapsed": None,
        "time_remaining": None,
    }


def _number(value: Any) -> float | None:
    """`value` as blueapi's `float | None`: anything else (text, arrays) is None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def progress_event(task: Task, views: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Blueapi's `ProgressEvent` of the statuses the plan waits on (keyed by device)."""
    return {
        "task_id": task.task_id,
        "statuses": {name: status_view(name, view) for name, view in views.items()},
    }


def data_event(name: str, doc: dict[str, Any], task: Task) -> dict[str, Any]:
    """Blueapi's `DataEvent` of one event-model document."""
    return {"name": name, "doc": doc, "task_id": task.task_id}


def headers(task: Task | None) -> dict[str, str]:
    """The headers of a message about `task`: blueapi's `correlation-id`, and this IOC's
    own fields, which blueapi's bodies have no room for (`task-id`, the submitter `user`).
    """
    if task is None:
        return {}
    return {CORRELATION_ID: task.correlation_id, "task-id": task.task_id, "user": task.user}


# --- the view ---------------------------------------------------------------------------------
class BusView:
    """A listener of the service's reports that publishes blueapi's events: one lock keeps
    the messages in the order of the reports, whichever thread tells them.

    Device progress, which moves many times per point, is published at most every
    `PROGRESS_INTERVAL` (as `PROGRESS` shows it): in between, only its latest state is
    held back, and it goes out before the next message or when every status is done.
    """

    def __init__(
        self, publish: Callable[[BusMessage], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._publish = publish
        self._clock = clock
        self._lock = threading.Lock()
        self._state = WorkerState.UNKNOWN
        self._task: Task | None = None  # the running task
        self._progress_shown: dict[str, dict[str, Any]] | None = None
        self._progress_held: dict[str, dict[str, Any]] | None = None
        self._progress_due = 0.0  # monotonic time from which progress may go out at once

    def __call__(self, report: Report) -> None:
        """Publish what `report` means to a blueapi listener, if anything."""
        with self._lock:
            if isinstance(report, ShownState):
                if report.state != self._state:
                    self._state = report.state
                    self._send(worker_event(self._state, self._task))
            elif isinstance(report, TaskStarted):
                self._task, self._progress_shown = report.task, None
            elif isinstance(report, TaskFinished):
                self._send(worker_event(self._state, report.outcome.task, report.outcome),
                           report.outcome.task)
                self._task = None
            elif self._task is not None:
                if isinstance(report, DocumentEmitted):
                    self._send(data_event(report.name, report.doc, self._task))
                elif isinstance(report, DeviceProgress):
                    self._progress(report.views)

    def _progress(self, views: dict[str, dict[str, Any]]) -> None:
        if views == self._progress_shown:
            self._progress_held = None
            return
        settled = all(view.get("done") for view in views.values())
        if settled or self._clock() >= self._progress_due:
            self._progress_held = None
            self._send_progress(views)
        else:
            self._progress_held = views

    def _send_progress(self, views: dict[str, dict[str, Any]]) -> None:
        assert self._task is not None
        self._progress_shown = views
        self._progress_due = self._clock() + PROGRESS_INTERVAL
        self._publish(BusMessage(to_json(progress_event(self._task, views)), headers(self._task)))

    def _send(self, body: dict[str, Any], task: Task | None = None) -> None:
        """Publish `body` about `task` (default: the running one), after the progress held."""
        if self._progress_held is not None and self._task is not None:
            held, self._progress_held = self._progress_held, None
            self._send_progress(held)
        task = task or self._task
        self._publish(BusMessage(to_json(body), headers(task)))

