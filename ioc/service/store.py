"""The pending queue, the running task and the history in SQLite: nothing accepted is lost."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from ..models import Task, TaskOutcome, TaskResult
from .lock import StateDirLock

FILE_NAME = "state.sqlite3"
INTERRUPTED = "interrupted: the IOC stopped while this task was running"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending (
    task_id TEXT PRIMARY KEY, position INTEGER NOT NULL UNIQUE, task TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS running (
    task_id TEXT PRIMARY KEY, started REAL NOT NULL, task TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (
    id INTEGER PRIMARY KEY AUTOINCREMENT, outcome TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS running_runs (
    task_id TEXT NOT NULL, run_uid TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS facts (
    name TEXT PRIMARY KEY, value REAL NOT NULL);
"""
ALIVE = "alive"  # facts: the last moment the IOC was known to run (its heartbeat)
SCAN_ID = "scan_id"  # facts: the scan id of the newest run, so numbering goes on


class StoreError(Exception):
    """The state database cannot be opened, read or written."""


@dataclass(frozen=True)
class Recovery:
    """What the IOC shows after a start-up."""

    pending: list[Task]  # run order, the interrupted copy first if any
    history: list[TaskOutcome]  # newest first
    interrupted: TaskOutcome | None  # the Failed record of a task that was running, if any


def fresh_copy(task: Task) -> Task:
    """A copy of `task` to run again: same request and correlation id, new task id."""
    return replace(task, task_id=str(uuid.uuid4()), submitted=time.time())


def _task_to_json(task: Task) -> str:
    """`task` as JSON text."""
    return json.dumps(asdict(task))


def _task_from_dict(data: dict[str, Any]) -> Task:
    """The `Task` of `_task_to_json`'s parsed text (a task journaled before the submitter
    was kept gets the defaults: user `anonymous`, no host, no group).
    """
    return Task(**data)


def _outcome_to_json(outcome: TaskOutcome) -> str:
    """`outcome` as JSON text."""
    return json.dumps({**asdict(outcome), "result": str(outcome.result)})


def _outcome_from_json(text: str) -> TaskOutcome:
    """The `TaskOutcome` of `_outcome_to_json`'s text."""
    data = json.loads(text)
    return TaskOutcome(
        task=_task_from_dict(data["task"]),
        result=TaskResult(data["result"]),
        started=data["started"],
        finished=data["finished"],
        run_uids=tuple(data["run_uids"]),
        error=data["error"],
        ended_by=data.get("ended_by"),  # absent in a history written before it was kept
    )


