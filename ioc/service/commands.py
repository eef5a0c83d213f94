"""Operator commands on the IOC side: the panic latch, reload, and the escalation that
kills a worker that does not halt. The rest is forwarded to the worker process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, contextmanager

from ..models import Command, TaskResult
from .supervisor import Ending, Supervisor


class CommandRefused(Exception):
    """The command does not apply now; `str()` says why."""


class Commands:
    """Carries out each command and answers with a future that completes when its target
    state is reached, or fails with `CommandRefused` (every command gets an answer).
    """

    def __init__(
        self,
        supervisor: Supervisor,
        *,
        set_latched: Callable[[bool], None],
        idle: Callable[[], AbstractContextManager[bool]],
        halt_timeout: float,
    ) -> None:
        self._supervisor = supervisor
        self._set_latched = set_latched
        self._idle = idle
        self._halt_timeout = halt_timeout
        self._waits = ThreadPoolExecutor(max_workers=4, thread_name_prefix="command")
        self.panicked = False

    def execute(self, command: Command) -> Future[None]:
        """Carry out `command`."""
        done: Future[None] = Future()
        self._waits.submit(self._carry_out, command, done)
        return done

    def _carry_out(self, command: Command, done: Future[None]) -> None:
        try:
            self._act(command)
        except CommandRefused as error:
            done.set_exception(error)
        except Exception as error:  # every put completes: an unexpected failure says why
            done.set_exception(CommandRefused(f"{type(error).__name__}: {error}"))
        else:
            done.set_result(None)

    def _act(self, command: Command) -> None:
        """Do what `command` asks; return once its target state is reached."""
        if command is Command.PANIC:
            self.panicked = True
            self._set_latched(True)
            if self._supervisor.running is not None:
                limit = f"the worker did not end the task within {self._halt_timeout:g} s and was restarted"
                self._forward(command, escalation=(TaskResult.ABORTED, f"aborted by PANIC; {limit}"))
            return
        if command is Command.ALL_IS_WELL:
            if not self.panicked:
                raise CommandRefused("the worker is not panicked")
            self.panicked = False
            self._set_latched(False)
            return
        if command is Command.RELOAD:
            self._reload()
            return
        if command is Command.RESUME and self.panicked:
            raise CommandRefused("the worker is panicked: write ALL_IS_WELL first")
        escalation = None
        if command is Command.HALT:
            limit = f"the worker did not halt within {self._halt_timeout:g} s and was restarted"
            escalation = (TaskResult.HALTED, limit)
        self._forward(command, escalation=escalation)

    def _forward(self, command: Command, *, escalation: Ending | None) -> None:
        """Have the worker carry out `command`; kill it if it does not end the task in time."""
        answer = self._supervisor.command(command)
        task = self._supervisor.running
        try:
            answer.result(timeout=self._halt_timeout if escalation else None)
        except FutureTimeout:
            assert escalation is not None
            ended = self._supervisor.ended_future()
            if task is not None and self._supervisor.running is task:
                self._supervisor.kill(escalation)
                if ended is not None:
                    ended.result(timeout=30)
        except Exception as error:
            raise CommandRefused(str(error)) from None

    def _reload(self) -> None:
        """Replace the worker, at once and only while no task runs (nor another RELOAD)."""
        with self._idle() as idle:
            if not idle:
                raise CommandRefused(self._not_idle())
            try:
                self._supervisor.reload().result()
            except Exception as error:
                raise CommandRefused(f"{error} (the old worker goes on)") from None

    def _not_idle(self) -> str:
        """Why RELOAD is refused now (it is refused, not deferred: the contract's "refused
        unless idle", and an operator would not expect a reload to happen later by itself).
        """
        task = self._supervisor.running
        if task is None:
            return "RELOAD is refused unless idle: another RELOAD is in progress"
        return (
            f"RELOAD is refused unless idle: task {task.task_id[:8]} ({task.name}) is running;"
            " write RELOAD again once it has ended"
        )


@contextmanager
def holding(lock: threading.Lock) -> Iterator[bool]:
    """Yield whether `lock` could be taken at once (and hold it meanwhile)."""
    acquired = lock.acquire(blocking=False)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()
