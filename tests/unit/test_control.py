"""Operator commands through WorkerService: real RunEngine, the simulated beamline of
db/devices.yaml, plans of `plans` and `tests.unit.control_plans`. No Channel Access."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine

from ioc.worker.context import PlanContext
from ioc.control import Command, CommandRefused
from ioc.worker.devices import load_devices
from ioc.models import Task, TaskResult, WorkerState
from ioc.service import WorkerService
from ioc.service.store import StateStore
from ioc.worker import NO_CHECKPOINT, WorkerListener
from tests.unit import control_plans, recording

TIMEOUT = recording.TIMEOUT
DEVICES = Path(__file__).resolve().parents[2] / "db" / "devices.yaml"
NUM = 6  # smotor takes ~0.9 s per 0.4 mm step: a ~4.5 s scan
SCAN = {"detectors": ["det1"], "motor": "smotor", "start": 0, "stop": 2, "num": NUM}
ON_ERROR = pytest.mark.parametrize("go_on", [False, True], ids=["hold", "continue_on_error"])


class Recorder(recording.Recorder):
    """Also records smotor's readback."""

    def smotor(self, reading: dict) -> None:
        self._record("smotor", reading["smotor"]["value"])


def ask(name: str, **params: Any) -> str:
    return json.dumps({"name": name, "params": params})


@pytest.fixture
def run_engine() -> RunEngine:
    return RunEngine(context_managers=[], call_returns_result=True)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def go_on() -> bool:  # the service's continue_on_error
    return False


@pytest.fixture
def service(
    run_engine: RunEngine, recorder: Recorder, go_on: bool, tmp_path: Path
) -> Iterator[WorkerService]:
    """A started service; afterwards its task is aborted and it is stopped."""
    devices = load_devices(DEVICES, run_engine.loop)
    assert devices.unavailable() == {}
    context = PlanContext.load(["plans", "tests.unit.control_plans"], devices)
    store = StateStore.in_directory(tmp_path)
    service = WorkerService(
        run_engine, context, reload_context=lambda: context, store=store, continue_on_error=go_on
    )
    service.subscribe(recorder)
    run_engine.subscribe(recorder)
    readback = devices.available()["smotor"].user_readback
    run_engine.loop.call_soon_threadsafe(readback.subscribe_reading, recorder.smotor)
    control_plans.CLEANUPS.clear()
    service.start()
    yield service
    service.clear()
    if len(recorder.of("started")) > len(recorder.of("finished")):
        service.command(Command.ABORT).exception(TIMEOUT)  # refused if it has just ended
    service.stop()


def paused_scan(service: WorkerService, recorder: Recorder, command: Command) -> list[dict]:
    """Start a scan, pause it with `command` while smotor heads for the 3rd point."""
    service.submit(ask("scan", **SCAN))
    moving = lambda e: len(e) == 2 and recorder.of("smotor")[-1] != e[1]["data"]["smotor"]
    recorder.wait(lambda: moving(recorder.events()), "move to the 3rd point")
    service.command(command).result(TIMEOUT)
    assert service.state == WorkerState.PAUSED
    return recorder.events()


def resume_to_success(service: WorkerService, recorder: Recorder, before: list[dict]) -> None:
    """Resume: the task succeeds with seq_num 1..NUM, the events before the pause kept."""
    assert recorder.events() == before  # nothing happens while paused
    service.command(Command.RESUME).result(TIMEOUT)
    [outcome] = recorder.outcomes(1)
    assert outcome.result == TaskResult.SUCCESS, outcome.error
    assert [event["seq_num"] for event in recorder.events()] == list(range(1, NUM + 1))
    assert recorder.events()[: len(before)] == before
    assert recorder.exit_statuses() == ["success"]


def running(service: WorkerService, recorder: Recorder, plan: str, until: str = "", **params):
    """Submit the first task; return once the RunEngine runs it (not at task_started: the
    RunEngine is still idle then) and, if `until`, has emitted an `until` document."""
    task = service.submit(ask(plan, **params))
    started = lambda: WorkerState.RUNNING in recorder.of("state")  # noqa: E731
    recorder.wait(lambda: started() and (not until or recorder.of(until)), f"running {plan}")
    return task


