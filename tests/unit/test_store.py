"""StateStore: the queue and history survive restarts and crashes (a real SIGKILL included)."""

import json
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ioc.identity import Writer
from ioc.models import Task, TaskOutcome, TaskResult, parse_request
from ioc.service.store import INTERRUPTED, StateStore, StoreError

ROOT = Path(__file__).resolve().parents[2]


def make_task(name: str = "count", **metadata: object) -> Task:
    request = parse_request(f'{{"name": "{name}", "correlation_id": "c-{name}"}}')
    return Task.create(request.model_copy(update={"metadata": metadata}), {"num": 3, "name": name})


def outcome(task: Task, result: TaskResult = TaskResult.SUCCESS, error: str | None = None,
            ) -> TaskOutcome:
    return TaskOutcome(task, result, 1.0, 2.5, ("uid-1", "uid-2"), error)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "state.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[StateStore]:
    store = StateStore(path)
    yield store
    store.close()


def reopen(store: StateStore, path: Path) -> StateStore:
    store.close()
    return StateStore(path)


def test_in_directory_creates_the_file(tmp_path: Path) -> None:
    store = StateStore.in_directory(tmp_path / "a" / "b")
    store.close()
    assert (tmp_path / "a" / "b" / "state.sqlite3").is_file()


def test_append_keeps_order_and_persists(store: StateStore, path: Path) -> None:
    tasks = [make_task(f"t{i}", i=i) for i in range(4)]
    for task in tasks:
        store.append(task)
    store = reopen(store, path)
    recovery = store.recover()
    assert recovery.pending == tasks  # every field round-trips
    assert recovery.history == [] and recovery.interrupted is None
    store.close()


def test_start_and_finish_move_to_history(store: StateStore, path: Path) -> None:
    first, second, third = make_task("a"), make_task("b"), make_task("c")
    for task in (first, second, third):
        store.append(task)
    failed = outcome(second, TaskResult.FAILED, "E: x")
    for done in (outcome(first), failed):
        store.start(done.task)
        store.finish(done)
    store = reopen(store, path)
    recovery = store.recover()
    assert recovery.pending == [third]
    assert recovery.history == [failed, outcome(first)]
    assert recovery.interrupted is None
    assert store.history(limit=1) == [failed]
    store.close()


def test_the_runs_a_running_task_opened(store: StateStore, path: Path) -> None:
    task, later = make_task("a"), make_task("b")
    store.start(task)
    store.run_opened(task.task_id, "run-1", 1)
    store.run_opened(task.task_id, "run-2", 2)
    assert store.run_uids(task.task_id) == ("run-1", "run-2")
    store.finish(outcome(task))
    assert store.run_uids(task.task_id) == ()
    store.start(later)
    store.run_opened(later.task_id, "run-3", 3)
    store = reopen(store, path)
    interrupted = store.recover().interrupted
    assert interrupted is not None and interrupted.run_uids == ("run-3",)
    store.close()


def test_remove(store: StateStore) -> None:
    tasks = [make_task(f"t{i}") for i in range(4)]
    for task in tasks:
        store.append(task)
    store.remove([tasks[1].task_id, tasks[3].task_id, "no-such-id"])
    assert store.recover().pending == [tasks[0], tasks[2]]


def test_history_is_trimmed(path: Path) -> None:
    store = StateStore(path, history_keep=3)
    tasks = [make_task(f"t{i}") for i in range(5)]
    for task in tasks:
        store.start(task)
        store.finish(outcome(task))
    assert [o.task for o in store.history(limit=10)] == tasks[:1:-1]
    assert [o.task for o in store.recover(history_limit=2).history] == tasks[:2:-1]
    store.close()


def test_recover_requeues_an_interrupted_task(store: StateStore, path: Path) -> None:
    running, waiting = make_task("run", sample="x"), make_task("wait")
    store.append(running)
    store.append(waiting)
    store.start(running)
    before = time.time()
    store = reopen(store, path)
    recovery = store.recover()
    interrupted = recovery.interrupted
    assert interrupted is not None
    assert interrupted.task == running
    assert interrupted.result is TaskResult.FAILED and interrupted.error == INTERRUPTED
    assert interrupted.error == "interrupted: the IOC stopped while this task was running"
    assert recovery.history == [interrupted]
    copy, rest = recovery.pending[0], recovery.pending[1:]
    assert rest == [waiting]
    assert copy.task_id != running.task_id
    assert (copy.name, copy.params, copy.metadata, copy.correlation_id) == (
        running.name, running.params, running.metadata, running.correlation_id)
    assert copy.submitted >= before
    # A second recovery (a second restart) changes nothing.
    store = reopen(store, path)
    again = store.recover()
    assert again.interrupted is None
    assert again.pending == recovery.pending and again.history == recovery.history
    store.close()


