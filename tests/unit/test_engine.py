"""The worker's Engine and Control in this process: a real RunEngine, ophyd.sim devices,
and a `send` that collects the reports (wired as `ioc.worker.process.serve` wires it)."""

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ophyd.sim import SynAxis, SynGauss

from ioc.messages import (
    DocumentEmitted,
    RunProgressed,
    StateChanged,
    TaskEnded,
    TaskStarted,
    WorkerReport,
)
from ioc.models import Command, Task, TaskOutcome, TaskResult, WorkerState, parse_request
from ioc.worker.context import PlanContext
from ioc.worker.control import CommandRefused, Control
from ioc.worker.devices import DeviceEntry, DeviceRegistry
from ioc.worker.engine import Engine, make_run_engine

TIMEOUT = 30.0
PLANS = ["plans", "tests.integration.sample_plans", "tests.unit.control_plans"]


class Reports:
    """What the engine sends, with bounded waits; `on` is called first with each report
    (on the sender's thread)."""

    def __init__(self) -> None:
        self.sent: list[WorkerReport] = []
        self.on: Callable[[WorkerReport], None] = lambda report: None
        self._changed = threading.Condition()

    def append(self, report: WorkerReport) -> None:
        self.on(report)
        with self._changed:
            self.sent.append(report)
            self._changed.notify_all()

    def of(self, kind: type) -> list[Any]:
        with self._changed:
            return [report for report in self.sent if isinstance(report, kind)]

    def wait(self, until: Callable[[], object], what: str) -> None:
        with self._changed:
            assert self._changed.wait_for(until, TIMEOUT), f"no {what} in {TIMEOUT} s: {self.sent}"

    def outcome(self) -> TaskOutcome:
        self.wait(lambda: self.of(TaskEnded), "task end")
        [ended] = self.of(TaskEnded)
        return ended.outcome

    def running(self) -> None:
        self.wait(lambda: StateChanged(WorkerState.RUNNING) in self.sent, "RUNNING")


@pytest.fixture
def reports() -> Reports:
    return Reports()


@pytest.fixture(scope="module")
def context() -> PlanContext:
    motor1 = SynAxis(name="motor1")
    det1 = SynGauss("det1", motor1, "motor1", center=0, Imax=1, sigma=1)
    entries = {d.name: DeviceEntry(d.name, "test", 0, d, None) for d in (motor1, det1)}
    return PlanContext.load(PLANS, DeviceRegistry(entries))


@pytest.fixture
def engine(reports: Reports, context: PlanContext) -> Iterator[tuple[Engine, Control]]:
    """An engine taking tasks, and its control; a task left running is aborted afterwards."""

    def send(report: WorkerReport) -> None:  # as `ioc.worker.process.serve` has it
        reports.append(report)
        if isinstance(report, StateChanged | TaskEnded):
            control.check()

    engine = Engine(make_run_engine(), context, send)
    control = Control(engine)
    engine.start()
    yield engine, control
    if engine.current is not None:
        control.execute(Command.ABORT).exception(TIMEOUT)


@pytest.fixture
def task(context: PlanContext) -> Callable[[str], Task]:
    """A task of the request `text`, validated as the worker validates it."""

    def make(text: str) -> Task:
        request = parse_request(text)
        return Task.create(request, context.validate(request.name, request.params))

    return make


def test_a_task_reports_its_start_documents_and_end(
    engine: tuple[Engine, Control], reports: Reports, task: Callable[[str], Task]
) -> None:
    runner, _ = engine
    count = task('{"name": "count", "params": {"detectors": ["det1"], "num": 2}}')
    runner.run(count)
    outcome = reports.outcome()
    assert (outcome.task, outcome.result, outcome.error) == (count, TaskResult.SUCCESS, None)
    assert isinstance(reports.sent[0], TaskStarted) and reports.sent[0].task == count
    assert isinstance(reports.sent[-1], TaskEnded)
    names = [report.name for report in reports.of(DocumentEmitted)]
    assert names == ["start", "descriptor", "event", "event", "stop"]
    [start] = [report.doc for report in reports.of(DocumentEmitted) if report.name == "start"]
    assert outcome.run_uids == (start["uid"],) and start["task_id"] == count.task_id
    assert [r.state for r in reports.of(StateChanged)] == [WorkerState.RUNNING, WorkerState.IDLE]
    assert reports.of(RunProgressed)[-1].progress.percent == 100.0
    assert runner.current is None and runner.state is WorkerState.IDLE