@pytest.mark.parametrize("command", [Command.PAUSE, Command.PAUSE_DEFER])
def test_pause_and_resume(service: WorkerService, recorder: Recorder, command: Command) -> None:
    """PAUSE cuts the move to the 3rd point short (rewound on resume); PAUSE:DEFER lets it
    end and the 3rd point be read, then lands on the checkpoint before the next move."""
    before = paused_scan(service, recorder, command)
    where = recorder.of("smotor")[-1]
    if command is Command.PAUSE:
        assert len(before) == 2 and 0.4 < where < 0.8
    else:
        assert len(before) == 3 and where == pytest.approx(before[-1]["data"]["smotor"])
    resume_to_success(service, recorder, before)


def test_pause_without_checkpoint(service: WorkerService, recorder: Recorder) -> None:
    """bluesky cannot pause a run with no checkpoint: it aborts it (FailedPause). The task ends
    ABORTED, PAUSE fails with CommandRefused, and run_wrapper closes the run as 'fail'."""
    running(service, recorder, "no_checkpoint", until="event", detector="det1", seconds=30)
    with pytest.raises(CommandRefused, match="^the task ended before it paused$"):
        service.command(Command.PAUSE).result(TIMEOUT)
    [outcome] = recorder.outcomes(1)
    assert (outcome.result, outcome.error) == (TaskResult.ABORTED, f"Aborted: {NO_CHECKPOINT}")
    assert recorder.exit_statuses() == ["fail"] and service.state == WorkerState.IDLE


@pytest.mark.parametrize(
    ("command", "result", "error", "exit_status", "cleaned_up"),
    [
        (Command.STOP, TaskResult.STOPPED, "Stopped: stopped by STOP", "success", True),
        (Command.ABORT, TaskResult.ABORTED, "Aborted: aborted by ABORT", "abort", True),
        (Command.HALT, TaskResult.HALTED, "Halted: halted by HALT", "abort", False),
    ],
)
@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
def test_stop_abort_halt(
    service: WorkerService, recorder: Recorder, paused: bool,
    command: Command, result: TaskResult, error: str, exit_status: str, cleaned_up: bool,
) -> None:  # fmt: skip
    """The plan's cleanup (finalize_wrapper: motor2 to 5) runs on STOP and ABORT, not HALT."""
    motor2 = service.context.devices.available()["motor2"]
    running(service, recorder, "guarded_sleep", until="start", motor="motor2", seconds=30)
    if paused:
        service.command(Command.PAUSE).result(TIMEOUT)
        assert service.state == WorkerState.PAUSED
    service.command(command).result(TIMEOUT)
    [outcome] = recorder.outcomes(1)
    assert (outcome.result, outcome.error) == (result, error)
    assert recorder.exit_statuses() == [exit_status]
    assert control_plans.CLEANUPS == (["guarded_sleep"] if cleaned_up else [])
    assert motor2.position == (5 if cleaned_up else 0)


def test_halt_frees_a_stuck_move(service: WorkerService, recorder: Recorder) -> None:
    """And RELOAD is refused while a task runs, done when idle."""
    running(service, recorder, "mv", motor="smotor", position=10000)  # ~10000 s at 1 mm/s
    assert recorder.stays_false(lambda: len(recorder.of("finished")) > 0)
    with pytest.raises(CommandRefused, match="^a task is running"):
        service.command(Command.RELOAD).result(TIMEOUT)
    begun = time.monotonic()
    service.command(Command.HALT).result(TIMEOUT)
    assert time.monotonic() - begun < 2.0
    assert recorder.outcomes(1)[0].result == TaskResult.HALTED
    service.command(Command.RELOAD).result(TIMEOUT)
    assert recorder.of("catalog") == [None]  # one: the refused RELOAD reported nothing


@ON_ERROR
def test_panic_while_running(service: WorkerService, recorder: Recorder, go_on: bool) -> None:
    """PANIC aborts the task and latches the queue; ALL_IS_WELL lifts the latch, yet the
    abort holds the queue unless continue_on_error."""
    running(service, recorder, "sleep", seconds=30)
    service.command(Command.PANIC).result(TIMEOUT)
    [outcome] = recorder.outcomes(1)
    assert (outcome.result, outcome.error) == (TaskResult.ABORTED, "Aborted: aborted by PANIC")
    assert service.state == WorkerState.PANICKED
    service.submit(ask("sleep", seconds=0))
    assert recorder.stays_false(lambda: len(recorder.of("started")) > 1)
    with pytest.raises(CommandRefused, match="panicked"):
        service.command(Command.RESUME).result(TIMEOUT)
    service.command(Command.ALL_IS_WELL).result(TIMEOUT)
    assert WorkerState.PANICKED != service.state != WorkerState.PAUSED
    if not go_on:
        assert recorder.of("state")[-1] == WorkerState.IDLE
        assert recorder.stays_false(lambda: len(recorder.of("started")) > 1)
        assert not service.queue.enabled and recorder.of("queue")[-1][1] is False
        service.queue.set_enabled(True)
    assert [o.result for o in recorder.outcomes(2)] == [TaskResult.ABORTED, TaskResult.SUCCESS]


