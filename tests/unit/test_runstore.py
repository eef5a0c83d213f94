"""Tests of the run store: the non-blocking document writer and the JSON Lines run files."""

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count, scan
from ophyd.sim import SynSignal, det, motor

from ioc.service.runstore import DocumentWriter, RunFiles, read_run, run_uids, to_jsonable

WAIT = 10.0


class Errors(list[str]):
    """An on_error callback that keeps the messages."""

    def __call__(self, message: str) -> None:
        self.append(message)


@pytest.fixture
def RE() -> RunEngine:
    return RunEngine(context_managers=[])


@pytest.fixture
def errors() -> Errors:
    return Errors()


@pytest.fixture
def store(tmp_path: Path, errors: Errors) -> Iterator[tuple[DocumentWriter, Path]]:
    directory = tmp_path / "runs"
    writer = DocumentWriter([RunFiles(directory)], errors)
    yield writer, directory
    writer.close(WAIT)


def run_collected(RE: RunEngine, writer: DocumentWriter, plan: Any) -> list[tuple[str, Any]]:
    """Run `plan` with `writer` and an in-memory subscriber; return what the latter saw."""
    collected: list[tuple[str, Any]] = []
    RE.subscribe(lambda name, doc: collected.append((name, doc)))
    RE.subscribe(writer)
    RE(plan)
    assert writer.flush(WAIT)
    return collected


def stored(directory: Path) -> list[tuple[str, Any]]:
    return [pair for uid in run_uids(directory) for pair in read_run(directory, uid)]


@pytest.mark.parametrize("plan", [lambda: count([det], 5), lambda: scan([det], motor, -1, 1, 5)])
def test_run_round_trips(RE: RunEngine, store: tuple[DocumentWriter, Path], errors: Errors,
                         plan: Any) -> None:
    writer, directory = store
    collected = run_collected(RE, writer, plan())
    [uid] = run_uids(directory)
    docs = read_run(directory, uid)
    assert [name for name, _ in docs] == ["start", "descriptor"] + ["event"] * 5 + ["stop"]
    assert docs == [(name, to_jsonable(doc)) for name, doc in collected]
    assert docs[0][1]["uid"] == uid
    assert errors == []


def test_numpy_array_from_device_is_a_list(
    RE: RunEngine, store: tuple[DocumentWriter, Path]
) -> None:
    writer, directory = store
    image = SynSignal(func=lambda: np.ones((4, 4)), name="image")
    collected = run_collected(RE, writer, count([image], 1))
    [uid] = run_uids(directory)
    docs = read_run(directory, uid)
    [event] = [doc for name, doc in docs if name == "event"]
    assert event["data"]["image"] == np.ones((4, 4)).tolist()
    assert docs == [(name, to_jsonable(doc)) for name, doc in collected]


def test_fed_documents_with_numpy_values(
    store: tuple[DocumentWriter, Path], errors: Errors
) -> None:
    writer, directory = store
    event = {"uid": "e1", "descriptor": "d1", "seq_num": 1,
             "data": {"x": np.arange(6).reshape(2, 3), "y": np.float32(1.5), "n": np.int64(3)}}
    writer("start", {"uid": "r1", "time": 0.0})
    writer("descriptor", {"uid": "d1", "run_start": "r1", "data_keys": {}})
    writer("event", event)
    writer("resource", {"uid": "res1", "run_start": "r1", "spec": "X"})
    writer("datum", {"datum_id": "res1/0", "resource": "res1"})
    writer("stop", {"uid": "s1", "run_start": "r1", "exit_status": "success"})
    assert writer.flush(WAIT)
    docs = read_run(directory, "r1")
    names = ["start", "descriptor", "event", "resource", "datum", "stop"]
    assert [name for name, _ in docs] == names
    assert docs[2][1]["data"] == {"x": [[0, 1, 2], [3, 4, 5]], "y": 1.5, "n": 3}
    assert errors == []


