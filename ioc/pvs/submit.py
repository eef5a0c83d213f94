"""`SUBMIT` and its outcome PVs: a JSON request in, accepted or refused at once."""

from __future__ import annotations

from enum import StrEnum

from caproto.server import PVGroup

from ..errors import RequestError
from ..models import Task
from .fields import Refused, decode_write, enum, string, text, write_text

REQUEST_BYTES = 65536  # the contract asks >= 16384 characters


class SubmitStatus(StrEnum):
    """`SUBMIT:STATUS`: the outcome of the last write to `SUBMIT` or `RUN`."""

    NONE = "None"
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


class SubmitPVs(PVGroup):
    """Task requests in; the outcome of each write out, set before its completion."""

    submit = text("SUBMIT", "Task request JSON (write)", max_bytes=REQUEST_BYTES, read_only=False)
    status = enum("SUBMIT:STATUS", "Outcome of the last request", SubmitStatus, SubmitStatus.NONE)
    message = text("SUBMIT:MESSAGE", "Why the last request was refused")
    task_id = string("SUBMIT:TASK_ID", "Task id of the last accepted request")

    @submit.putter
    async def submit(self, instance, value: str) -> str:
        """Queue the request or refuse it, with the reason on `SUBMIT:MESSAGE`."""
        await self.queue_request("SUBMIT", value)
        return value

    async def queue_request(self, command: str, value: str) -> Task:
        """Validate and queue the raw write `value`; record the outcome; raise if refused."""
        try:
            task = self.parent.service.submit(decode_write(value))
        except (RequestError, ValueError) as error:
            await self.status.write(SubmitStatus.REJECTED)
            await write_text(self.message, str(error))
            await self.parent.errors.record(f"{command}: {type(error).__name__}: {error}")
            raise Refused(error) from None
        await self.task_id.write(task.task_id)
        await self.status.write(SubmitStatus.ACCEPTED)
        await write_text(self.message, f"accepted as task {task.task_id}")
        return task