def test_panic_while_paused(
    service: WorkerService, recorder: Recorder, run_engine: RunEngine
) -> None:
    """The paused task stays paused; it resumes only after ALL_IS_WELL."""
    before = paused_scan(service, recorder, Command.PAUSE)
    service.command(Command.PANIC).result(TIMEOUT)
    assert service.state == WorkerState.PANICKED and run_engine.state == "paused"
    with pytest.raises(CommandRefused, match="panicked"):
        service.command(Command.RESUME).result(TIMEOUT)
    service.command(Command.ALL_IS_WELL).result(TIMEOUT)
    assert service.state == WorkerState.PAUSED == recorder.of("state")[-1]
    resume_to_success(service, recorder, before)


@pytest.mark.parametrize(("command", "message"), [
    (Command.RESUME, "nothing is paused"), (Command.ALL_IS_WELL, "the worker is not panicked"),
    *((command, "nothing is running") for command in (Command.PAUSE, Command.PAUSE_DEFER)),
    *((command, "no task is running") for command in (Command.STOP, Command.ABORT, Command.HALT)),
])  # fmt: skip
def test_refused_while_idle(service: WorkerService, command: Command, message: str) -> None:
    with pytest.raises(CommandRefused, match=message):
        service.command(command).result(TIMEOUT)
    assert service.state == WorkerState.IDLE


@ON_ERROR
def test_hold_on_failure(service: WorkerService, recorder: Recorder, go_on: bool) -> None:
    service.queue.set_enabled(False)
    service.submit(ask("explode", message="bang"))
    waiting = service.submit(ask("sleep", seconds=0))
    service.queue.set_enabled(True)
    failed = recorder.outcomes(1)[0]  # with continue_on_error the next may be done too
    assert (failed.result, failed.error) == (TaskResult.FAILED, "ValueError: bang")
    if go_on:
        assert recorder.outcomes(2)[1].result == TaskResult.SUCCESS and service.queue.enabled
    else:
        assert recorder.stays_false(lambda: len(recorder.of("started")) > 1)
        assert recorder.of("queue")[-1] == ([waiting.task_id], False) and not service.queue.enabled


def test_removed_tasks_never_run(service: WorkerService, recorder: Recorder) -> None:
    blocker = running(service, recorder, "sleep", seconds=30)
    a, b, c, d = (service.submit(ask("sleep", seconds=0)) for _ in range(4))
    assert service.remove(b.task_id) is b
    for unknown in (b.task_id, "no-such-task"):
        with pytest.raises(KeyError):
            service.remove(unknown)
    assert service.clear() == [a, c, d] and service.queue.snapshot() == []
    assert recorder.of("removed") == [b, a, c, d]
    e = service.submit(ask("sleep", seconds=0))
    service.command(Command.STOP).result(TIMEOUT)
    assert [o.task for o in recorder.outcomes(2)] == [blocker, e]
    assert recorder.stays_false(lambda: len(recorder.of("started")) > 2)
    assert recorder.of("started") == [blocker, e]


@pytest.mark.parametrize(
    ("command", "result", "reason"),
    [
        (Command.STOP, TaskResult.STOPPED, "stopped by STOP"),
        (Command.ABORT, TaskResult.ABORTED, "aborted by ABORT"),
        (Command.HALT, TaskResult.HALTED, "halted by HALT"),
        (Command.PANIC, TaskResult.ABORTED, "aborted by PANIC"),
    ],
)
def test_a_command_right_at_the_start_of_a_task_is_not_lost(
    service: WorkerService, recorder: Recorder, command: Command, result: TaskResult, reason: str
) -> None:
    """Sent as the task starts (its RunEngine call not yet begun): the task never runs."""
    sent: list = []

    class Commander(WorkerListener):
        def task_started(self, task: Task, started: float) -> None:
            sent.append(service.command(command))  # from the worker thread: do not wait here

    service.subscribe(Commander())
    service.submit(ask("sleep", seconds=30))
    [outcome] = recorder.outcomes(1)
    assert (outcome.result, outcome.error) == (result, f"{result}: {reason}")
    sent[0].result(TIMEOUT)
    assert outcome.finished - outcome.started < 5
