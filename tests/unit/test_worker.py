"""Tests of the worker behind WorkerService: a real worker process (`python -m ioc.worker`)
with a real RunEngine and real ophyd.sim devices (motor1, det1). No Channel Access."""

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ioc.errors import RequestError
from ioc.models import Command, RunProgress, Task, TaskOutcome, TaskResult, WorkerState
from ioc.service import CommandRefused, StoreError, WorkerService
from ioc.service.store import StateStore
from tests.unit import recording
from tests.unit.recording import TIMEOUT, Recorder, serving, submit

PLANS = ("plans", "tests.integration.sample_plans")
DEVICES = """\
motor1:
  class: ophyd.sim.SynAxis
det1:
  class: ophyd.sim.SynGauss
  kwargs: {motor: !device motor1, motor_field: motor1, center: 0, Imax: 1, sigma: 1}
"""


@pytest.fixture
def settings(tmp_path: Path):
    """motor1 and det1 only (as the in-process tests built them by hand); go on after errors."""
    devices = tmp_path / "devices.yaml"
    devices.write_text(DEVICES)
    return recording.settings(tmp_path / "state", devices, PLANS, continue_on_error=True)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def idle(settings, recorder: Recorder) -> Iterator[WorkerService]:
    """A service whose queue is on hold (no task starts): its queue keeps what it is given.
    (Requests are validated by the worker process, so the worker is up.)"""
    with serving(settings, recorder, enabled=False) as service:
        yield service


@pytest.fixture
def service(settings, recorder: Recorder) -> Iterator[WorkerService]:
    with serving(settings, recorder) as service:
        yield service


@pytest.fixture
def starts(recorder: Recorder) -> Sequence[dict[str, Any]]:
    """The start documents of every run (as the recorder has them at each use)."""
    return Documents(recorder, "start")


class Documents(Sequence):
    """The documents called `name` the recorder has so far."""

    def __init__(self, recorder: Recorder, name: str) -> None:
        self._recorder, self._name = recorder, name

    def __getitem__(self, index: Any) -> Any:
        return self._recorder.of(self._name)[index]

    def __len__(self) -> int:
        return len(self._recorder.of(self._name))


def request(name: str, **fields: Any) -> str:
    return json.dumps({"name": name, **fields})


COUNT = request("count", params={"detectors": ["det1"], "num": 2})


def test_count_succeeds(service: WorkerService, recorder: Recorder, starts: list) -> None:
    task = submit(service, COUNT)
    [outcome] = recorder.outcomes(1)
    assert outcome.task == task  # equal, not the same object: it came back from the worker
    assert outcome.result == TaskResult.SUCCESS
    assert outcome.error is None and outcome.error_message is None
    assert outcome.run_uids == (starts[0]["uid"],)
    assert recorder.of("started") == [task]


def test_start_document(service: WorkerService, recorder: Recorder, starts: list) -> None:
    """The ids and the request's metadata."""
    metadata = {"sample": "Si", "operator": {"name": "ann"}}
    params = {"detector": "det1"}
    text = request("read_peak", params=params, correlation_id="c", metadata=metadata)
    task = submit(service, text)
    [outcome] = recorder.outcomes(1)
    assert outcome.result == TaskResult.SUCCESS, outcome.error
    [start] = starts
    assert (start["task_id"], start["correlation_id"]) == (task.task_id, "c")
    assert (start["sample"], start["operator"]) == ("Si", {"name": "ann"})


def test_metadata_does_not_leak(service: WorkerService, recorder: Recorder, starts: list) -> None:
    first = submit(service, request("count", params={"detectors": ["det1"]}, metadata={"op": 1}))
    second = submit(service, COUNT)
    outcomes = recorder.outcomes(2)
    assert [outcome.run_uids for outcome in outcomes] == [(start["uid"],) for start in starts]
    assert [start["task_id"] for start in starts] == [first.task_id, second.task_id]
    assert starts[0]["op"] == 1
    assert "op" not in starts[1]
    assert starts[1]["correlation_id"] == second.task_id


def test_failure_then_next_task(service: WorkerService, recorder: Recorder) -> None:
    failing = submit(service, request("fail"))
    submit(service, COUNT)
    failed, succeeded = recorder.outcomes(2)
    assert failed.result == TaskResult.FAILED
    assert failed.error == "ValueError: boom"
    assert failed.error_message == f"{failing.task_id}: ValueError: boom"
    assert failed.run_uids == ()
    assert succeeded.result == TaskResult.SUCCESS and len(succeeded.run_uids) == 1