@pytest.mark.parametrize(
    ("command", "result", "reason"),
    [
        (Command.STOP, TaskResult.STOPPED, "stopped by STOP"),
        (Command.ABORT, TaskResult.ABORTED, "aborted by ABORT"),
        (Command.HALT, TaskResult.HALTED, "halted by HALT"),
        (Command.PANIC, TaskResult.ABORTED, "aborted by PANIC"),
    ],
)
def test_a_command_before_the_run_engine_call_begins(
    engine: tuple[Engine, Control], reports: Reports, task: Callable[[str], Task],
    command: Command, result: TaskResult, reason: str,
) -> None:  # fmt: skip
    """The command is carried out while the engine thread is still reporting the task's
    start: the task ends as the command says without ever running, and the command
    completes once it has ended."""
    runner, control = engine
    sent: list = []

    def at_start(report: WorkerReport) -> None:
        if isinstance(report, TaskStarted):
            sent.append(control.execute(command))
            # The control thread takes one command at a time: once this one is answered
            # (refused: nothing runs yet), the first has been carried out.
            with pytest.raises(CommandRefused, match="nothing is running"):
                control.execute(Command.PAUSE).result(TIMEOUT)

    reports.on = at_start
    runner.run(task('{"name": "sleep", "params": {"seconds": 30}}'))
    outcome = reports.outcome()
    assert (outcome.result, outcome.error) == (result, f"{result}: {reason}")
    sent[0].result(TIMEOUT)
    assert outcome.run_uids == () and reports.of(DocumentEmitted) == []
    assert reports.of(StateChanged) == []  # the RunEngine never left idle
    assert outcome.finished - outcome.started < 5


def test_a_command_that_fails_unexpectedly_still_answers(
    engine: tuple[Engine, Control],
    reports: Reports,
    task: Callable[[str], Task],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The RunEngine raises while PAUSE is carried out: the command fails with
    CommandRefused naming the error; the task runs on and the next command works."""
    runner, control = engine
    runner.run(task('{"name": "sleep", "params": {"seconds": 30}}'))
    reports.running()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("request_pause broke (injected)")

    monkeypatch.setattr(runner.run_engine, "request_pause", broken)
    with pytest.raises(CommandRefused, match=r"^RuntimeError: request_pause broke \(injected\)$"):
        control.execute(Command.PAUSE).result(TIMEOUT)
    assert runner.state is WorkerState.RUNNING and reports.of(TaskEnded) == []
    control.execute(Command.STOP).result(TIMEOUT)
    assert reports.outcome().result == TaskResult.STOPPED


@pytest.mark.parametrize(("command", "message"), [
    (Command.PAUSE, "nothing is running (state IDLE)"),
    (Command.RESUME, "nothing is paused (state IDLE)"),
    (Command.STOP, "no task is running (state IDLE)"),
    (Command.ALL_IS_WELL, "ALL_IS_WELL is not carried out by the worker"),
    (Command.RELOAD, "RELOAD is not carried out by the worker"),
])  # fmt: skip
def test_refused_while_idle(engine: tuple[Engine, Control], command: Command, message: str) -> None:
    _, control = engine
    with pytest.raises(CommandRefused) as refused:
        control.execute(command).result(TIMEOUT)
    assert str(refused.value) == message


def test_what_a_plan_returned_is_kept_as_blueapi_reports_it() -> None:
    from ioc.models import PlanReturn
    from ioc.worker.engine import plan_return

    class Opaque:
        pass

    assert plan_return("3f2a-uid") == PlanReturn("str", "3f2a-uid")
    assert plan_return(None) == PlanReturn("NoneType", None)
    assert plan_return(("a", 1)) == PlanReturn("tuple", ["a", 1])
    assert plan_return(Opaque()) == PlanReturn("Opaque", None)


def test_the_adapter_of_a_return_type_is_built_once() -> None:
    from ioc.worker.engine import _adapter, plan_return

    assert plan_return(2.5).value == 2.5
    assert _adapter(float) is _adapter(float)
