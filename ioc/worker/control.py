"""Operator commands inside the worker: pause, resume, stop, abort, halt, panic.

Each command is checked and carried out on one control thread (never the thread that
reads the IOC's pipe, never the RunEngine's), and answers with a future that completes
once the engine has reached the command's target state, or fails with `CommandRefused`.
The panic latch, `ALL_IS_WELL` and `RELOAD` belong to the IOC process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from bluesky.utils import TransitionError

from ..models import Command, TaskResult, WorkerState
from .engine import Engine

# A watcher answers None (not there yet), "" (target reached) or why it never will be.
Watcher = Callable[[], str | None]
Ending = tuple[TaskResult, str]


class CommandRefused(Exception):
    """The command does not apply in the engine's present state; `str()` says why."""


ENDINGS: dict[Command, Ending] = {
    Command.STOP: (TaskResult.STOPPED, "stopped by STOP"),
    Command.ABORT: (TaskResult.ABORTED, "aborted by ABORT"),
    Command.HALT: (TaskResult.HALTED, "halted by HALT"),
    Command.PANIC: (TaskResult.ABORTED, "aborted by PANIC"),
}
_END_CALLS = {Command.STOP: "stop", Command.ABORT: "abort", Command.HALT: "halt", Command.PANIC: "abort"}


class Control:
    """Carries out commands on the engine; told of its state changes and task ends (`check`)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._run_engine = engine.run_engine
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="control")
        self._lock = threading.Lock()
        self._watchers: list[tuple[Watcher, Future[None]]] = []

    def execute(self, command: Command, ending: Ending | None = None) -> Future[None]:
        """Carry out `command` (`ending`: how an ended task is recorded, if not the
        command's own); the future completes when its target state is reached.
        """
        done: Future[None] = Future()
        self._thread.submit(self._carry_out, command, ending, done)
        return done

    def check(self) -> None:
        """Complete the commands whose target the engine has now reached (any thread)."""
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

    def _carry_out(self, command: Command, ending: Ending | None, done: Future[None]) -> None:
        try:
            watcher = self._act(command, ending)
        except Exception as error:  # every put completes: an unexpected failure says why
            reason = str(error) if isinstance(error, CommandRefused) else f"{type(error).__name__}: {error}"
            done.set_exception(CommandRefused(reason))
            return
        with self._lock:
            self._watchers.append((watcher, done))
        self.check()

    def _act(self, command: Command, ending: Ending | None) -> Watcher:
        """Do what `command` asks now; return the watcher of its target state."""
        state = self._engine.state
        if command in (Command.PAUSE, Command.PAUSE_DEFER):
            if state is not WorkerState.RUNNING:
                raise CommandRefused(f"nothing is running (state {state})")
            self._run_engine.request_pause(defer=command is Command.PAUSE_DEFER)
            return self._until_paused
        if command is Command.RESUME:
            if state is not WorkerState.PAUSED:
                raise CommandRefused(f"nothing is paused (state {state})")
            self._engine.continue_with(self._run_engine.resume)
            return self._until_resumed
        if command in ENDINGS:
            if command is Command.PANIC and state is WorkerState.PAUSED:
                return _reached  # a paused task stays paused
            end = getattr(self._run_engine, _END_CALLS[command])
            return self._end(*(ending or ENDINGS[command]), end)
        raise CommandRefused(f"{command} is not carried out by the worker")

    def _end(self, result: TaskResult, reason: str, end: Callable[[], object]) -> Watcher:
        """End the current task with `end` (RE.stop/abort/halt) on the right thread."""
        task = self._engine.current
        if task is None:
            raise CommandRefused(f"no task is running (state {self._engine.state})")
        with self._engine.ending(result, reason) as begun:
            if not begun:
                return self._until_ended  # the engine will not start it
        self._await_engine(task)
        if str(self._run_engine.state) == "paused":
            self._engine.continue_with(end)  # only the engine thread may end a paused plan
        elif self._engine.current is task:
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
            and self._engine.current is task
            and time.monotonic() < deadline
        ):
            time.sleep(0.001)

    def _until_paused(self) -> str | None:
        if self._engine.state is WorkerState.PAUSED:
            return ""
        return "the task ended before it paused" if self._engine.current is None else None

    def _until_resumed(self) -> str | None:
        return None if self._engine.state is WorkerState.PAUSED else ""

    def _until_ended(self) -> str | None:
        return "" if self._engine.current is None else None


def _reached() -> str:
    return ""