def test_tasks_run_in_submission_order(service: WorkerService, recorder: Recorder) -> None:
    tasks = [submit(service, request("fail", params={"message": str(n)})) for n in range(5)]
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
    first = submit(idle, COUNT)
    with pytest.raises(RequestError) as info:
        submit(idle, text)  # refused at once (parse errors) or by the worker's validation
    assert str(info.value).startswith(message)
    second = submit(idle, COUNT)
    assert idle.queue.snapshot() == [first, second]
    assert [ids for ids, _ in recorder.of("queue")] == [
        [first.task_id],
        [first.task_id, second.task_id],
    ]
    assert recorder.of("rejected") == [str(info.value)]


def test_state_running_then_idle(service: WorkerService, recorder: Recorder) -> None:
    submit(service, COUNT)
    recorder.outcomes(1)
    assert recorder.of("state") == [WorkerState.RUNNING, WorkerState.IDLE]


def test_run_progress(service: WorkerService, recorder: Recorder, starts: list) -> None:
    scan = {"detectors": ["det1"], "motor": "motor1", "start": -1, "stop": 1, "num": 4}
    submit(service, request("scan", params=scan))
    [outcome] = recorder.outcomes(1)
    progress = recorder.of("progress")
    assert progress[0] == RunProgress(run_uid=outcome.run_uids[0], scan_id=starts[0]["scan_id"])
    assert [p.percent for p in progress[1:-1]] == [25.0, 50.0, 75.0, 100.0]
    assert progress[-1] == RunProgress(scan_id=starts[0]["scan_id"], percent=100.0)  # run closed


# --- the IOC side goes on when something fails ------------------------------------------
class FailingStore(StateStore):
    """A state database whose method `failing` ("start" or "finish") raises once."""

    failing = ""

    def _fail_once(self, method: str) -> None:
        if self.failing == method:
            self.failing = ""
            raise StoreError(f"state database {self.path}: disk I/O error (injected)")

    def start(self, task: Task) -> None:
        self._fail_once("start")
        super().start(task)

    def finish(self, outcome: TaskOutcome) -> None:
        self._fail_once("finish")
        super().finish(outcome)


def test_a_failed_finish_does_not_stop_the_next_task(settings, recorder: Recorder) -> None:
    """The end of the first task cannot be recorded: StoreFailed says so, the task's end is
    still reported, and the next task runs."""
    store = FailingStore.in_directory(settings.state_dir)
    with serving(settings, recorder, store=store) as service:
        store.failing = "finish"
        first = submit(service, COUNT)
        second = submit(service, COUNT)
        outcomes = recorder.outcomes(2)
        assert [(o.task, o.result) for o in outcomes] == [
            (first, TaskResult.SUCCESS), (second, TaskResult.SUCCESS),
        ]  # fmt: skip
        [error] = recorder.of("store_failed")
        assert error.startswith(f"cannot record the end of task {first.task_id}: ")
        assert error.endswith("disk I/O error (injected)")
        assert [o.task.task_id for o in store.history()] == [second.task_id]
        assert service.queue.enabled


def test_a_failed_start_holds_the_queue_and_the_task_runs_later(
    settings, recorder: Recorder
) -> None:
    """The start of a task cannot be journaled: StoreFailed says so, the queue holds with the
    task still first; once the operator lets the queue run again, it runs."""
    store = FailingStore.in_directory(settings.state_dir)
    with serving(settings, recorder, store=store, enabled=False) as service:
        store.failing = "start"
        task = submit(service, COUNT)
        service.set_enabled(True)
        recorder.wait(lambda: recorder.of("store_failed"), "StoreFailed")
        [error] = recorder.of("store_failed")
        assert (
            error
            == f"cannot start the next task: state database {store.path}: disk I/O error (injected)"
        )
        recorder.wait(lambda: recorder.of("queue")[-1] == ([task.task_id], False), "queue on hold")
        assert recorder.stays_false(lambda: recorder.of("started"))
        service.set_enabled(True)
        [outcome] = recorder.outcomes(1)
        assert (outcome.task, outcome.result) == (task, TaskResult.SUCCESS)
        assert recorder.of("started") == [task]
        assert [o.task.task_id for o in store.history()] == [task.task_id]


def test_a_command_that_fails_unexpectedly_still_answers(
    service: WorkerService, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handling PAUSE raises (the pipe to the worker broke, say): the command's future fails
    with CommandRefused naming the error, and later commands are carried out as before."""

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("pipe to the worker broke (injected)")

    with monkeypatch.context() as patched:
        patched.setattr(service.supervisor, "command", broken)
        with pytest.raises(
            CommandRefused, match=r"^OSError: pipe to the worker broke \(injected\)$"
        ):
            service.command(Command.PAUSE).result(TIMEOUT)
    with pytest.raises(CommandRefused, match="nothing is running"):
        service.command(Command.PAUSE).result(TIMEOUT)
    submit(service, COUNT)
    assert recorder.outcomes(1)[0].result == TaskResult.SUCCESS
