"""A `WorkerService` listener that records every report, with bounded waits; and a service
with a real worker process for the tests to drive."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ioc.config import Settings
from ioc.messages import (
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
from ioc.models import Command, Task, TaskOutcome
from ioc.service import WorkerService
from ioc.service.runstore import RunFiles
from ioc.service.store import StateStore

TIMEOUT = 30.0  # a bounded wait for something the worker process does
START_TIMEOUT = 60.0  # a worker process imports bluesky, ophyd and ophyd-async, then loads
RUNS = "runs"  # the run files, under the state directory (as `ioc.service.build` has it)

# Each report as (kind, value): what the old in-process listener methods recorded.
_KINDS: dict[type, tuple[str, Callable[[Any], Any]]] = {
    ShownState: ("state", lambda r: r.state),
    QueueChanged: ("queue", lambda r: ([t.task_id for t in r.tasks], r.enabled)),
    TaskStarted: ("started", lambda r: r.task),
    RunProgressed: ("progress", lambda r: r.progress),
    TaskFinished: ("finished", lambda r: r.outcome),
    TaskRemoved: ("removed", lambda r: r.task),
    TaskSubmitted: ("submitted", lambda r: r.task),
    TaskRejected: ("rejected", lambda r: r.error),
    CatalogChanged: ("catalog", lambda r: r.catalog),
    WorkerChanged: ("worker", lambda r: (r.pid, r.restarts)),
    StoreFailed: ("store_failed", lambda r: r.error),
    DeviceProgress: ("device", lambda r: r.views),
    Suspended: ("suspended", lambda r: r.reason),
    SuspendersChanged: ("suspenders", lambda r: r.suspenders),
}


class Recorder:
    """A `Report` listener: reports as (kind, value), `of(kind)` lists them; the documents of
    `DocumentEmitted` by their name."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, Any]] = []
        self._changed = threading.Condition()

    def __call__(self, report: Report) -> None:
        if isinstance(report, DocumentEmitted):
            self._record(report.name, report.doc)
        else:
            kind, pick = _KINDS[type(report)]
            self._record(kind, pick(report))

    def _record(self, kind: str, value: Any) -> None:
        with self._changed:
            self.reports.append((kind, value))
            self._changed.notify_all()

    def of(self, kind: str) -> list[Any]:
        with self._changed:
            return [value for k, value in self.reports if k == kind]

    def wait(self, until: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
        with self._changed:
            assert self._changed.wait_for(until, timeout), (
                f"no {what} in {timeout} s: {self.reports}"
            )

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


def settings(state_dir: Path, devices: Path, plans: tuple[str, ...], **more: Any) -> Settings:
    """Settings for a service whose state (and run files) live in `state_dir`."""
    return Settings(devices=devices, plans=plans, state_dir=state_dir, **more)


def submit(service: WorkerService, text: str) -> Task:
    """Submit `text`; return its task once the worker has validated it and it is queued
    (raises the `RequestError` if refused)."""
    return service.submit(text).future.result(TIMEOUT)


@contextmanager
def serving(
    config: Settings,
    recorder: Recorder,
    *,
    store: StateStore | None = None,
    enabled: bool = True,
) -> Iterator[WorkerService]:
    """A started service (its first worker loaded) with `recorder` subscribed from then on
    (after the queue was put on hold if not `enabled`); afterwards the queue is cleared, a
    running task aborted, and the service shut down."""
    service = WorkerService(
        config,
        store=store or StateStore.in_directory(config.state_dir),
        run_store=[RunFiles(config.state_dir / RUNS)],
    )
    try:
        service.start().result(START_TIMEOUT)
        if not enabled:
            service.queue.set_enabled(False)
        service.subscribe(recorder)
        yield service
    finally:
        try:
            service.clear()
            if service.supervisor.running is not None:
                service.command(Command.ABORT).exception(TIMEOUT)  # refused if it has just ended
        finally:
            service.shutdown(5)
