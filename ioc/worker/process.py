"""The worker process: loads plans and devices, then serves the IOC's commands on its pipe.

Threads, one owner each: the main thread reads commands; the engine thread owns
`RE(...)` and its continuations; the RunEngine's loop runs plan messages, device I/O and
document callbacks (which send and return); the control thread carries out commands.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import pickle
import signal
import sys
import threading
from concurrent.futures import Future
from functools import partial
from multiprocessing.connection import Connection

from bluesky import RunEngine

from ..config import Settings
from ..errors import RequestError
from ..log_format import PrintsToLog, configure_logging
from ..messages import (
    Catalog,
    CommandDone,
    DeviceProgress,
    DocumentEmitted,
    LoadFailed,
    Ready,
    RunProgressed,
    RunTask,
    Shutdown,
    StateChanged,
    TaskEnded,
    TaskStarted,
    Validate,
    Validated,
    WorkerReport,
    WorkerStart,
)
from ..messages import (
    Control as ControlMessage,
)
from ..models import WorkerState, describe_exception
from .context import PlanContext, PlanLoadError
from .control import CommandRefused, Control
from .devices import DeviceFileError, load_devices
from .engine import Engine, make_run_engine
from .suspender_file import load_suspenders
from .suspenders import Suspenders

log = logging.getLogger("ioc.worker")
_PR_SET_PDEATHSIG = 1


LINGER = 0.02  # seconds a report that is not urgent may wait to go with others


def _urgent(report: WorkerReport) -> bool:
    """Whether the IOC should have `report` at once: a run's end (its `stop` document),
    an answer, a state, a task's end; not the other documents or a progress step, nor a
    report an urgent one always follows at once (a task's start is followed by the
    RunEngine's `running`, or by the task's end; the RunEngine's `idle` by the task's end).
    """
    if isinstance(report, DocumentEmitted):
        return report.name == "stop"
    if isinstance(report, StateChanged):
        return report.state is not WorkerState.IDLE
    return not isinstance(report, RunProgressed | DeviceProgress | TaskStarted)


class Link:
    """The worker's end of the two pipes; `send` is safe from any thread.

    Reports are written in batches, one pickle and one write for whatever has queued: an
    urgent report (a run's or task's end, a state, an answer) is written at once by the
    thread that sends it, with the reports queued before it; the others linger up to
    `LINGER` for one, and a sender thread writes them if none comes. A burst of documents
    thus costs the IOC one wake-up, and a plan that then holds the interpreter in C code
    cannot keep a task's start or state from the IOC.
    """

    def __init__(self, commands: Connection, reports: Connection) -> None:
        self.commands = commands
        self._reports = reports
        self._queued: list[WorkerReport] = []
        self._closed = False
        self._lock = threading.Condition()
        self._sender = threading.Thread(target=self._send_lingering, name="report-sender", daemon=True)
        self._sender.start()

    def send(self, report: WorkerReport) -> None:
        """Send `report` now if it is urgent, else queue it to go with the next batch."""
        with self._lock:
            self._queued.append(report)
            if _urgent(report):
                self._write_queued()
            elif len(self._queued) == 1:
                self._lock.notify()  # the sender starts its linger

    def close(self) -> None:
        """Send what has queued, then stop the sender."""
        with self._lock:
            self._closed = True
            self._write_queued()
            self._lock.notify()
        self._sender.join(10)

    def _send_lingering(self) -> None:
        with self._lock:
            while not self._closed:
                if not self._lock.wait(LINGER if self._queued else None) and self._queued:
                    self._write_queued()  # lingered long enough

    def _write_queued(self) -> None:
        """Write the queued reports as one message (lock held); exit if the IOC has gone."""
        batch, self._queued = self._queued, []
        if batch:
            try:
                self._reports.send_bytes(pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError:
                os._exit(0)


def die_with_parent() -> None:
    """Have Linux kill this process when the IOC process dies (a `kill -9` included)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pipe's EOF ends the process instead
        pass


def load(settings: Settings, link: Link) -> tuple[RunEngine, PlanContext, Suspenders] | None:
    """Build the RunEngine, devices, suspenders and plans; report `LoadFailed` if they cannot be."""
    run_engine = make_run_engine()
    try:
        devices = load_devices(settings.devices, run_engine.loop, timeout=settings.connect_timeout)
        suspenders = load_suspenders(devices, run_engine.loop)
        return run_engine, PlanContext.load(settings.plans, devices), suspenders
    except (DeviceFileError, PlanLoadError) as error:
        link.send(LoadFailed(describe_exception(error)))
        return None


def serve(link: Link, run_engine: RunEngine, context: PlanContext, suspenders: Suspenders) -> None:
    """Install the suspenders, report `Ready`, then answer the IOC's commands until
    `Shutdown` or the IOC goes away.
    """

    def send(report: WorkerReport) -> None:
        link.send(report)
        if isinstance(report, StateChanged | TaskEnded):
            control.check()  # after the report: the IOC sees the end before the answer

    engine = Engine(run_engine, context, send, suspenders)
    control = Control(engine)
    suspenders.install(run_engine)
    engine.start()
    shown = suspenders.catalog()
    link.send(Ready(os.getpid(), Catalog(context.catalog(), context.devices.catalog(), shown)))
    suspenders.start(send, shown)
    while True:
        try:
            message = link.commands.recv()
        except (EOFError, OSError):
            return
        if isinstance(message, Validate):
            try:
                params, devices = context.validate_naming_devices(message.name, message.params)
                link.send(Validated(message.request_id, params, devices=devices))
            except RequestError as error:
                link.send(Validated(message.request_id, None, str(error)))
        elif isinstance(message, RunTask):
            engine.run(message.task)
        elif isinstance(message, ControlMessage):
            done = control.execute(message.command, message.ending)
            done.add_done_callback(partial(_answer, link, message.command_id))
        elif isinstance(message, Shutdown):
            return


def _answer(link: Link, command_id: int, done: Future[None]) -> None:
    link.send(CommandDone(command_id, _refusal(done.exception())))


def _refusal(error: BaseException | None) -> str | None:
    if error is None:
        return None
    return str(error) if isinstance(error, CommandRefused) else f"{type(error).__name__}: {error}"


def main(command_fd: int, report_fd: int) -> int:
    """The worker's life: settings from the pipe, load, serve."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the IOC decides how a Ctrl-C ends tasks
    configure_logging("worker")
    sys.stdout = PrintsToLog(logging.getLogger("ioc.worker.printed"))  # bluesky and plans print
    link = Link(Connection(command_fd, writable=False), Connection(report_fd, readable=False))
    start: WorkerStart = link.commands.recv()
    loaded = load(start.settings, link)
    if loaded is None:
        link.close()
        return 1
    run_engine, context, suspenders = loaded
    run_engine.md["scan_id"] = start.scan_id  # numbering goes on across restarts
    # The libraries, devices and plans loaded live as long as the process: out of the
    # garbage collector's full passes, which every task's documents otherwise trigger.
    gc.freeze()
    serve(link, run_engine, context, suspenders)
    link.close()
    return 0

