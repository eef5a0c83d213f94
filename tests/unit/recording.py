"""A WorkerListener (and RunEngine subscriber) that records every report, with bounded waits."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ioc.models import TaskOutcome
from ioc.worker import WorkerListener

TIMEOUT = 15.0


def _records(kind: str, pick: Callable[..., Any] = lambda value, *_: value) -> Any:
    """A WorkerListener method recording (kind, what `pick` takes of its arguments)."""
    return lambda self, *args: self._record(kind, pick(*args))


class Recorder(WorkerListener):
    """Reports as (kind, value): `of(kind)` lists them; RunEngine documents by their name."""

    state_changed = _records("state")
    queue_changed = _records("queue", lambda tasks, enabled: ([t.task_id for t in tasks], enabled))
    task_started = _records("started")
    run_progress = _records("progress")
    task_finished = _records("finished")
    task_removed = _records("removed")
    catalog_changed = _records("catalog", lambda: None)

    def __init__(self) -> None:
        self.reports: list[tuple[str, Any]] = []
        self._changed = threading.Condition()

    def _record(self, kind: str, value: Any) -> None:
        with self._changed:
            self.reports.append((kind, value))
            self._changed.notify_all()

    def __call__(self, name: str, doc: dict) -> None:
        self._record(name, doc)  # a RunEngine document

    def of(self, kind: str) -> list[Any]:
        with self._changed:
            return [value for k, value in self.reports if k == kind]

    def wait(self, until: Callable[[], bool], what: str) -> None:
        with self._changed:
            assert self._changed.wait_for(until, TIMEOUT), f"no {what} in {TIMEOUT} s: {self.reports}"

    def stays_false(self, until: Callable[[], bool], timeout: float = 0.3) -> bool:
        with self._changed:
            return not self._changed.wait_for(until, timeout)

    def outcomes(self, count: int) -> list[TaskOutcome]:
        """Wait for `count` finished tasks; return the outcomes so far, in order."""
        self.wait(lambda: len(self.of("finished")) >= count, f"{count} finished task(s)")
        return self.of("finished")

    def events(self) -> list[dict]:
        """The event documents of the primary streams."""
        primary = {doc["uid"] for doc in self.of("descriptor") if doc["name"] == "primary"}
        return [doc for doc in self.of("event") if doc["descriptor"] in primary]

    def exit_statuses(self) -> list[str]:
        """The exit statuses of the stop documents."""
        return [doc["exit_status"] for doc in self.of("stop")]
