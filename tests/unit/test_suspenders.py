"""Suspenders declared in the device file: each kind built on bluesky's classes and
watched on real (simulated) signals, the declaration errors with their file:line, and
the worker's engine with a real RunEngine held by them (Suspended reports, no point taken
or numbered twice, pause/abort while suspended, a task started while tripped)."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine

from ioc.messages import (
    DocumentEmitted,
    StateChanged,
    Suspended,
    SuspendersChanged,
    TaskEnded,
    WorkerReport,
)
from ioc.models import Command, Task, TaskRequest, TaskResult, WorkerState
from ioc.worker.context import PlanContext
from ioc.worker.control import Control
from ioc.worker.devices import DeviceFileError, load_devices
from ioc.worker.engine import Engine, make_run_engine
from ioc.worker.suspender_file import load_suspenders
from ioc.worker.suspenders import Suspenders

TIMEOUT = 10.0
BEAMLINE = """
motor1:
  class: ophyd.sim.SynAxis
  kwargs: {delay: 0}
det1:
  class: ophyd.sim.SynGauss
  kwargs: {motor: !device motor1, motor_field: motor1, center: 0, Imax: 1, sigma: 1}
ring:
  class: tests.unit.beam_devices.Ring
aring:
  class: tests.unit.beam_devices.AsyncRing
shutter:
  class: tests.unit.beam_devices.Shutter
level:                       # a device that is a signal itself
  class: ophyd.Signal
  kwargs: {value: 0.0}