def test_a_killed_process_loses_nothing(path: Path) -> None:
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from ioc.models import Task, parse_request
        from ioc.service.store import StateStore
        store = StateStore(Path({str(path)!r}))
        tasks = [Task.create(parse_request('{{"name": "count"}}'), {{"i": i}}) for i in range(5)]
        for task in tasks:
            store.append(task)
        store.start(tasks[0])
        print(" ".join(task.task_id for task in tasks), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    child = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    ids = child.stdout.split()
    store = StateStore(path)
    recovery = store.recover()
    assert recovery.interrupted is not None and recovery.interrupted.task.task_id == ids[0]
    assert [task.params["i"] for task in recovery.pending] == [0, 1, 2, 3, 4]
    assert [task.task_id for task in recovery.pending[1:]] == ids[1:]
    assert recovery.pending[0].task_id not in ids
    assert recovery.pending[0].correlation_id == ids[0]
    store.close()


def test_appends_from_many_threads(store: StateStore, path: Path) -> None:
    batches = [[make_task(f"t{n}-{i}") for i in range(100)] for n in range(6)]

    def append_all(tasks: list[Task]) -> None:
        for task in tasks:
            store.append(task)

    threads = [threading.Thread(target=append_all, args=(tasks,)) for tasks in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    pending = store.recover().pending
    assert len(pending) == 600
    assert {t.task_id for t in pending} == {t.task_id for tasks in batches for t in tasks}
    for tasks in batches:  # each thread's tasks stay in its order
        mine = {t.task_id for t in tasks}
        assert [t for t in pending if t.task_id in mine] == tasks
    with sqlite3.connect(path) as db:
        positions = [row[0] for row in db.execute("SELECT position FROM pending")]
    assert len(set(positions)) == 600


def test_a_garbage_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a database, " * 200)
    with pytest.raises(StoreError, match=re.escape(str(path))):
        StateStore(path)
    assert path.read_bytes() == b"this is not a database, " * 200


def test_an_interrupted_task_is_requeued_with_its_submitter(store: StateStore, path: Path) -> None:
    request = parse_request('{"name": "count"}')
    task = Task.create(request, {}, writer=Writer("alice", "ws3"), user_group="staff")
    store.append(task)
    store.start(task)
    store = reopen(store, path)
    recovery = store.recover()
    copy = recovery.pending[0]
    assert copy.task_id != task.task_id
    assert (copy.user, copy.host, copy.user_group) == ("alice", "ws3", "staff")
    assert recovery.history[0].task.user == "alice"
    store.close()


def test_a_state_dir_from_before_the_submitter_was_kept_loads(path: Path) -> None:
    """Rows journaled by an older IOC have no user, host, group, devices or ended_by."""
    old_task = {"name": "count", "params": {"num": 1}, "correlation_id": "c", "task_id": "t-old",
                "metadata": {}, "submitted": 5.0}
    old_outcome = {"task": {**old_task, "task_id": "t-done"}, "result": "Aborted", "started": 1.0,
                   "finished": 2.0, "run_uids": [], "error": "Aborted: aborted by ABORT"}
    StateStore(path).close()  # the tables as the IOC makes them
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO pending VALUES (?, 1, ?)", ("t-old", json.dumps(old_task)))
        db.execute("INSERT INTO history (outcome) VALUES (?)", (json.dumps(old_outcome),))
    db.close()
    store = StateStore(path)
    recovery = store.recover()
    pending, finished = recovery.pending[0], recovery.history[0]
    assert pending.summary()["user"] == "anonymous" and pending.summary()["user_group"] is None
    assert finished.summary()["ended_by"] is None and finished.task.task_id == "t-done"
    store.close()
