"""Tests of the worker behind WorkerService: real RunEngine, real ophyd.sim devices."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from ophyd.sim import SynAxis, SynGauss

from ioc.worker.context import PlanContext
from ioc.worker.devices import DeviceEntry, DeviceRegistry
from ioc.documents import RunProgress
from ioc.errors import RequestError
from ioc.models import TaskResult, WorkerState
from ioc.service import WorkerService
from ioc.service.store import StateStore
from tests.unit.recording import Recorder



@pytest.fixture
def run_engine() -> RunEngine:
    return RunEngine(context_managers=[], call_returns_result=True)


@pytest.fixture
def context() -> PlanContext:
    motor1 = SynAxis(name="motor1")
    det1 = SynGauss("det1", motor1, "motor1", center=0, Imax=1, sigma=1)
    entries = {d.name: DeviceEntry(d.name, "test", 0, d, None) for d in (motor1, det1)}
    return PlanContext.load(["plans", "tests.integration.sample_plans"], DeviceRegistry(entries))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def idle(
    run_engine: RunEngine, context: PlanContext, recorder: Recorder, tmp_path: Path
) -> WorkerService:
    """A service whose worker is not started: its queue keeps what it is given."""
    store = StateStore.in_directory(tmp_path)
    service = WorkerService(
        run_engine, context, reload_context=lambda: context, store=store, continue_on_error=True
    )
    service.subscribe(recorder)
    return service


@pytest.fixture
def service(idle: WorkerService) -> Iterator[WorkerService]:
    idle.start()
    yield idle
    idle.stop()


@pytest.fixture
def starts(run_engine: RunEngine) -> list[dict[str, Any]]:
    """The start documents of every run."""
    documents: list[dict[str, Any]] = []
    run_engine.subscribe(lambda name, doc: documents.append(doc), "start")
    return documents


def request(name: str, **fields: Any) -> str:
    return json.dumps({"name": name, **fields})


COUNT = request("count", params={"detectors": ["det1"], "num": 2})


def test_count_succeeds(service: WorkerService, recorder: Recorder, starts: list) -> None:
    task = service.submit(COUNT)
    [outcome] = recorder.outcomes(1)
    assert outcome.task is task
    assert outcome.result == TaskResult.SUCCESS
    assert outcome.error is None and outcome.error_message is None
    assert outcome.run_uids == (starts[0]["uid"],)
    assert recorder.of("started") == [task]


def test_start_document(service: WorkerService, recorder: Recorder, starts: list) -> None:
    """The ids and the request's metadata."""
    metadata = {"sample": "Si", "operator": {"name": "ann"}}
    params = {"detector": "det1"}
    text = request("read_peak", params=params, correlation_id="c", metadata=metadata)
    task = service.submit(text)
    [outcome] = recorder.outcomes(1)
    assert outcome.result == TaskResult.SUCCESS, outcome.error
    [start] = starts
    assert (start["task_id"], start["correlation_id"]) == (task.task_id, "c")
    assert (start["sample"], start["operator"]) == ("Si", {"name": "ann"})


def test_metadata_does_not_leak(service: WorkerService, recorder: Recorder, starts: list) -> None:
    first = service.submit(request("count", params={"detectors": ["det1"]}, metadata={"op": 1}))
    second = service.submit(COUNT)
    outcomes = recorder.outcomes(2)
    assert [outcome.run_uids for outcome in outcomes] == [(start["uid"],) for start in starts]
    assert [start["task_id"] for start in starts] == [first.task_id, second.task_id]
    assert starts[0]["op"] == 1
    assert "op" not in starts[1]
    assert starts[1]["correlation_id"] == second.task_id


def test_failure_then_next_task(service: WorkerService, recorder: Recorder) -> None:
    failing = service.submit(request("fail"))
    service.submit(COUNT)
    failed, succeeded = recorder.outcomes(2)
    assert failed.result == TaskResult.FAILED
    assert failed.error == "ValueError: boom"
    assert failed.error_message == f"{failing.task_id}: ValueError: boom"
    assert failed.run_uids == ()
    assert succeeded.result == TaskResult.SUCCESS and len(succeeded.run_uids) == 1


def test_tasks_run_in_submission_order(service: WorkerService, recorder: Recorder) -> None:
    tasks = [service.submit(request("fail", params={"message": str(n)})) for n in range(5)]
    outcomes = recorder.outcomes(5)
    assert [outcome.task for outcome in outcomes] == tasks
    assert [outcome.error for outcome in outcomes] == [f"ValueError: {n}" for n in range(5)]
    assert recorder.of("started") == tasks
    assert len(service.queue) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "request: not valid JSON"),
        ('{"params": {}}', "name: Field required"),
        (request("nope"), "name: unknown plan 'nope'"),
        (request("count", params={"detectors": ["det9"]}), "params.detectors.0: unknown device"),
        (request("read_peak", params={"detector": "motor1"}), "params.detector: device 'motor1'"),
        (request("count", params={"detectors": ["det1"]}, extra=1), "extra: Extra inputs"),
    ],
)
def test_bad_requests_are_refused_and_not_queued(
    idle: WorkerService, recorder: Recorder, text: str, message: str
) -> None:
    first = idle.submit(COUNT)
    with pytest.raises(RequestError) as info:
        idle.submit(text)
    assert str(info.value).startswith(message)
    second = idle.submit(COUNT)
    assert idle.queue.snapshot() == [first, second]
    assert [ids for ids, _ in recorder.of("queue")] == [[first.task_id], [first.task_id, second.task_id]]


def test_state_running_then_idle(service: WorkerService, recorder: Recorder) -> None:
    service.submit(COUNT)
    recorder.outcomes(1)
    assert recorder.of("state") == [WorkerState.RUNNING, WorkerState.IDLE]


def test_run_progress(service: WorkerService, recorder: Recorder, starts: list) -> None:
    scan = {"detectors": ["det1"], "motor": "motor1", "start": -1, "stop": 1, "num": 4}
    service.submit(request("scan", params=scan))
    [outcome] = recorder.outcomes(1)
    progress = recorder.of("progress")
    assert progress[0] == RunProgress(run_uid=outcome.run_uids[0], scan_id=starts[0]["scan_id"])
    assert [p.percent for p in progress[1:-1]] == [25.0, 50.0, 75.0, 100.0]
    assert progress[-1] == RunProgress(scan_id=starts[0]["scan_id"], percent=100.0)  # run closed