"""


@pytest.fixture
def run_engine() -> Iterator[RunEngine]:
    run_engine = make_run_engine()
    yield run_engine
    run_engine.clear_suspenders()


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str], Path]:
    """Write the beamline plus `suspenders` (dedented) as a device file; return its path."""

    def _write(suspenders: str) -> Path:
        path = tmp_path / "devices.yaml"
        path.write_text(BEAMLINE.lstrip("\n") + textwrap.dedent(suspenders).lstrip("\n"))
        return path

    return _write


def build(run_engine: RunEngine, path: Path) -> tuple[Suspenders, dict[str, Any]]:
    devices = load_devices(path, run_engine.loop, timeout=2.0)
    return load_suspenders(devices, run_engine.loop), devices.available()


def put(signal: Any, value: object, loop: asyncio.AbstractEventLoop) -> None:
    """Set an ophyd or an ophyd-async soft signal (in `loop`, ophyd-async's)."""
    if hasattr(signal, "put"):
        signal.put(value)
    else:

        async def set_it() -> None:
            await signal.set(value)

        asyncio.run_coroutine_threadsafe(set_it(), loop).result(TIMEOUT)


# --- each kind, built from a declaration --------------------------------------------------
KINDS = [
    # (declaration, signal, good, bad, reason when bad)
    (
        "{kind: floor, signal: ring.current, threshold: 10.0}",
        "ring.current", 100.0, 3.2, "beam: ring.current 3.2 < 10.0",
    ),
    (
        "{kind: ceil, signal: level, threshold: 5}",
        "level", 1.0, 7.25, "beam: level 7.25 > 5.0",
    ),
    (
        "{kind: bool_high, signal: shutter.open}",
        "shutter.open", 0, 1, "beam: shutter.open is high (1)",
    ),
    (
        "{kind: bool_low, signal: shutter.open, tripped_message: shutter closed}",
        "shutter.open", 1, 0, "beam: shutter.open is low (0) (shutter closed)",
    ),
    (
        "{kind: in_band, signal: ring.current, band: [50, 150]}",
        "ring.current", 100.0, 160.0, "beam: ring.current 160.0 outside (50.0, 150.0)",
    ),
    (
        "{kind: out_band, signal: ring.current, band: [1, 20.5]}",
        "ring.current", 100.0, 5.0, "beam: ring.current 5.0 inside (1.0, 20.5)",
    ),
    (
        "{kind: floor, signal: aring.current, threshold: 10.0}",
        "aring.current", 100.0, 3.2, "beam: aring.current 3.2 < 10.0",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("declaration", "path", "good", "bad", "reason"), KINDS, ids=lambda v: str(v)[:24])
def test_each_kind_trips_and_clears(
    run_engine: RunEngine, write: Callable[[str], Path],
    declaration: str, path: str, good: object, bad: object, reason: str,
) -> None:  # fmt: skip
    suspenders, devices = build(run_engine, write(f"suspenders:\n  beam: {declaration}\n"))
    device, attribute = (path.split(".") + [""])[:2]
    signal = getattr(devices[device], attribute) if attribute else devices[device]
    put(signal, good, run_engine.loop)
    suspenders.install(run_engine)
    [entry] = suspenders.entries
    kind = declaration.split(",")[0].split()[-1]
    assert suspenders.catalog() == [
        {"name": "beam", "signal": path, "kind": kind, "tripped": False, "available": True, "error": None}
    ]
    put(signal, bad, run_engine.loop)
    assert entry.tripped and entry.reason() == reason
    assert suspenders.catalog()[0]["tripped"] is True
    put(signal, good, run_engine.loop)
    assert not entry.tripped


def test_floor_with_resume_threshold(run_engine: RunEngine, write: Callable[[str], Path]) -> None:
    suspenders, devices = build(
        run_engine,
        write(
            """
            suspenders:
              beam:
                kind: floor
                signal: ring.current
                threshold: 10
                resume_threshold: 12.5
                resume_after: 2
            """
        ),
    )
    suspenders.install(run_engine)
    [entry] = suspenders.entries
    current = devices["ring"].current
    current.put(9.0)
    current.put(11.0)  # above the threshold, below the resume threshold: still tripped
    assert entry.tripped and entry.describe(11.0) == "ring.current 11.0 < 12.5 (resume threshold)"
    assert entry.reason() == "beam: ring.current 9.0 < 10.0"
    current.put(13.0)
    assert not entry.tripped
    assert entry.reason() == "beam: ring.current 9.0 < 10.0, good again: resuming after 2 s"


def test_trips_reported_once_started(run_engine: RunEngine, write: Callable[[str], Path]) -> None:
    """Tripped at install: the catalog says so; later changes are reported."""
    path = write("suspenders:\n  beam: {kind: floor, signal: ring.current, threshold: 10}\n")
    suspenders, devices = build(run_engine, path)
    devices["ring"].current.put(1.0)
    suspenders.install(run_engine)
    shown = suspenders.catalog()
    assert shown[0]["tripped"] is True
    reports: list[WorkerReport] = []
    suspenders.start(reports.append, shown)
    assert reports == []
    devices["ring"].current.put(50.0)
    assert reports == [SuspendersChanged([{**shown[0], "tripped": False}])]


def test_unavailable_device_makes_an_unavailable_suspender(
    run_engine: RunEngine, tmp_path: Path
) -> None:
    path = tmp_path / "devices.yaml"
    path.write_text(
        "lost:\n  class: tests.unit.broken_devices.Unreachable\n"
        "suspenders:\n  beam:\n    kind: bool_low\n    signal: lost.value\n"
    )
    suspenders, _ = build(run_engine, path)
    suspenders.install(run_engine)
    assert suspenders.catalog() == [
        {
            "name": "beam", "signal": "lost.value", "kind": "bool_low", "tripped": False,
            "available": False, "error": f"{path}:6: suspender 'beam': device 'lost' is unavailable",
        }
    ]  # fmt: skip


def test_no_section_no_suspenders(run_engine: RunEngine, write: Callable[[str], Path]) -> None:
    assert build(run_engine, write(""))[0].catalog() == []
    assert build(run_engine, write("suspenders:\n"))[0].catalog() == []


# --- declaration errors ------------------------------------------------------------------
ERRORS = [
    # (the section, after "suspenders:\n", the line reported (of the file's end), message)
    ("  beam: {kind: floor}\n", 1, "suspender 'beam': missing 'signal'"),
    ("  beam:\n    signal: ring.current\n", 1, "suspender 'beam': missing 'kind' (one of floor, ceil"),
    ("  beam:\n    kind: wall\n    signal: ring.current\n", 2, "unknown kind 'wall' (expected one of floor,"),
    ("  beam:\n    kind: floor\n    signal: ring.current\n", 1, "missing 'threshold' (kind 'floor' needs it)"),
    ("  beam:\n    kind: in_band\n    signal: ring.current\n", 1, "missing 'band' (kind 'in_band' needs it)"),
    (
        "  beam:\n    kind: bool_low\n    signal: shutter.open\n    threshold: 1\n",
        4, "suspender 'beam': unknown key 'threshold' for kind 'bool_low' (allowed: kind, signal,",
    ),
    (
        "  beam:\n    kind: floor\n    signal: ring.current\n    threshold: 1\n    sleep: 2\n",
        5, "unknown key 'sleep' for kind 'floor'",
    ),
    ("  beam:\n    kind: floor\n    signal: gun.current\n    threshold: 1\n", 3, "unknown device 'gun' (the file declares: aring, det1,"),
    ("  beam:\n    kind: floor\n    signal: ring.voltage\n    threshold: 1\n", 3, "'ring' has no signal 'voltage'"),
    ("  beam:\n    kind: floor\n    signal: ring.current.x\n    threshold: 1\n", 3, "'ring.current' has no signal 'x'"),
    ("  beam:\n    kind: floor\n    signal: motor1\n    threshold: 1\n", 3, "'motor1' is not a readable signal (SynAxis)"),
    ("  beam:\n    kind: floor\n    signal: ring/current\n    threshold: 1\n", 3, "'signal' must be <device>[.<attribute>...]"),
    ("  beam:\n    kind: floor\n    signal: ring.current\n    threshold: low\n", 4, "'threshold' must be a number, not 'low'"),
    ("  beam:\n    kind: floor\n    signal: ring.current\n    threshold: true\n", 4, "'threshold' must be a number"),
    (
        "  beam:\n    kind: floor\n    signal: ring.current\n    threshold: 10\n    resume_threshold: 5\n",
        5, "'resume_threshold' must be at or above 'threshold' (10.0)",
    ),
    (
        "  beam:\n    kind: ceil\n    signal: ring.current\n    threshold: 10\n    resume_threshold: 15\n",
        5, "'resume_threshold' must be at or below 'threshold' (10.0)",
    ),
    ("  beam:\n    kind: in_band\n    signal: ring.current\n    band: [5]\n", 4, "'band' must be [low, high]"),
    ("  beam:\n    kind: in_band\n    signal: ring.current\n    band: [5, 1]\n", 4, "with low < high, not [5, 1]"),
    ("  beam:\n    kind: out_band\n    signal: ring.current\n    band: [a, 1]\n", 4, "'band' must be a number, not 'a'"),
    (
        "  beam:\n    kind: bool_low\n    signal: shutter.open\n    resume_after: -1\n",
        4, "'resume_after' must be >= 0 seconds",
    ),
    (
        "  beam:\n    kind: bool_low\n    signal: shutter.open\n    tripped_message: [1]\n",
        4, "'tripped_message' must be a string",
    ),
    ("  beam: floor\n", 1, "suspender 'beam': entry must be a mapping with 'kind' and 'signal'"),
    ("  - beam\n", 0, "'suspenders' must map suspender names to entries"),
    (
        "  beam: {kind: bool_low, signal: shutter.open}\n  beam: {kind: bool_low, signal: shutter.open}\n",
        2, "duplicate suspender 'beam'",
    ),
    ("  beam:\n    kind: bool_low\n    kind: bool_high\n    signal: shutter.open\n", 3, "duplicate key 'kind'"),
]  # fmt: skip


@pytest.mark.parametrize(("section", "line", "message"), ERRORS, ids=lambda v: str(v)[:30])
def test_bad_declaration_stops_start_up(
    run_engine: RunEngine, write: Callable[[str], Path], section: str, line: int, message: str
) -> None:
    path = write("suspenders:\n" + section)
    section_line = len(BEAMLINE.lstrip("\n").splitlines()) + 1  # the line of "suspenders:"
    with pytest.raises(DeviceFileError) as info:
        build(run_engine, path)
    assert str(info.value).startswith(f"{path}:{section_line + line}: ")
    assert message in str(info.value)


def test_suspenders_is_no_device_name(run_engine: RunEngine, write: Callable[[str], Path]) -> None:
    path = write("suspenders: {}\nsuspenders: {}\n")
    with pytest.raises(DeviceFileError, match=r":\d+: duplicate 'suspenders' section"):
        build(run_engine, path)
    registry = load_devices(write("suspenders:\n  beam: {kind: bool_low, signal: shutter.open}\n"), run_engine.loop)
    assert "suspenders" not in registry.available() and "suspenders" not in registry.unavailable()


# --- a RunEngine held by them ----------------------------------------------------------------
class Worker:
    """The worker's engine, control and suspenders over a real RunEngine, in this process;
    every report recorded (as `process.serve` sends them)."""

    def __init__(self, run_engine: RunEngine, path: Path) -> None:
        self.reports: list[WorkerReport] = []
        self._changed = threading.Condition()
        registry = load_devices(path, run_engine.loop, timeout=2.0)
        self.suspenders = load_suspenders(registry, run_engine.loop)
        self.devices = registry.available()
        context = PlanContext.load(["plans"], registry)
        self._context = context
        self.engine = Engine(run_engine, context, self.send, self.suspenders)
        self.control = Control(self.engine)
        self.suspenders.install(run_engine)
        self.engine.start()
        self.suspenders.start(self.send, self.suspenders.catalog())
        self.on_event: Callable[[int], None] = lambda seq_num: None

    def send(self, report: WorkerReport) -> None:
        with self._changed:
            self.reports.append(report)
            self._changed.notify_all()
        if isinstance(report, DocumentEmitted) and report.name == "event":
            self.on_event(report.doc["seq_num"])
        if isinstance(report, StateChanged | TaskEnded):
            self.control.check()

    def run(self, plan: str, **params: Any) -> Task:
        params = self._context.validate(plan, params)
        task = Task.create(TaskRequest(name=plan, params=params), params)
        self.engine.run(task)
        return task

    def wait(self, until: Callable[[], object], what: str) -> None:
        with self._changed:
            assert self._changed.wait_for(until, TIMEOUT), f"no {what} in {TIMEOUT} s: {self.reports}"

    def suspended(self) -> list[str]:
        return [r.reason for r in list(self.reports) if isinstance(r, Suspended)]

    def seq_nums(self) -> list[int]:
        return [r.doc["seq_num"] for r in list(self.reports) if isinstance(r, DocumentEmitted) and r.name == "event"]

    def outcome(self) -> Any:
        self.wait(lambda: any(isinstance(r, TaskEnded) for r in self.reports), "end of the task")
        return next(r.outcome for r in self.reports if isinstance(r, TaskEnded))

    def states(self) -> list[WorkerState]:
        return [r.state for r in list(self.reports) if isinstance(r, StateChanged)]

    def held_now(self) -> bool:
        reasons = self.suspended()
        return bool(reasons) and bool(reasons[-1])

    def wait_held(self) -> None:
        """Until a suspender holds the task and bluesky says `running` again (it says
        `suspending` only a moment, and takes no PAUSE then)."""
        running = lambda: self.held_now() and self.engine.state is WorkerState.RUNNING  # noqa: E731
        self.wait(running, "Suspended(reason), then RUNNING")


TWO = """
suspenders:
  beam: {kind: floor, signal: ring.current, threshold: 10.0, resume_after: 0.3}
  shutter: {kind: bool_low, signal: shutter.open, resume_after: 0.1}
"""


@pytest.fixture
def worker(run_engine: RunEngine, write: Callable[[str], Path]) -> Iterator[Worker]:
    worker = Worker(run_engine, write(TWO))
    yield worker
    if worker.engine.current is not None:
        worker.control.execute(Command.ABORT).exception(TIMEOUT)


def test_trip_mid_count_suspends_then_resumes_with_no_point_twice(worker: Worker) -> None:
    ring = worker.devices["ring"].current
    worker.on_event = lambda seq_num: ring.put(3.2) if seq_num == 10 else None  # in the delay
    worker.run("count", detectors=["det1"], num=20, delay=0.05)
    worker.wait_held()
    assert worker.suspended() == ["beam: ring.current 3.2 < 10.0"]
    assert worker.engine.state is WorkerState.RUNNING  # bluesky's state while it waits
    assert WorkerState.SUSPENDING in worker.states()
    held_at = len(worker.seq_nums())
    threading.Event().wait(0.3)
    assert len(worker.seq_nums()) == held_at == 10  # nothing taken while held
    ring.put(50.0)
    outcome = worker.outcome()
    assert outcome.result is TaskResult.SUCCESS, outcome.error
    assert worker.seq_nums() == list(range(1, 21))
    assert worker.suspended() == [
        "beam: ring.current 3.2 < 10.0",
        "beam: ring.current 3.2 < 10.0, good again: resuming after 0.3 s",
        "",
    ]
    stop = [r.doc for r in worker.reports if isinstance(r, DocumentEmitted) and r.name == "stop"]
    assert stop[0]["num_events"] == {"primary": 20}


def test_task_started_while_tripped_waits(worker: Worker) -> None:
    shutter = worker.devices["shutter"].open
    shutter.put(0)
    worker.run("count", detectors=["det1"], num=3)
    worker.wait_held()
    assert worker.suspended() == ["shutter: shutter.open is low (0)"]
    threading.Event().wait(0.3)
    assert worker.seq_nums() == []
    shutter.put(1)
    assert worker.outcome().result is TaskResult.SUCCESS
    assert worker.seq_nums() == [1, 2, 3]
    assert worker.suspended()[-1] == ""


def test_one_clears_while_another_still_trips(worker: Worker) -> None:
    """bluesky alone would go on once the second suspender clears."""
    ring, shutter = worker.devices["ring"].current, worker.devices["shutter"].open
    worker.on_event = lambda seq_num: ring.put(3.2) if seq_num == 3 else None
    worker.run("count", detectors=["det1"], num=6, delay=0.05)
    worker.wait_held()
    shutter.put(0)
    worker.wait(lambda: "shutter" in worker.suspended()[-1], "both suspenders in the reason")
    assert worker.suspended()[-1] == "beam: ring.current 3.2 < 10.0; shutter: shutter.open is low (0)"
    shutter.put(1)
    worker.wait(lambda: worker.suspended()[-1] == "beam: ring.current 3.2 < 10.0", "shutter cleared")
    threading.Event().wait(0.5)  # past the shutter's resume_after
    assert worker.held_now() and len(worker.seq_nums()) == 3
    ring.put(50.0)
    assert worker.outcome().result is TaskResult.SUCCESS
    assert worker.seq_nums() == list(range(1, 7))


def test_pause_while_suspended_and_resume_while_tripped(worker: Worker) -> None:
    ring = worker.devices["ring"].current
    worker.on_event = lambda seq_num: ring.put(3.2) if seq_num == 2 else None
    worker.run("count", detectors=["det1"], num=5, delay=0.05)
    worker.wait_held()
    worker.control.execute(Command.PAUSE).result(TIMEOUT)
    assert worker.engine.state is WorkerState.PAUSED and worker.suspended()[-1] == ""
    worker.control.execute(Command.RESUME).result(TIMEOUT)
    worker.wait(worker.held_now, "held again")  # still tripped: held again, not running on
    threading.Event().wait(0.3)
    assert len(worker.seq_nums()) == 2
    ring.put(50.0)
    assert worker.outcome().result is TaskResult.SUCCESS
    assert worker.seq_nums() == [1, 2, 3, 4, 5]


def test_trip_while_paused_holds_on_resume(worker: Worker) -> None:
    ring = worker.devices["ring"].current
    worker.run("count", detectors=["det1"], num=5, delay=0.2)
    worker.wait(lambda: len(worker.seq_nums()) >= 2, "2 points")
    worker.control.execute(Command.PAUSE).result(TIMEOUT)
    ring.put(3.2)
    worker.control.execute(Command.RESUME).result(TIMEOUT)
    worker.wait(worker.held_now, "held")
    taken = len(worker.seq_nums())
    threading.Event().wait(0.3)
    assert len(worker.seq_nums()) == taken
    ring.put(50.0)
    assert worker.outcome().result is TaskResult.SUCCESS
    assert worker.seq_nums() == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("command", "result"),
    [(Command.ABORT, TaskResult.ABORTED), (Command.STOP, TaskResult.STOPPED), (Command.HALT, TaskResult.HALTED)],
)
def test_end_while_suspended(worker: Worker, command: Command, result: TaskResult) -> None:
    ring = worker.devices["ring"].current
    worker.on_event = lambda seq_num: ring.put(3.2) if seq_num == 2 else None
    worker.run("count", detectors=["det1"], num=5, delay=0.05)
    worker.wait_held()
    worker.control.execute(command).result(TIMEOUT)
    assert worker.outcome().result is result
    assert worker.suspended()[-1] == ""
    assert worker.seq_nums() == [1, 2]

