"""Operator commands: pause, resume, stop, abort, halt, panic, all-is-well, reload.

Each command is checked and carried out on one control thread (so the caller's
thread — the CA server's loop — never blocks on the RunEngine) and answers with a
future that completes once the worker has reached the command's target state, or
fails with `CommandRefused` when the command does not apply.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from enum import StrEnum

from bluesky.utils import TransitionError

from .models import TaskResult, WorkerState
from .worker import PANIC_ENDING, Worker

# A watcher answers None (not there yet), "" (target reached) or why it never will be.
Watcher = Callable[[], str | None]


class Command(StrEnum):
    """The control PVs, each named as its PV."""

    PAUSE = "PAUSE"
    PAUSE_DEFER = "PAUSE:DEFER"
    RESUME = "RESUME"
    STOP = "STOP"
    ABORT = "ABORT"
    HALT = "HALT"
    PANIC = "PANIC"
    ALL_IS_WELL = "ALL_IS_WELL"
    RELOAD = "RELOAD"


class CommandRefused(Exception):
    """The command does not apply in the worker's present state; `str()` says why."""


ENDINGS = {
    Command.STOP: (TaskResult.STOPPED, "stopped by STOP"),
    Command.ABORT: (TaskResult.ABORTED, "aborted by ABORT"),
    Command.HALT: (TaskResult.HALTED, "halted by HALT"),
}


class Control:
    """Carries out commands on the worker; notified of its state changes and task ends."""

    def __init__(self, worker: Worker, reload: Callable[[], None]) -> None:
        self._worker = worker
        self._run_engine = worker.run_engine
        self._reload = reload
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="control")
        self._lock = threading.Lock()
        self._watchers: list[tuple[Watcher, Future[None]]] = []

    def execute(self, command: Command) -> Future[None]:
        """Carry out `command`; the future completes when its target state is reached."""
        done: Future[None] = Future()
        self._thread.submit(self._carry_out, command, done)
        return done

    def check(self) -> None:
        """Complete the commands whose target the worker has now reached (any thread)."""
        with self._lock:
            waiting = []
            for watcher, done in self._watchers:
                verdict = watcher()
                if verdict is None:
                    waiting.append((watcher, done))
                elif verdict:
                    done.set_exception(CommandRefused(verdict))
                else:
                    done.set_result(None)
            self._watchers = waiting

    def _carry_out(self, command: Command, done: Future[None]) -> None:
        try:
            watcher = self._act(command)
        except (CommandRefused, TransitionError, RuntimeError) as error:
            done.set_exception(CommandRefused(str(error)))
            return
        with self._lock:
            self._watchers.append((watcher, done))
        self.check()

    def _act(self, command: Command) -> Watcher:
        """Do what `command` asks now; return the watcher of its target state."""
        worker, state = self._worker, self._worker.state
        if command in (Command.PAUSE, Command.PAUSE_DEFER):
            if state is not WorkerState.RUNNING:
                raise CommandRefused(f"nothing is running (state {state})")
            self._run_engine.request_pause(defer=command is Command.PAUSE_DEFER)
            return self._until_paused
        if command is Command.RESUME:
            if worker.panicked:
                raise CommandRefused("the worker is panicked: write ALL_IS_WELL first")
            if state is not WorkerState.PAUSED:
                raise CommandRefused(f"nothing is paused (state {state})")
            worker.continue_with(self._run_engine.resume)
            return self._until_resumed
        if command in ENDINGS:
            return self._end(*ENDINGS[command], getattr(self._run_engine, command.lower()))
        if command is Command.PANIC:
            worker.set_panicked(True)
            if worker.current is not None and str(self._run_engine.state) != "paused":
                return self._end(*PANIC_ENDING, self._run_engine.abort)
            return _reached
        if command is Command.ALL_IS_WELL:
            if not worker.panicked:
                raise CommandRefused("the worker is not panicked")
            worker.set_panicked(False)
            return _reached
        return self._reload_when_idle()

    def _end(self, result: TaskResult, reason: str, end: Callable[[], object]) -> Watcher:
        """End the current task with `end` (RE.stop/abort/halt) on the right thread."""
        task = self._worker.current
        if task is None:
            raise CommandRefused(f"no task is running (state {self._worker.state})")
        with self._worker.ending(result, reason) as begun:
            if not begun:
                return self._until_ended  # the worker will not start it
        self._await_engine(task)
        if str(self._run_engine.state) == "paused":
            self._worker.continue_with(end)  # only the worker thread may end a paused plan
        elif self._worker.current is task:
            try:
                end()
            except TransitionError:  # it ended on its own meanwhile
                pass
        return self._until_ended

    def _await_engine(self, task: object, timeout: float = 2.0) -> None:
        """Wait (bounded) until the RunEngine call of `task`, just begun, leaves `idle`."""
        deadline = time.monotonic() + timeout
        while (
            str(self._run_engine.state) == "idle"
            and self._worker.current is task
            and time.monotonic() < deadline
        ):
            time.sleep(0.001)

    def _reload_when_idle(self) -> Watcher:
        with self._worker.idle() as idle:
            if not idle:
                raise CommandRefused(f"a task is running (state {self._worker.state})")
            try:
                self._reload()
            except Exception as error:
                raise CommandRefused(f"{type(error).__name__}: {error}") from None
        return _reached

    def _until_paused(self) -> str | None:
        if self._worker.state in (WorkerState.PAUSED, WorkerState.PANICKED):
            return ""
        return "the task ended before it paused" if self._worker.current is None else None

    def _until_resumed(self) -> str | None:
        return None if self._worker.state is WorkerState.PAUSED else ""

    def _until_ended(self) -> str | None:
        return "" if self._worker.current is None else None


def _reached() -> str:
    return ""
