"""`SUBMIT`, `RUN` and their outcome PVs: a JSON request in, accepted or refused at once."""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from typing import NoReturn

from caproto.server import PVGroup

from ..errors import RequestError
from ..models import Task, TaskOutcome, TaskResult, describe_exception
from .circuit import updates_sent
from .fields import Refused, TextChannel, decode_write, enum, string, text, write_text
from .posting import show
from .writers import write_accepted, writer

REQUEST_BYTES = 65536  # the contract asks >= 16384 characters
VALIDATION_WAIT = 2.0  # seconds the worker has to validate a request before it is refused
STARTUP_WAIT = 30.0  # the same while no worker is up yet (starting, restarting)
HELD = "; the queue is on Hold"  # what SUBMIT:MESSAGE adds for a task accepted onto a held queue

log = logging.getLogger(__name__)


class SubmitStatus(StrEnum):
    """`SUBMIT:STATUS`: the outcome of the last write to `SUBMIT` or `RUN`."""

    NONE = "None"
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


class SubmitPVs(PVGroup):
    """Task requests in; the outcome of each write out, set before its completion."""

    submit = text("SUBMIT", "Task request JSON (write)", max_bytes=REQUEST_BYTES, read_only=False)
    run = text("RUN", "Task request; completes when it ends", max_bytes=REQUEST_BYTES, read_only=False)
    status = enum("SUBMIT:STATUS", "Outcome of the last request", SubmitStatus, SubmitStatus.NONE)
    message = text("SUBMIT:MESSAGE", "Why the last request was refused")
    task_id = string("SUBMIT:TASK_ID", "Task id of the last accepted request")

    @submit.putter
    async def submit(self, instance, value: str) -> str:
        """Queue the request or refuse it, with the reason on `SUBMIT:MESSAGE`."""
        await show_written(instance, value)
        await self.queue_request("SUBMIT", value)
        return value

    @run.putter
    async def run(self, instance, value: str) -> str:
        """Queue the request; complete once the task has ended, with an error unless it
        succeeded (a plain put does not wait: it behaves like `SUBMIT`).
        """
        await show_written(instance, value)
        task, ended = await self.queue_request("RUN", value, wait=True)
        assert ended is not None
        outcome = await ended
        await updates_sent()  # a CA link reading LAST:* on completion sees this task's end
        if outcome is None:
            raise Refused(f"task {task.task_id} was removed before it ran")
        if outcome.result not in (TaskResult.SUCCESS, TaskResult.STOPPED):  # a stop is no failure
            raise Refused(f"task {task.task_id} ended {outcome.result}: {outcome.error}")
        return value

    async def queue_request(
        self, command: str, value: str, *, wait: bool = False
    ) -> tuple[Task, asyncio.Future[TaskOutcome | None] | None]:
        """Validate and queue the raw write `value`; record the outcome, before returning the
        task and (`wait`) the future of its end; raise `Refused` if the request is refused.
        """
        ioc = self.parent
        try:
            pending = ioc.service.submit(decode_write(value), writer())
            future = asyncio.wrap_future(pending.future)
            try:
                waited = VALIDATION_WAIT if ioc.service.supervisor.up else STARTUP_WAIT
                task = await asyncio.wait_for(asyncio.shield(future), waited)
            except TimeoutError:
                pending.expire(waited)
                task = await future
        except (RequestError, ValueError) as error:
            await self.refuse(command, error)
        except Exception as error:  # a fault of the IOC's: still an answer, never a hung put
            log.exception("%s: the request could not be taken", command)
            await self.refuse(command, RequestError(f"the IOC could not take the request: {describe_exception(error)}"))
        held = not ioc.service.queue.enabled
        # Before any await (the task may even have ended already: the future is then done).
        ended = ioc.view.task_end(task.task_id) if wait else None
        await show(self.task_id, task.task_id)
        await show(self.status, SubmitStatus.ACCEPTED)
        await write_text(self.message, f"accepted as task {task.task_id}" + (HELD if held else ""))
        await ioc.bridge.settled()
        write_accepted()  # a RUN put's completion waits for the task: the write is logged now
        return task, ended

    async def refuse(self, command: str, error: Exception) -> NoReturn:
        """Record why the request written to `command` was refused; raise `Refused`."""
        await show(self.status, SubmitStatus.REJECTED)
        await write_text(self.message, str(error))
        await self.parent.record_error(f"{command}: {type(error).__name__}: {error}")
        raise Refused(error) from None


async def show_written(instance: TextChannel, value: str) -> None:
    """Hold the request written from the moment it arrives, as a record's `VAL` does: a
    plain `caput` reads it back (`New :`) while the request is still being validated, or
    its task runs.
    """
    await show(instance, instance.readback_of(value))
