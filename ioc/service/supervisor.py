"""Starts and watches the worker process: its pipes, restarts, forced kills and reloads.

The IOC process never imports bluesky: everything the worker knows comes over the
pipes as `WorkerReport`s. One reader thread per worker process receives them (so a
worker that stalls half-way through a message never stalls the CA server). A command is
written by the thread that sends it when the pipe has room for all of it, and otherwise
by a writer thread (so a worker that stops reading never blocks a putter).
A third relays what the worker writes on stdout/stderr to the IOC's log (one format).
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ..config import Settings
from ..errors import RequestError
from ..log_format import relay_worker_line
from ..messages import (
    Catalog,
    CommandDone,
    Control,
    LoadFailed,
    Ready,
    RunTask,
    Shutdown,
    TaskEnded,
    TaskStarted,
    Validate,
    Validated,
    WorkerCommand,
    WorkerReport,
    WorkerStart,
)
from ..models import Command, Task, TaskOutcome, TaskResult

log = logging.getLogger(__name__)

Ending = tuple[TaskResult, str]
DIED = "interrupted: the worker process died ({})"
Batch = Callable[[], AbstractContextManager[None]]  # open while one message's reports are handled
ATOMIC_WRITE = select.PIPE_BUF - 4  # a command this long or shorter goes in one write (4: its length)
SHUTDOWN_GRACE = 2.0  # seconds a replaced worker has to exit before it is killed


class WorkerUnavailable(Exception):
    """No worker process is up to take the command (it is starting or restarting)."""


def describe_exit(returncode: int) -> str:
    """`exit code N` or `signal SIGKILL`, as the history records a worker's death."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit code {returncode}"


class WorkerProcess:
    """One `python -m ioc.worker` process and its two pipes."""

    def __init__(
        self,
        start: WorkerStart,
        on_report: Callable[[WorkerProcess, WorkerReport], None],
        on_exit: Callable[[WorkerProcess, str], None],
        batch: Batch = nullcontext,
    ) -> None:
        """`on_report` is called for each report, within `batch()` for each message."""
        command_read, command_write = os.pipe()
        report_read, report_write = os.pipe()
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "ioc.worker", str(command_read), str(report_write)],
            pass_fds=(command_read, report_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # relayed to the IOC's log, in its format
        )
        os.close(command_read)
        os.close(report_write)
        self._commands = Connection(command_write, readable=False)
        self._reports = Connection(report_read, writable=False)
        self._room = select.poll()  # whether the command pipe has room for one more write
        self._room.register(command_write, select.POLLOUT)
        self._outbox: queue.SimpleQueue[tuple[bytes, bool]] = queue.SimpleQueue()
        self._sending = threading.Lock()
        self._backlog = 0  # commands in the outbox or being written by the writer thread
        self.send(start)
        self._on_report = on_report
        self._on_exit = on_exit
        self._batch = batch
        name = f"worker-{self.pid}"
        threading.Thread(target=self._write, name=f"{name}-writer", daemon=True).start()
        threading.Thread(target=self._read, name=f"{name}-reader", daemon=True).start()
        threading.Thread(target=self._relay_output, name=f"{name}-output", daemon=True).start()

    @property
    def pid(self) -> int:
        """The worker's process id."""
        return self.popen.pid

    def send(self, command: WorkerCommand | WorkerStart) -> None:
        """Send `command` to the worker, after those sent before it; never blocks.

        With nothing waiting in the outbox and room in the pipe, a command of at most
        `PIPE_BUF` bytes is written at once: such a write is whole and never blocks.
        """
        data = pickle.dumps(command, protocol=pickle.HIGHEST_PROTOCOL)
        last = isinstance(command, Shutdown)  # the writer thread ends once it is written
        with self._sending:
            if not (self._backlog or last) and len(data) <= ATOMIC_WRITE and self._room.poll(0):
                try:
                    self._commands.send_bytes(data)
                except OSError:  # the worker is gone; its reader reports that
                    pass
                return
            self._backlog += 1
        self._outbox.put((data, last))

    def kill(self) -> None:
        """Kill the process at once (its reader then reports the exit)."""
        if self.popen.poll() is None:
            self.popen.kill()

    def retire(self) -> None:
        """Ask the process to exit; kill it if it has not after a grace period."""
        self.send(Shutdown())
        try:
            self.popen.wait(SHUTDOWN_GRACE)
        except subprocess.TimeoutExpired:
            self.kill()

    def _write(self) -> None:
        while True:
            data, last = self._outbox.get()
            try:
                self._commands.send_bytes(data)
            except OSError:  # the worker is gone; its reader reports that
                return
            with self._sending:
                self._backlog -= 1
            if last:
                return

    def _relay_output(self) -> None:
        """Log each line the process writes (until it and its children have closed it)."""
        assert self.popen.stdout is not None
        with self.popen.stdout as output:
            for line in output:
                relay_worker_line(line.decode("utf-8", errors="replace").rstrip("\n"), self.pid)

    def _read(self) -> None:
        while True:
            try:
                batch: list[WorkerReport] = pickle.loads(self._reports.recv_bytes())
            except (EOFError, OSError):
                break
            with self._batch():
                for report in batch:
                    try:
                        self._on_report(self, report)
                    except Exception:  # one bad report must not stop the reports that follow
                        log.exception("could not handle %r", report)
        self._reports.close()
        self._outbox.put((b"", True))  # the writer thread ends: the worker has gone
        self._on_exit(self, describe_exit(self.popen.wait()))