def test_to_jsonable() -> None:
    value = {"a": (np.int32(1), np.bool_(True)), 2: [np.zeros(2)], "o": object}
    assert to_jsonable(value) == {"a": [1, True], "2": [[0.0, 0.0]], "o": str(object)}


def test_two_runs_in_one_plan(RE: RunEngine, store: tuple[DocumentWriter, Path]) -> None:
    writer, directory = store

    def two_runs() -> Any:
        yield from count([det], 1)
        yield from count([det], 2)

    RE.subscribe(writer)
    uids = RE(two_runs())
    assert writer.flush(WAIT)
    assert sorted(run_uids(directory)) == sorted(uids)
    assert [len(read_run(directory, uid)) for uid in uids] == [4, 5]


def test_run_uids_oldest_first(tmp_path: Path) -> None:
    for uid, mtime in [("b", 300), ("a", 100), ("c", 200)]:
        path = tmp_path / f"{uid}.jsonl"
        path.write_text("")
        os.utime(path, (mtime, mtime))
    (tmp_path / "other.txt").write_text("")
    assert run_uids(tmp_path) == ["a", "c", "b"]
    assert run_uids(tmp_path / "missing") == []


def test_torn_last_line_is_skipped(RE: RunEngine, store: tuple[DocumentWriter, Path]) -> None:
    writer, directory = store
    run_collected(RE, writer, count([det], 2))
    [uid] = run_uids(directory)
    path = directory / f"{uid}.jsonl"
    whole = read_run(directory, uid)
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, -1) + 20])  # cut the stop document mid-line
    assert read_run(directory, uid) == whole[:-1]


def test_unwritable_directory_is_reported(RE: RunEngine, tmp_path: Path, errors: Errors) -> None:
    (tmp_path / "file").write_text("")
    writer = DocumentWriter([RunFiles(tmp_path / "file" / "runs")], errors)
    RE.subscribe(writer)
    uids = RE(count([det], 3))
    assert len(uids) == 1 and RE.state == "idle"
    assert writer.flush(WAIT)
    writer.close(WAIT)
    assert len(errors) == 1
    assert errors[0].startswith("run store: NotADirectoryError: ")


def test_failing_sink_reported_once_per_run(RE: RunEngine, errors: Errors) -> None:
    calls: list[str] = []

    def failing(name: str, doc: dict) -> None:
        calls.append(name)
        raise OSError(28, "No space left on device")

    writer = DocumentWriter([failing], errors)
    RE.subscribe(writer)
    RE(count([det], 5))
    RE(count([det], 5))
    assert writer.flush(WAIT)
    writer.close(WAIT)
    assert len(calls) == 16
    assert errors == ["run store: OSError: [Errno 28] No space left on device"] * 2


def test_full_queue_drops_without_blocking(RE: RunEngine, errors: Errors) -> None:
    release = threading.Event()
    seen: list[str] = []

    def blocked(name: str, doc: dict) -> None:
        seen.append(name)
        release.wait(WAIT)

    before = set(threading.enumerate())
    writer = DocumentWriter([blocked], errors, capacity=2)
    [thread] = set(threading.enumerate()) - before
    RE.subscribe(writer)
    started = time.monotonic()
    RE(count([det], 5))
    assert time.monotonic() - started < WAIT / 2
    assert not release.is_set()  # the sink is still blocked: the RunEngine did not wait for it
    release.set()
    assert writer.flush(WAIT)
    assert len(seen) < 8
    assert len(errors) == 1 and "queue full" in errors[0]
    writer.close(WAIT)
    assert not thread.is_alive()


def test_close_writes_queued_documents_and_joins(tmp_path: Path, errors: Errors) -> None:
    seen: list[str] = []
    before = set(threading.enumerate())
    writer = DocumentWriter([lambda name, doc: seen.append(name)], errors)
    [thread] = set(threading.enumerate()) - before
    for index in range(100):
        writer("event", {"seq_num": index})
    writer.close(WAIT)
    assert not thread.is_alive()
    assert len(seen) == 100