class StateStore:
    """Pending tasks, the running task and the history, in SQLite. Thread-safe."""

    def __init__(self, path: Path, *, history_keep: int = 1000, lock: StateDirLock | None = None) -> None:
        """Open (or create) the database at `path`; raise `StoreError` if it is unusable.
        `lock`, the lock of its directory, is released by `close`.
        """
        self.path = path
        self._directory_lock = lock
        self._history_keep = history_keep
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._connection = sqlite3.connect(path, check_same_thread=False)
        except (OSError, sqlite3.Error) as error:
            raise StoreError(f"state database {path}: cannot open: {error}") from error
        try:
            with self._guard():
                self._connection.execute("PRAGMA journal_mode=WAL")
                self._connection.execute("PRAGMA synchronous=NORMAL")
                self._connection.executescript(_SCHEMA)
        except StoreError:
            self._connection.close()
            raise

    @classmethod
    def in_directory(cls, state_dir: Path) -> StateStore:
        """The store of the IOC state directory `state_dir`, which this IOC then owns: raise
        `StateDirInUse` (before reading or changing anything) if another IOC holds it.
        """
        lock = StateDirLock(state_dir)
        try:
            return cls(state_dir / FILE_NAME, lock=lock)
        except StoreError:
            lock.release()
            raise

    @contextmanager
    def _guard(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock; turn database and decoding errors into `StoreError`."""
        with self._lock:
            try:
                yield self._connection
            except (sqlite3.Error, ValueError, KeyError, TypeError) as error:
                problem = f"{type(error).__name__}: {error}"
                raise StoreError(f"state database {self.path}: {problem}") from error

    def recover(self, history_limit: int = 50) -> Recovery:
        """Record a task left running as interrupted, requeue a copy of it; return the state."""
        with self._guard() as db:
            interrupted = None
            with db:
                row = db.execute("SELECT task_id, started, task FROM running").fetchone()
                if row is not None:
                    task = _task_from_dict(json.loads(row[2]))
                    alive = self._fact(db, ALIVE)
                    finished = alive if alive is not None and alive >= row[1] else time.time()
                    interrupted = TaskOutcome(
                        task, TaskResult.FAILED, row[1], finished,
                        run_uids=self._run_uids(db, task.task_id), error=INTERRUPTED,
                    )  # fmt: skip
                    db.execute("DELETE FROM running")
                    db.execute("DELETE FROM running_runs")
                    self._insert_history(db, interrupted)
                    self._insert_first(db, fresh_copy(task))
            rows = db.execute("SELECT task FROM pending ORDER BY position").fetchall()
            pending = [_task_from_dict(json.loads(text)) for (text,) in rows]
            return Recovery(pending, self._history(db, history_limit), interrupted)

    def append(self, task: Task) -> None:
        """Add `task` at the end of the pending queue."""
        with self._guard() as db, db:
            db.execute(
                "INSERT INTO pending (task_id, position, task) "
                "SELECT ?, COALESCE(MAX(position), 0) + 1, ? FROM pending",
                (task.task_id, _task_to_json(task)),
            )

    def prepend(self, task: Task) -> None:
        """Put `task` at the head of the pending queue."""
        with self._guard() as db, db:
            self._insert_first(db, task)

    def start(self, task: Task) -> None:
        """Move `task` from pending (if there) to running."""
        with self._guard() as db, db:
            db.execute("DELETE FROM pending WHERE task_id = ?", (task.task_id,))
            db.execute("DELETE FROM running")
            db.execute("DELETE FROM running_runs")
            db.execute(
                "INSERT INTO running (task_id, started, task) VALUES (?, ?, ?)",
                (task.task_id, time.time(), _task_to_json(task)),
            )

    def finish(self, outcome: TaskOutcome) -> None:
        """Move the outcome's task from running to the history."""
        with self._guard() as db, db:
            db.execute("DELETE FROM running WHERE task_id = ?", (outcome.task.task_id,))
            db.execute("DELETE FROM running_runs WHERE task_id = ?", (outcome.task.task_id,))
            self._insert_history(db, outcome)

    def run_opened(self, task_id: str, run_uid: str, scan_id: int) -> None:
        """The running task `task_id` opened run `run_uid` numbered `scan_id`."""
        with self._guard() as db, db:
            db.execute("INSERT INTO running_runs VALUES (?, ?)", (task_id, run_uid))
            self._set_fact(db, SCAN_ID, scan_id)

    def run_uids(self, task_id: str) -> tuple[str, ...]:
        """The uids of the runs the running task `task_id` has opened, in order."""
        with self._guard() as db:
            return self._run_uids(db, task_id)

    def beat(self) -> None:
        """Note that the IOC is alive now (the end time of a task a crash interrupts)."""
        with self._guard() as db, db:
            self._set_fact(db, ALIVE, time.time())

    def scan_id(self) -> int:
        """The scan id of the newest run (0 before the first)."""
        with self._guard() as db:
            return int(self._fact(db, SCAN_ID) or 0)

    @staticmethod
    def _run_uids(db: sqlite3.Connection, task_id: str) -> tuple[str, ...]:
        rows = db.execute(
            "SELECT run_uid FROM running_runs WHERE task_id = ? ORDER BY rowid", (task_id,)
        ).fetchall()
        return tuple(uid for (uid,) in rows)

    @staticmethod
    def _fact(db: sqlite3.Connection, name: str) -> float | None:
        row = db.execute("SELECT value FROM facts WHERE name = ?", (name,)).fetchone()
        return None if row is None else float(row[0])

    @staticmethod
    def _set_fact(db: sqlite3.Connection, name: str, value: float) -> None:
        db.execute("INSERT OR REPLACE INTO facts (name, value) VALUES (?, ?)", (name, value))

    def remove(self, task_ids: Iterable[str]) -> None:
        """Remove the pending tasks `task_ids`."""
        with self._guard() as db, db:
            db.executemany("DELETE FROM pending WHERE task_id = ?", ((i,) for i in task_ids))

    def history(self, limit: int = 50) -> list[TaskOutcome]:
        """The `limit` newest outcomes, newest first."""
        with self._guard() as db:
            return self._history(db, limit)

    def close(self) -> None:
        """Close the database (and give its directory up)."""
        with self._lock:
            self._connection.close()
            if self._directory_lock is not None:
                self._directory_lock.release()
                self._directory_lock = None

    @staticmethod
    def _insert_first(db: sqlite3.Connection, task: Task) -> None:
        db.execute(
            "INSERT INTO pending (task_id, position, task) "
            "SELECT ?, COALESCE(MIN(position), 1) - 1, ? FROM pending",
            (task.task_id, _task_to_json(task)),
        )

    def _insert_history(self, db: sqlite3.Connection, outcome: TaskOutcome) -> None:
        """Add `outcome` to the history and keep only the `history_keep` newest."""
        db.execute("INSERT INTO history (outcome) VALUES (?)", (_outcome_to_json(outcome),))
        db.execute(
            "DELETE FROM history WHERE id <= "
            "(SELECT id FROM history ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (self._history_keep,),
        )

    @staticmethod
    def _history(db: sqlite3.Connection, limit: int) -> list[TaskOutcome]:
        """The `limit` newest outcomes, newest first."""
        rows = db.execute("SELECT outcome FROM history ORDER BY id DESC LIMIT ?", (limit,))
        return [_outcome_from_json(text) for (text,) in rows.fetchall()]
