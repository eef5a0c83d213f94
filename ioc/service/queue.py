"""Pending tasks in run order, behind a hold/run gate. Thread-safe; no bluesky, no CA."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from ..models import Task

QueueListener = Callable[[list[Task], bool], None]


class QueueJournal(Protocol):
    """Where every change of the queue is written down before it takes effect."""

    def append(self, task: Task) -> None:
        """`task` joins the end of the queue."""

    def prepend(self, task: Task) -> None:
        """`task` joins the head of the queue."""

    def start(self, task: Task) -> None:
        """`task` leaves the queue to run."""

    def remove(self, task_ids: Iterable[str]) -> None:
        """These tasks leave the queue without running."""


class _NoJournal:
    """A queue kept in memory only."""

    def append(self, task: Task) -> None:
        """Nothing to write down."""

    def prepend(self, task: Task) -> None:
        """Nothing to write down."""

    def start(self, task: Task) -> None:
        """Nothing to write down."""

    def remove(self, task_ids: Iterable[str]) -> None:
        """Nothing to write down."""


class NotPending(Exception):
    """No single pending task fits the id given; `str()` says why."""


class TaskQueue:
    """A FIFO of tasks taken one at a time, while the gate is open and the queue not closed.

    The gate is open while the operator lets the queue run (`enabled`) and no latch
    (the worker's panic) holds it shut.
    """

    def __init__(
        self,
        on_change: QueueListener,
        *,
        enabled: bool = True,
        held_by: str = "",
        journal: QueueJournal | None = None,
        pending: Iterable[Task] = (),
    ) -> None:
        """A queue holding `pending` (already in the journal) that writes changes to `journal`;
        unless `enabled`, on hold for the reason `held_by`.
        """
        self._tasks: list[Task] = list(pending)
        self._journal = journal or _NoJournal()
        self._enabled = enabled
        self._held_by = held_by if not enabled else ""
        self._latched = False
        self._closed = False
        self._on_change = on_change
        self._lock = threading.RLock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tasks)

    @property
    def enabled(self) -> bool:
        """Whether pending tasks may start (`QUEUE:ENABLE` = `Run`)."""
        return self._enabled

    @property
    def held_by(self) -> str:
        """Why the queue is on hold (empty while it runs)."""
        return self._held_by

    def snapshot(self) -> list[Task]:
        """The pending tasks in run order."""
        with self._lock:
            return list(self._tasks)

    def append(self, task: Task, *, take: bool = False) -> bool:
        """Add `task` at the end. With `take`, a task that would be taken at once (the gate
        is open, nothing is pending) is taken instead: its start is journaled in place of
        its queueing, and True returned.
        """
        with self._lock:
            if take and self._open() and not self._tasks:
                self._journal.start(task)
                return True
            self._journal.append(task)
            self._tasks.append(task)
            self._notify()
            return False

    def put_first(self, task: Task) -> None:
        """Add `task` at the head (a task to run again)."""
        with self._lock:
            self._journal.prepend(task)
            self._tasks.insert(0, task)
            self._notify()

    def remove(self, task_id: str) -> Task:
        """Remove the pending task whose id is or starts with `task_id` (`STATUS` and
        `QUEUE:NAMES` show the first 8 characters); raise `NotPending` if it is empty, or
        if none or more than one pending task fits.
        """
        task_id = task_id.strip()
        if not task_id:
            raise NotPending("no task id given; write the id of a pending task (or its first 8 characters)")
        with self._lock:
            fits = [task for task in self._tasks if task.task_id.startswith(task_id)]
            exact = [task for task in fits if task.task_id == task_id]
            if len(fits) != 1 and not exact:
                raise NotPending(
                    f"no pending task has an id starting with {task_id!r}" if not fits
                    else f"{len(fits)} pending tasks have ids starting with {task_id!r}: "
                    "give more of the id"
                )  # fmt: skip
            task = (exact or fits)[0]
            self._journal.remove([task.task_id])
            self._tasks.remove(task)
            self._notify()
            return task

    def clear(self) -> list[Task]:
        """Remove every pending task; return them in run order."""
        with self._lock:
            self._journal.remove(task.task_id for task in self._tasks)
            removed, self._tasks = self._tasks, []
            self._notify()
            return removed

    def set_enabled(self, enabled: bool, held_by: str = "") -> None:
        """Let pending tasks start one after another (True) or hold them (False) because
        of `held_by` (what `STATUS` says holds them).
        """
        with self._lock:
            self._enabled = enabled
            self._held_by = "" if enabled else held_by
            self._notify()

    def set_latched(self, latched: bool) -> None:
        """Hold every pending task regardless of `enabled` while `latched`."""
        with self._lock:
            self._latched = latched
            self._notify()

    def ready(self) -> bool:
        """Whether a task may be taken now: one is pending, the gate is open, the queue is
        not closed.
        """
        with self._lock:
            return self._open() and bool(self._tasks)

    def take(self) -> Task | None:
        """The task at the head, removed (its start journaled), if `ready()`; else None.
        Never blocks.
        """
        with self._lock:
            if not self.ready():
                return None
            self._journal.start(self._tasks[0])
            task = self._tasks.pop(0)
            self._notify()
            return task

    def close(self) -> None:
        """Take no task any more (the IOC is shutting down)."""
        with self._lock:
            self._closed = True

    def _open(self) -> bool:
        """Whether the gate is open and the queue not closed (lock held)."""
        return not self._closed and self._enabled and not self._latched

    def _notify(self) -> None:
        # Called with the lock held, so listeners see changes in the order they happened.
        self._on_change(list(self._tasks), self._enabled)
