"""The worker process: loads plans and devices, then serves the IOC's commands on its pipe.

Threads, one owner each: the main thread reads commands; the engine thread owns
`RE(...)` and its continuations; the RunEngine's loop runs plan messages, device I/O and
document callbacks (which send and return); the control thread carries out commands.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from concurrent.futures import Future
from functools import partial
from multiprocessing.connection import Connection

from bluesky import RunEngine

from ..config import Settings
from ..errors import RequestError
from ..messages import (
    Catalog,
    CommandDone,
    LoadFailed,
    Ready,
    RunTask,
    Shutdown,
    StateChanged,
    TaskEnded,
    Validate,
    Validated,
    WorkerReport,
)
from ..messages import (
    Control as ControlMessage,
)
from ..models import describe_exception
from .context import PlanContext, PlanLoadError
from .control import CommandRefused, Control
from .devices import DeviceFileError, load_devices
from .engine import Engine, make_run_engine
from .suspenders import Suspenders, load_suspenders

log = logging.getLogger("ioc.worker")
_PR_SET_PDEATHSIG = 1


class Link:
    """The worker's end of the two pipes: `send` is safe from any thread."""

    def __init__(self, commands: Connection, reports: Connection) -> None:
        self.commands = commands
        self._reports = reports
        self._lock = threading.Lock()

    def send(self, report: WorkerReport) -> None:
        """Send one report; exit at once if the IOC has gone."""
        try:
            with self._lock:
                self._reports.send(report)
        except (BrokenPipeError, EOFError, OSError):
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


def serve(
    link: Link, run_engine: RunEngine, context: PlanContext, suspenders: Suspenders | None = None
) -> None:
    """Install the suspenders, report `Ready`, then answer the IOC's commands until
    `Shutdown` or the IOC goes away.
    """

    def send(report: WorkerReport) -> None:
        link.send(report)
        if isinstance(report, StateChanged | TaskEnded):
            control.check()  # after the report: the IOC sees the end before the answer

    suspenders = suspenders or Suspenders()
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
                params = context.validate(message.name, message.params)
                link.send(Validated(message.request_id, params))
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
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s[worker]: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    logging.getLogger("ioc").setLevel(logging.INFO)
    link = Link(Connection(command_fd, writable=False), Connection(report_fd, readable=False))
    settings: Settings = link.commands.recv()
    loaded = load(settings, link)
    if loaded is None:
        return 1
    serve(link, *loaded)
    return 0

