"""Tests of the run store: the non-blocking document writer and the JSON Lines run files."""

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import event_model
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count, scan
from ophyd.sim import SynSignal, det, det1, motor

from ioc.service.open_runs import OpenRuns
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


def test_each_line_is_a_name_and_document_array(
    RE: RunEngine, store: tuple[DocumentWriter, Path]
) -> None:
    """The bluesky ecosystem's JSONL: what suitcase-jsonl writes, databroker's catalog reads."""
    writer, directory = store
    collected = run_collected(RE, writer, count([det], 2))
    [uid] = run_uids(directory)
    lines = (directory / f"{uid}.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [[name, to_jsonable(doc)] for name, doc in collected]


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


# --- runs cut short ----------------------------------------------------------------------------

REASON = "interrupted: the IOC stopped while this task was running"


def validate(name: str, doc: dict) -> None:
    """Raise unless `doc` is a valid event-model document `name`."""
    event_model.schema_validators[event_model.DocumentNames[name]].validate(doc)


def two_streams_cut_short(cut: int) -> Any:
    """A run with a primary and a baseline stream whose documents stop after `cut` of them."""
    collected: list[tuple[str, dict]] = []
    RE = RunEngine(context_managers=[])
    RE.subscribe(lambda name, doc: collected.append((name, doc)))

    @bpp.baseline_decorator([det1])
    @bpp.run_decorator()
    def plan() -> Any:
        for _ in range(3):
            yield from bps.trigger_and_read([det])

    RE(plan())
    return [(name, to_jsonable(doc)) for name, doc in collected[:cut]]


def test_open_runs_close_with_a_valid_stop_counting_each_stream() -> None:
    documents = two_streams_cut_short(cut=-2)  # no stop, no closing baseline reading
    names = [name for name, _ in documents]
    assert names.count("event") == 4 and names.count("descriptor") == 2
    [stop] = OpenRuns().feed(documents).close(REASON, at=123.0)
    validate("stop", stop)
    assert stop["run_start"] == documents[0][1]["uid"]
    assert (stop["exit_status"], stop["reason"], stop["time"]) == ("fail", REASON, 123.0)
    assert stop["num_events"] == {"baseline": 1, "primary": 3}
    assert stop["uid"] not in {doc.get("uid") for _, doc in documents}


def test_open_runs_count_event_pages_and_forget_stopped_runs() -> None:
    open_runs = OpenRuns()
    open_runs("start", {"uid": "r1", "time": 0})
    open_runs("descriptor", {"uid": "d1", "run_start": "r1", "name": "primary"})
    open_runs("event_page", {"descriptor": "d1", "seq_num": [1, 2, 3]})
    open_runs("event", {"descriptor": "d1", "seq_num": 4})
    open_runs("start", {"uid": "r2", "time": 0})
    open_runs("stop", {"uid": "s2", "run_start": "r2"})
    [stop] = open_runs.close(REASON, "abort")
    assert (stop["run_start"], stop["num_events"], stop["exit_status"]) == ("r1", {"primary": 4}, "abort")
    assert open_runs.close(REASON) == []  # closed once


def test_a_run_file_cut_short_gets_its_stop_after_its_last_whole_line(tmp_path: Path) -> None:
    documents = two_streams_cut_short(cut=-2)
    files = RunFiles(tmp_path)
    for name, doc in documents:
        files(name, doc)
    uid = documents[0][1]["uid"]
    path = tmp_path / f"{uid}.jsonl"
    with open(path, "a", encoding="utf-8") as torn:  # a crash tore the next document
        torn.write('["event",{"uid":"x","da')
    stop = files.close_cut_short(uid, REASON, at=456.0)
    assert stop is not None and stop["num_events"] == {"baseline": 1, "primary": 3}
    assert read_run(tmp_path, uid) == [*documents, ("stop", stop)]
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[-1]) == ["stop", stop]
    validate("stop", stop)
    assert files.close_cut_short(uid, REASON, at=789.0) is None  # it has its stop now
    assert files.close_cut_short("no-such-run", REASON, at=789.0) is None


def test_a_finished_run_file_is_left_as_it_is(
    RE: RunEngine, store: tuple[DocumentWriter, Path]
) -> None:
    writer, directory = store
    run_collected(RE, writer, count([det], 2))
    [uid] = run_uids(directory)
    before = (directory / f"{uid}.jsonl").read_bytes()
    assert RunFiles(directory).close_cut_short(uid, REASON, at=1.0) is None
    assert (directory / f"{uid}.jsonl").read_bytes() == before


# --- the README's recipes for reading runs back ----------------------------------------------

README = Path(__file__).parents[2] / "README.md"


def readme_recipes() -> list[str]:
    """The Python blocks of the README's "Where the data goes" that read run files."""
    section = README.read_text(encoding="utf-8").split("## Where the data goes")[1].split("\n## ")[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    return [block for block in blocks if "state/runs" in block]


@pytest.mark.parametrize("recipe", readme_recipes(), ids=["databroker", "callback"])
def test_the_readme_reads_a_run_back(
    recipe: str, RE: RunEngine, tmp_path: Path, errors: Errors, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ophyd.sim import motor1

    writer = DocumentWriter([RunFiles(tmp_path / "state" / "runs")], errors)
    RE.subscribe(writer)
    RE(count([det], 1))
    RE(scan([det1], motor1, -1, 1, 3), task_id="t-1", correlation_id="c-1")  # the newest
    writer.close(WAIT)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    exec(compile(recipe, "README.md", "exec"), {})
    shown = capsys.readouterr().out
    assert errors == []
    if "databroker" in recipe:
        assert "2 t-1 c-1\nsuccess\n" in shown
        assert re.search(r"motor1 +\(time\) float64 .* -1\.0 0\.0 1\.0", shown), shown
    else:
        rows = [line.split("|")[1:-1] for line in shown.splitlines() if re.match(r"\| +\d+ \|", line)]
        assert [float(row[2]) for row in rows] == [-1.0, 0.0, 1.0], shown


def test_a_line_that_is_no_name_and_document_array_is_refused(tmp_path: Path) -> None:
    (tmp_path / "r1.jsonl").write_text('["start",{"uid":"r1"}]\n{"name":"stop","doc":{}}\n')
    with pytest.raises(ValueError, match=r"^line 2 is not a \[name, doc\] array$"):
        read_run(tmp_path, "r1")
