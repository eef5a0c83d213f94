"""Operator commands on the IOC side: the panic latch, reload, and the escalation that
kills a worker that does not halt. The rest is forwarded to the worker process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import AbstractContextManager, contextmanager

from ..identity import NOBODY, Writer
from ..models import Command, TaskResult
from .policy import Policy, PolicyError
from .supervisor import Ending, Supervisor

# How a task a command ends is recorded, naming who wrote the command.
ENDINGS = {
    Command.STOP: (TaskResult.STOPPED, "stopped by {}"),
    Command.ABORT: (TaskResult.ABORTED, "aborted by {}"),
    Command.HALT: (TaskResult.HALTED, "halted by {}"),
    Command.PANIC: (TaskResult.ABORTED, "aborted by {} (PANIC)"),
}


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
        policy: Policy | None = None,
    ) -> None:
        self._supervisor = supervisor
        self._policy = policy or Policy()
        self._enders: dict[str, Writer] = {}  # task id -> who asked to end it
        self._set_latched = set_latched
        self._idle = idle
        self._halt_timeout = halt_timeout
        self._waits = ThreadPoolExecutor(max_workers=4, thread_name_prefix="command")
        self.panicked = False

    def execute(self, command: Command, writer: Writer = NOBODY) -> Future[None]:
        """Carry out `command`, written by `writer`."""
        done: Future[None] = Future()
        self._waits.submit(self._carry_out, command, writer, done)
        return done

    def ended_by(self, task_id: str) -> Writer | None:
        """Who asked to end task `task_id` with STOP, ABORT, HALT or PANIC (forgotten then)."""
        return self._enders.pop(task_id, None)

    def _carry_out(self, command: Command, writer: Writer, done: Future[None]) -> None:
        try:
            self._act(command, writer)
        except CommandRefused as error:
            done.set_exception(error)
        except Exception as error:  # every put completes: an unexpected failure says why
            done.set_exception(CommandRefused(f"{type(error).__name__}: {error}"))
        else:
            done.set_result(None)

    def _act(self, command: Command, writer: Writer) -> None:
        """Do what `command` asks; return once its target state is reached."""
        ending = self._ending(command, writer)
        if command is Command.PANIC:
            self.panicked = True
            self._set_latched(True)
            if ending is not None:
                limit = f"the worker did not end the task within {self._halt_timeout:g} s and was restarted"
                self._forward(command, ending, escalation=(ending[0], f"{ending[1]}; {limit}"))
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
            who = f"{ending[1]}; " if ending is not None else ""
            escalation = (TaskResult.HALTED, f"{who}{limit}")
        self._forward(command, ending, escalation=escalation)

    def _ending(self, command: Command, writer: Writer) -> Ending | None:
        """How the running task is recorded if `command` ends it (None: no task runs or
        the command ends none); remembers who wrote it.
        """
        task = self._supervisor.running
        if command not in ENDINGS or task is None:
            return None
        self._enders[task.task_id] = writer
        result, reason = ENDINGS[command]
        return result, reason.format(writer)

    def _forward(
        self, command: Command, ending: Ending | None = None, *, escalation: Ending | None
    ) -> None:
        """Have the worker carry out `command` (a task it ends recorded as `ending`); kill
        it if it does not end the task in time.
        """
        answer = self._supervisor.command(command, ending)
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
        """A new worker with the plans and devices as they are now, and the rules files
        re-read; at once and only while no task runs (nor another RELOAD); all or nothing:
        if either fails to load, the old ones go on.
        """
        with self._idle() as idle:
            if not idle:
                raise CommandRefused(self._not_idle())
            try:
                rules = self._policy.read_again()
            except PolicyError as error:
                raise CommandRefused(f"{error} (the old rules and worker go on)") from None
            try:
                self._supervisor.reload().result()
            except Exception as error:
                raise CommandRefused(f"{error} (the old worker goes on)") from None
            self._policy.apply(rules)

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
