"""Operator commands through WorkerService: a real worker process (real RunEngine), the
simulated beamline of db/devices.yaml, plans of `plans` and `tests.unit.control_plans`.
No Channel Access.

The devices live in the worker process: what the in-process tests read off a device
(smotor's readback, motor2's position) is observed here through the worker's reports (the
progress of smotor's moves) and documents (a `count` of motor2 after the task).
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ioc.identity import Writer
from ioc.messages import DeviceProgress, Report, TaskStarted
from ioc.models import Command, TaskResult, WorkerState
from ioc.service import CommandRefused, NotPending, WorkerService
from ioc.worker.engine import NO_CHECKPOINT
from tests.unit import recording
from tests.unit.recording import serving, submit

TIMEOUT = recording.TIMEOUT
DEVICES = Path(__file__).resolve().parents[2] / "db" / "devices.yaml"
PLANS = ("plans", "tests.unit.control_plans")
NUM = 6  # smotor takes ~0.9 s per 0.4 mm step: a ~4.5 s scan
SCAN = {"detectors": ["det1"], "motor": "smotor", "start": 0, "stop": 2, "num": NUM}
ON_ERROR = pytest.mark.parametrize("go_on", [False, True], ids=["hold", "continue_on_error"])
HALT_TIMEOUT = 20.0  # HALT/PANIC kill a worker that has not ended the task by then: not here


class Recorder(recording.Recorder):
    """Also records smotor's position while it moves (`smotor`): the current position of
    the progress reports of its moves (its readback, at up to 10 per second)."""

    def __call__(self, report: Report) -> None:
        super().__call__(report)
        if isinstance(report, DeviceProgress):
            current = (report.views.get("smotor") or {}).get("current")
            if current is not None:
                self._record("smotor", current)

BOB = Writer("bob", "ws4")


def ask(name: str, **params: Any) -> str:
    return json.dumps({"name": name, "params": params})


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def go_on() -> bool:  # the service's continue_on_error
    return False


@pytest.fixture
def service(recorder: Recorder, go_on: bool, tmp_path: Path) -> Iterator[WorkerService]:
    """A started service (its worker loaded); afterwards its task is aborted and it is shut down."""
    config = recording.settings(
        tmp_path, DEVICES, PLANS, continue_on_error=go_on, halt_timeout=HALT_TIMEOUT
    )
    with serving(config, recorder) as service:
        assert all(device["available"] for device in service.catalog.devices), service.catalog
        yield service


def paused_scan(service: WorkerService, recorder: Recorder, command: Command) -> list[dict]:
    """Start a scan, pause it with `command` while smotor heads for the 3rd point."""
    submit(service, ask("scan", **SCAN))
    moving = lambda e: len(e) == 2 and recorder.of("smotor")[-1] != e[1]["data"]["smotor"]  # noqa: E731
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
    task = submit(service, ask(plan, **params))
    started = lambda: WorkerState.RUNNING in recorder.of("state")  # noqa: E731
    recorder.wait(lambda: started() and (not until or recorder.of(until)), f"running {plan}")
    return task


def position_of(service: WorkerService, recorder: Recorder, motor: str) -> float:
    """Where `motor` is now, as a `count` of it reads it (the queue let run for it)."""
    finished = len(recorder.of("finished"))
    service.set_enabled(True)
    submit(service, ask("count", detectors=[motor]))
    outcome = recorder.outcomes(finished + 1)[finished]
    assert outcome.result == TaskResult.SUCCESS, outcome.error
    return recorder.events()[-1]["data"][motor]


@pytest.mark.parametrize("command", [Command.PAUSE, Command.PAUSE_DEFER])
def test_pause_and_resume(service: WorkerService, recorder: Recorder, command: Command) -> None:
    """PAUSE cuts the move to the 3rd point short (rewound on resume); PAUSE:DEFER lets it
    end and the 3rd point be read, then lands on the checkpoint before the next move."""
    before = paused_scan(service, recorder, command)
    where = recorder.of("smotor")[-1]  # the last position its moves reported
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
        (Command.STOP, TaskResult.STOPPED, "Stopped: stopped by bob@ws4", "success", True),
        (Command.ABORT, TaskResult.ABORTED, "Aborted: aborted by bob@ws4", "abort", True),
        (Command.HALT, TaskResult.HALTED, "Halted: halted by bob@ws4", "abort", False),
    ],
)
@pytest.mark.parametrize("paused", [False, True], ids=["running", "paused"])
def test_stop_abort_halt(
    service: WorkerService, recorder: Recorder, paused: bool,
    command: Command, result: TaskResult, error: str, exit_status: str, cleaned_up: bool,
) -> None:  # fmt: skip
    """The plan's cleanup (finalize_wrapper: motor2 to 5) runs on STOP and ABORT, not HALT;
    the outcome names who wrote the command.
    """
    running(service, recorder, "guarded_sleep", until="start", motor="motor2", seconds=30)
    if paused:
        service.command(Command.PAUSE).result(TIMEOUT)
        assert service.state == WorkerState.PAUSED
    service.command(command, BOB).result(TIMEOUT)
    [outcome] = recorder.outcomes(1)
    assert (outcome.result, outcome.error, outcome.ended_by) == (result, error, "bob@ws4")
    assert recorder.exit_statuses() == [exit_status]
    # control_plans.CLEANUPS is set in the worker process: that the cleanup ran shows in
    # motor2's position, which only the cleanup changes (from 0 to 5).
    assert position_of(service, recorder, "motor2") == (5 if cleaned_up else 0)


def test_halt_frees_a_stuck_move(service: WorkerService, recorder: Recorder) -> None:
    """And RELOAD is refused while a task runs, done when idle."""
    running(service, recorder, "mv", motor="smotor", position=10000)  # ~10000 s at 1 mm/s
    assert recorder.stays_false(lambda: len(recorder.of("finished")) > 0)
    with pytest.raises(CommandRefused, match=r"^RELOAD is refused unless idle: task \w{8} \(mv\) is running"):
        service.command(Command.RELOAD).result(TIMEOUT)
    begun = time.monotonic()
    service.command(Command.HALT, BOB).result(TIMEOUT)
    assert time.monotonic() - begun < 2.0
    [outcome] = recorder.outcomes(1)
    assert (outcome.result, outcome.error) == (TaskResult.HALTED, "Halted: halted by bob@ws4")
    service.command(Command.RELOAD).result(recording.START_TIMEOUT)
    assert len(recorder.of("catalog")) == 1  # one: the refused RELOAD reported nothing


@ON_ERROR
def test_panic_while_running(service: WorkerService, recorder: Recorder, go_on: bool) -> None:
    """PANIC aborts the task and latches the queue; ALL_IS_WELL lifts the latch, yet the
    abort holds the queue unless continue_on_error."""
    running(service, recorder, "sleep", seconds=30)
    service.command(Command.PANIC, BOB).result(TIMEOUT)
    [outcome] = recorder.outcomes(1)
    assert (outcome.result, outcome.error) == (TaskResult.ABORTED, "Aborted: aborted by bob@ws4 (PANIC)")
    assert outcome.ended_by == "bob@ws4"
    assert service.state == WorkerState.PANICKED
    submit(service, ask("sleep", seconds=0))
    assert recorder.stays_false(lambda: len(recorder.of("started")) > 1)
    with pytest.raises(CommandRefused, match="panicked"):
        service.command(Command.RESUME).result(TIMEOUT)
    service.command(Command.ALL_IS_WELL).result(TIMEOUT)
    assert WorkerState.PANICKED != service.state != WorkerState.PAUSED
    if not go_on:
        assert recorder.of("state")[-1] == WorkerState.IDLE
        assert recorder.stays_false(lambda: len(recorder.of("started")) > 1)
        assert not service.queue.enabled and recorder.of("queue")[-1][1] is False
        service.set_enabled(True)
    assert [o.result for o in recorder.outcomes(2)] == [TaskResult.ABORTED, TaskResult.SUCCESS]


def test_panic_while_paused(service: WorkerService, recorder: Recorder) -> None:
    """The paused task stays paused; it resumes only after ALL_IS_WELL."""
    before = paused_scan(service, recorder, Command.PAUSE)
    shown = len(recorder.of("state"))
    service.command(Command.PANIC).result(TIMEOUT)
    assert service.state == WorkerState.PANICKED
    with pytest.raises(CommandRefused, match="panicked"):
        service.command(Command.RESUME).result(TIMEOUT)
    # The RunEngine (in the worker) stayed paused: no state change of it was shown (each
    # would be), only the latch; the task has not ended.
    assert recorder.of("state")[shown:] == [WorkerState.PANICKED]
    assert recorder.of("finished") == []
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
    submit(service, ask("explode", message="bang"))
    waiting = submit(service, ask("sleep", seconds=0))
    service.set_enabled(True)
    failed = recorder.outcomes(1)[0]  # with continue_on_error the next may be done too
    assert (failed.result, failed.error) == (TaskResult.FAILED, "ValueError: bang")
    if go_on:
        assert recorder.outcomes(2)[1].result == TaskResult.SUCCESS and service.queue.enabled
    else:
        assert recorder.stays_false(lambda: len(recorder.of("started")) > 1)
        assert recorder.of("queue")[-1] == ([waiting.task_id], False) and not service.queue.enabled


def test_removed_tasks_never_run(service: WorkerService, recorder: Recorder) -> None:
    blocker = running(service, recorder, "sleep", seconds=30)
    a, b, c, d = (submit(service, ask("sleep", seconds=0)) for _ in range(4))
    assert service.remove(b.task_id) is b
    for unknown in (b.task_id, "no-such-task"):
        with pytest.raises(NotPending):
            service.remove(unknown)
    assert service.clear() == [a, c, d] and service.queue.snapshot() == []
    assert recorder.of("removed") == [b, a, c, d]
    e = submit(service, ask("sleep", seconds=0))
    service.command(Command.STOP).result(TIMEOUT)
    assert [o.task for o in recorder.outcomes(2)] == [blocker, e]
    assert recorder.stays_false(lambda: len(recorder.of("started")) > 2)
    assert recorder.of("started") == [blocker, e]


@pytest.mark.parametrize(
    ("command", "result", "reason"),
    [
        (Command.STOP, TaskResult.STOPPED, "stopped by anonymous@anonymous"),
        (Command.ABORT, TaskResult.ABORTED, "aborted by anonymous@anonymous"),
        (Command.HALT, TaskResult.HALTED, "halted by anonymous@anonymous"),
        (Command.PANIC, TaskResult.ABORTED, "aborted by anonymous@anonymous (PANIC)"),
    ],
)
def test_a_command_right_at_the_start_of_a_task_is_not_lost(
    service: WorkerService, recorder: Recorder, command: Command, result: TaskResult, reason: str
) -> None:
    """Sent as the task starts (as soon as the IOC hears of it): the task ends as the command
    says. (Whether the command reaches the worker before the task's RunEngine call begins
    is up to the pipes here; tests/unit/test_engine.py makes sure it does.)"""
    sent: list = []

    def commander(report: Report) -> None:
        if isinstance(report, TaskStarted):
            sent.append(service.command(command))  # on the reader thread: do not wait here

    service.subscribe(commander)
    submit(service, ask("sleep", seconds=30))
    [outcome] = recorder.outcomes(1)
    assert (outcome.result, outcome.error) == (result, f"{result}: {reason}")
    sent[0].result(TIMEOUT)
    assert outcome.finished - outcome.started < 5