@dataclass
class _Running:
    task: Task
    ended: Future[TaskOutcome]
    sent: bool = False  # False: handed over while no worker was up; the next one gets it
    started: float | None = None


class Supervisor:
    """Keeps one worker process up and talks to it: tasks, commands, validation.

    `on_report` gets every report that is not an answer, on the reader thread;
    `scan_id()` gives the scan id a new worker goes on from;
    `on_task_ended(outcome, died)` is called, on the same thread, when the running task
    ended or its worker died; `on_worker(pid)` when a worker comes up (pid) or goes (0);
    `batch()` is open while the reports of one message of the worker's are handled.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        on_report: Callable[[WorkerReport], None],
        on_task_ended: Callable[[TaskOutcome, bool], None],
        on_worker: Callable[[int], None],
        on_catalog: Callable[[Catalog], None],
        on_load_failed: Callable[[str, bool], None],
        scan_id: Callable[[], int],
        batch: Batch = nullcontext,
    ) -> None:
        self._settings = settings
        self._batch = batch
        self._scan_id = scan_id
        self._on_report = on_report
        self._on_task_ended = on_task_ended
        self._on_worker = on_worker
        self._on_catalog = on_catalog
        self._on_load_failed = on_load_failed
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._current: WorkerProcess | None = None
        self._candidate: tuple[WorkerProcess, Future[Catalog]] | None = None
        self._validations: dict[int, Future[Validated]] = {}
        self._unsent: list[Validate] = []  # asked for while no worker was up
        self._commands: dict[int, Future[None]] = {}
        self._running: _Running | None = None
        self._kill_ending: Ending | None = None
        self._closed = False
        self.catalog: Catalog | None = None
        self.restarts = 0
        self.pid = 0
        self._served = False  # a worker has been up before

    # --- life cycle -------------------------------------------------------------------
    def start(self) -> Future[Catalog]:
        """Start the first worker; the future gives its catalog (or the load error)."""
        return self._spawn()

    def reload(self) -> Future[Catalog]:
        """Start a new worker; once it has loaded, it replaces the current one. If it
        fails to load, the current one stays and the future gives the error.
        """
        return self._spawn()

    def close(self) -> None:
        """Stop the worker for good (the IOC is exiting); a task no worker took never runs."""
        with self._lock:
            self._closed = True
            worker, self._current = self._current, None
            running = self._running
        if running is not None and not running.sent:
            running.ended.cancel()
        if worker is not None:
            worker.retire()

    def _spawn(self) -> Future[Catalog]:
        loaded: Future[Catalog] = Future()
        with self._lock:
            start = WorkerStart(self._settings, self._scan_id())
            worker = WorkerProcess(start, self._received, self._exited, self._batch)
            self._candidate = (worker, loaded)
        return loaded

    # --- requests -----------------------------------------------------------------------
    def validate(self, name: str, params: dict[str, Any]) -> Future[Validated]:
        """The worker's validation of `params` for plan `name`: the params with defaults and
        the device names they pass (fails with `RequestError`).
        """
        answer: Future[Validated] = Future()
        with self._lock:
            request_id = next(self._ids)
            self._validations[request_id] = answer
            if self._current is None:  # sent to the next worker once it is up
                self._unsent.append(Validate(request_id, name, params))
            else:
                self._current.send(Validate(request_id, name, params))
        return answer

    @property
    def up(self) -> bool:
        """Whether a worker process is up and answering."""
        return self._current is not None

    def command(self, command: Command, ending: Ending | None = None) -> Future[None]:
        """Have the worker carry out `command`; fails with `WorkerUnavailable` or the
        worker's `RuntimeError(reason)`.
        """
        done: Future[None] = Future()
        with self._lock:
            if self._current is None:
                done.set_exception(WorkerUnavailable("no worker process is up (it is restarting)"))
                return done
            command_id = next(self._ids)
            self._commands[command_id] = done
            self._current.send(Control(command_id, command, ending))
        return done

    def run(self, task: Task) -> Future[TaskOutcome]:
        """Hand `task` to the worker, or to the next one that comes up if none is; never
        blocks. The future gives how it ended (cancelled if the IOC exits before a worker
        took it).
        """
        ended: Future[TaskOutcome] = Future()
        with self._lock:
            if self._closed:
                ended.cancel()
                return ended
            self._running = _Running(task, ended)
            if self._current is not None:
                self._send_running(self._current)
        return ended

    @property
    def running(self) -> Task | None:
        """The task the worker runs now, if any."""
        running = self._running
        return running.task if running and running.sent else None

    def ended_future(self) -> Future[TaskOutcome] | None:
        """The future of the running task's end, if a task runs."""
        running = self._running
        return running.ended if running and running.sent else None

    def kill(self, ending: Ending) -> None:
        """Kill the worker: the running task ends as `ending`; a new worker starts."""
        with self._lock:
            self._kill_ending = ending
            worker = self._current
        if worker is not None:
            worker.kill()

    # --- reports (reader threads) ---------------------------------------------------------
    def _received(self, worker: WorkerProcess, report: WorkerReport) -> None:
        with self._lock:
            candidate = self._candidate
            if candidate is not None and candidate[0] is worker:
                self._loaded(worker, candidate[1], report)
                return
            if worker is not self._current:
                return  # a replaced worker's last words
        if isinstance(report, Validated):
            answer = self._validations.pop(report.request_id, None)
            if answer is not None:
                if report.error is None:
                    answer.set_result(report)
                else:
                    answer.set_exception(RequestError(report.error))
        elif isinstance(report, CommandDone):
            done = self._commands.pop(report.command_id, None)
            if done is not None:
                if report.error is None:
                    done.set_result(None)
                else:
                    done.set_exception(RuntimeError(report.error))
        elif isinstance(report, TaskEnded):
            self._end_task(report.outcome, died=False)
        else:
            if isinstance(report, TaskStarted) and self._running is not None:
                self._running.started = report.started
            self._on_report(report)

    def _loaded(self, worker: WorkerProcess, loaded: Future[Catalog], report: WorkerReport) -> None:
        """The candidate's first word: take it over, or let it go (lock held)."""
        self._candidate = None
        if isinstance(report, Ready):
            old, self._current = self._current, worker
            if self._served:
                self.restarts += 1  # it takes over from an earlier worker
            self._served = True
            if old is not None:
                threading.Thread(target=old.retire, name="retire-worker", daemon=True).start()
            self.catalog, self.pid = report.catalog, report.pid
            level = logging.WARNING if report.catalog.unavailable else logging.INFO
            log.log(level, "worker process %d loaded %s", report.pid, report.catalog.summary())
            for request in self._unsent:
                worker.send(request)
            self._unsent.clear()
            self._on_catalog(report.catalog)
            self._on_worker(report.pid)
            if self._running is not None and not self._running.sent:
                self._send_running(worker)
            loaded.set_result(report.catalog)
        else:
            error = report.error if isinstance(report, LoadFailed) else f"unexpected {report!r}"
            worker.kill()
            loaded.set_exception(RuntimeError(error))

    def _exited(self, worker: WorkerProcess, how: str) -> None:
        with self._lock:
            candidate = self._candidate
            if candidate is not None and candidate[0] is worker:
                self._candidate = None
                candidate[1].set_exception(RuntimeError(f"the new worker process ended ({how})"))
                return
            if worker is not self._current:
                return
            self._current, self.pid = None, 0
            ending, self._kill_ending = self._kill_ending, None
            orphans: list[Future[Any]] = list(self._commands.values())
            self._commands.clear()
            validations = list(self._validations.values())
            self._validations.clear()
        log.warning("worker process %d ended (%s)", worker.pid, how)
        self._on_worker(0)
        for future in orphans:
            future.set_exception(WorkerUnavailable(f"the worker process died ({how})"))
        for answer in validations:
            answer.set_exception(RequestError(f"the worker process died ({how}); try again"))
        running = self._running
        if running is not None:
            result, error = ending or (TaskResult.FAILED, DIED.format(how))
            outcome = TaskOutcome(
                running.task, result, running.started or running.task.submitted,
                time.time(), error=error,
            )  # fmt: skip
            self._end_task(outcome, died=ending is None)
        if not self._closed:
            self._restart()

    def _restart(self) -> None:
        """Bring up a new worker after a death; try again every few seconds if it fails."""
        def retry_on_failure(loaded: Future[Catalog]) -> None:
            error = loaded.exception()
            if error is not None and not self._closed:
                self._on_load_failed(str(error), True)
                threading.Timer(5.0, self._restart).start()

        with self._lock:
            if self._closed or self._current is not None or self._candidate is not None:
                return
            self._spawn().add_done_callback(retry_on_failure)

    def _send_running(self, worker: WorkerProcess) -> None:
        """Have `worker` run the task handed over (lock held)."""
        assert self._running is not None
        self._running.sent = True
        worker.send(RunTask(self._running.task))

    def _end_task(self, outcome: TaskOutcome, *, died: bool) -> None:
        running, self._running = self._running, None
        try:
            self._on_task_ended(outcome, died)
        finally:  # the task runner waits on it, whatever happened in between
            if running is not None:
                running.ended.set_result(outcome)

