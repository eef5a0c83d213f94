"""The bus view: blueapi's events built from the service's reports, checked against the JSON
schema of blueapi 1.21.1's models (tests/data, generated from its pydantic models).
"""

import json
import math
import time
from pathlib import Path

import jsonschema
import pytest

from ioc.messages import (
    DeviceProgress,
    DocumentEmitted,
    QueueChanged,
    ShownState,
    TaskFinished,
    TaskStarted,
    TaskSubmitted,
)
from ioc.models import PlanReturn, Task, TaskOutcome, TaskResult, WorkerState, parse_request
from ioc.service.bus import BusMessage, BusView

SCHEMA = json.loads((Path(__file__).parents[1] / "data" / "blueapi-1.21-event-schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
MODELS = {
    name: jsonschema.Draft202012Validator({"$defs": SCHEMA["$defs"], "$ref": f"#/$defs/{name}"})
    for name in ("WorkerEvent", "ProgressEvent", "DataEvent")
}


def model_of(body: dict) -> str:
    """Which of blueapi's models `body` is valid as (exactly one)."""
    fits = [name for name, validator in MODELS.items() if validator.is_valid(body)]
    assert len(fits) == 1, (fits, body)
    return fits[0]


def strict(text: str) -> dict:
    """`text` parsed as RFC 8259 JSON: no NaN or Infinity."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


class Recorder:
    def __init__(self) -> None:
        self.messages: list[BusMessage] = []

    def __call__(self, message: BusMessage) -> None:
        self.messages.append(message)

    def bodies(self) -> list[dict]:
        return [strict(message.body) for message in self.messages]


def task(correlation_id: str | None = None) -> Task:
    text = json.dumps({"name": "scan", "correlation_id": correlation_id} if correlation_id else {"name": "scan"})
    return Task.create(parse_request(text), {})


def finished(task_: Task, result: TaskResult, error: str | None = None, returned: PlanReturn | None = None) -> TaskFinished:
    now = time.time()
    return TaskFinished(TaskOutcome(task_, result, now - 1, now, error=error, returned=returned or PlanReturn()))


def run_task(view: BusView, task_: TaskOutcome | Task, end: TaskFinished) -> None:
    assert isinstance(task_, Task)
    view(TaskSubmitted(task_))
    view(TaskStarted(task_, time.time()))
    view(ShownState(WorkerState.RUNNING))
    view(DocumentEmitted("start", {"uid": "s1", "time": 1.0, "scan_id": 1}))
    view(DeviceProgress({"motor1": {"current": 0.5, "initial": 0.0, "target": 1.0, "unit": "mm",
                                    "precision": 3, "percentage": 50.0, "done": False}}))
    view(DocumentEmitted("event", {"uid": "e1", "seq_num": 1, "data": {"det1": math.nan}}))
    view(ShownState(WorkerState.IDLE))
    view(end)


def test_a_successful_task_is_told_as_blueapi_tells_it() -> None:
    sent = Recorder()
    view = BusView(sent)
    view(ShownState(WorkerState.IDLE))
    scan = task("my-correlation")
    run_task(view, scan, finished(scan, TaskResult.SUCCESS, returned=PlanReturn("str", "s1")))
    bodies = sent.bodies()
    for body in bodies:
        VALIDATOR.validate(body)
    assert [model_of(body) for body in bodies] == [
        "WorkerEvent", "WorkerEvent", "DataEvent", "ProgressEvent", "DataEvent", "WorkerEvent", "WorkerEvent",
    ]  # fmt: skip
    assert not VALIDATOR.is_valid({**bodies[0], "task_id": scan.task_id})  # blueapi forbids extras
    idle, running, start, progress, event, idle_again, complete = bodies
    assert idle == {"state": "IDLE", "task_status": None, "errors": [], "warnings": []}
    assert running["task_status"] == {"task_id": scan.task_id, "result": None, "task_complete": False, "task_failed": False}
    assert start == {"name": "start", "doc": {"uid": "s1", "time": 1.0, "scan_id": 1}, "task_id": scan.task_id}
    assert progress["statuses"]["motor1"] == {
        "display_name": "motor1", "current": 0.5, "initial": 0.0, "target": 1.0, "unit": "mm",
        "precision": 3, "done": False, "percentage": 0.5, "time_elapsed": None, "time_remaining": None,
    }  # fmt: skip
    assert event["doc"]["data"] == {"det1": None}  # strict JSON: NaN is null
    assert idle_again["state"] == "IDLE" and idle_again["task_status"]["task_complete"] is False
    assert complete == {
        "state": "IDLE",
        "task_status": {"task_id": scan.task_id, "result": {"outcome": "success", "result": "s1", "type": "str"},
                        "task_complete": True, "task_failed": False},
        "errors": [], "warnings": [],
    }  # fmt: skip
    assert [message.headers for message in sent.messages[1:]] == [
        {"correlation-id": "my-correlation", "task-id": scan.task_id, "user": scan.user}
    ] * 6
    assert sent.messages[0].headers == {}  # no task: no correlation id
    assert all(" " not in message.body for message in sent.messages)  # compact


@pytest.mark.parametrize(
    ("result", "error", "expected"),
    [
        (TaskResult.FAILED, "ValueError: det1 is broken", {"outcome": "error", "type": "ValueError", "message": "det1 is broken"}),
        (TaskResult.ABORTED, "Aborted: aborted by an operator", {"outcome": "error", "type": "Aborted", "message": "aborted by an operator"}),
        (TaskResult.HALTED, "Halted", {"outcome": "error", "type": "Halted", "message": ""}),
    ],
)
def test_a_failed_task_carries_its_error(result: TaskResult, error: str, expected: dict) -> None:
    sent = Recorder()
    view = BusView(sent)
    scan = task()
    run_task(view, scan, finished(scan, result, error))
    complete = sent.bodies()[-1]
    VALIDATOR.validate(complete)
    assert complete["task_status"]["task_failed"] is True
    assert complete["task_status"]["result"] == expected
    assert complete["errors"] == [expected["message"] or expected["type"]]


def test_a_stopped_task_is_a_success_with_nothing_returned() -> None:
    sent = Recorder()
    view = BusView(sent)
    scan = task()
    run_task(view, scan, finished(scan, TaskResult.STOPPED, "Stopped: stopped by an operator"))
    status = sent.bodies()[-1]["task_status"]
    assert status["result"] == {"outcome": "success", "result": None, "type": "NoneType"}
    assert status["task_failed"] is False


def test_progress_values_blueapi_cannot_take_become_its_defaults() -> None:
    sent = Recorder()
    view = BusView(sent)
    scan = task()
    view(TaskStarted(scan, time.time()))
    view(DeviceProgress({"shutter": {"current": "Open", "initial": [1, 2], "target": True, "unit": None,
                                     "precision": 2.5, "percentage": None, "done": True}}))
    view(DeviceProgress({}))
    first, empty = sent.bodies()
    VALIDATOR.validate(first)
    VALIDATOR.validate(empty)
    assert first["statuses"]["shutter"] == {
        "display_name": "shutter", "current": None, "initial": None, "target": None, "unit": "units",
        "precision": None, "done": True, "percentage": None, "time_elapsed": None, "time_remaining": None,
    }  # fmt: skip
    assert empty == {"task_id": scan.task_id, "statuses": {}}


def test_only_changes_of_state_are_told_and_nothing_without_a_task() -> None:
    sent = Recorder()
    view = BusView(sent)
    view(ShownState(WorkerState.IDLE))
    view(ShownState(WorkerState.IDLE))  # told again (e.g. after a worker restart): no news
    view(QueueChanged([], True))
    view(DocumentEmitted("start", {"uid": "x"}))  # no running task: blueapi has no task_id for it
    view(DeviceProgress({"motor1": {}}))
    view(ShownState(WorkerState.PANICKED))
    assert [body["state"] for body in sent.bodies()] == ["IDLE", "PANICKED"]


def test_progress_goes_out_at_most_ten_times_a_second_the_latest_before_anything_else() -> None:
    sent = Recorder()
    now = [100.0]
    view = BusView(sent, clock=lambda: now[0])
    scan = task()
    view(TaskStarted(scan, time.time()))

    def moving(position: float, done: bool = False) -> DeviceProgress:
        return DeviceProgress({"motor1": {"current": position, "initial": 0.0, "target": 1.0,
                                          "percentage": 100 * position, "done": done}})

    for position in (0.1, 0.2, 0.3):  # within 0.1 s: the first goes, the latest is held
        view(moving(position))
        now[0] += 0.02
    assert [body["statuses"]["motor1"]["current"] for body in sent.bodies()] == [0.1]
    view(DocumentEmitted("event", {"uid": "e1"}))  # the held progress goes first
    view(moving(0.3))  # no news: nothing
    view(moving(1.0, done=True))  # every status done: at once
    now[0] += 0.5
    view(moving(0.9))  # the interval is over: at once
    kinds = [("progress", body["statuses"]["motor1"]["current"]) if "statuses" in body else body["name"]
             for body in sent.bodies()]
    assert kinds == [("progress", 0.1), ("progress", 0.3), "event", ("progress", 1.0), ("progress", 0.9)]
