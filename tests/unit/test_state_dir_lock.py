"""One IOC at a time owns a state directory (an fcntl lock held for the IOC's life)."""

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ioc.models import Task, parse_request
from ioc.service.lock import LOCK_FILE, StateDirInUse
from ioc.service.store import StateStore

ROOT = Path(__file__).resolve().parents[2]


def running_task() -> Task:
    return Task.create(parse_request('{"name": "count"}'), {"num": 1})


def test_a_second_store_on_the_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = StateStore.in_directory(tmp_path)
    task = running_task()
    first.start(task)  # a task the first IOC runs now
    with pytest.raises(StateDirInUse, match=rf"in use by another IOC \(pid {os.getpid()}, "):
        StateStore.in_directory(tmp_path)
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # nothing recovered or changed
        assert db.execute("SELECT task_id FROM running").fetchall() == [(task.task_id,)]
        assert db.execute("SELECT COUNT(*) FROM pending").fetchone() == (0,)
    assert first.history() == []
    first.close()
    second = StateStore.in_directory(tmp_path)  # given up on close
    second.close()


def test_the_lock_is_another_process_s_and_goes_with_it(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from pathlib import Path
            from ioc.service.store import StateStore
            store = StateStore.in_directory(Path({str(tmp_path)!r}))
            print("held", flush=True)
            sys.stdin.read()
        """)],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert (tmp_path / LOCK_FILE).read_text() == f"{holder.pid}\n"
        with pytest.raises(StateDirInUse, match=rf"\(pid {holder.pid}, "):
            StateStore.in_directory(tmp_path)
    finally:
        holder.kill()
        holder.wait(10)
    StateStore.in_directory(tmp_path).close()  # the kernel dropped it with the process
