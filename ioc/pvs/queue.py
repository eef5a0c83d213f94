"""`QUEUE`, `QUEUE:COUNT`, `QUEUE:NAMES`, `QUEUE:ENABLE`, `QUEUE:REMOVE`, `QUEUE:CLEAR`: the pending tasks."""

from __future__ import annotations

from enum import StrEnum

from caproto.server import PVGroup

from ..models import Task
from ..service import NotPending
from .fields import (
    DONE,
    JSON_BYTES,
    Refused,
    acts,
    enum,
    long,
    string,
    strings,
    text,
    trigger,
    update,
    update_list,
)
from .posting import show
from .writers import writer

MAX_NAMES = 100  # entries on QUEUE:NAMES


class Gate(StrEnum):
    """`QUEUE:ENABLE`: whether pending tasks may start."""

    HOLD = "Hold"
    RUN = "Run"


class QueuePVs(PVGroup):
    """The pending tasks and the operator's hold on them."""

    tasks = text("QUEUE", "Pending tasks, JSON, run order", max_bytes=JSON_BYTES)
    count = long("QUEUE:COUNT", "Number of pending tasks")
    names = strings("QUEUE:NAMES", "Pending tasks: id and plan", max_items=MAX_NAMES)
    enable = enum("QUEUE:ENABLE", "Hold or run pending tasks", Gate, Gate.RUN, read_only=False)
    remove = string("QUEUE:REMOVE", "Write a pending task id to remove it", read_only=False)
    clear = trigger("QUEUE:CLEAR", "Write 1 to remove every pending task", "Clear")

    async def show(self, tasks: list[Task], enabled: bool) -> None:
        """Show `tasks` as the pending queue, and the gate."""
        await update_list(self.tasks, tasks)
        await update(self.count, len(tasks))
        names = [f"{task.task_id[:8]} {task.name}" for task in tasks[:MAX_NAMES]]
        await update(self.names, names or [""])
        gate = Gate.RUN if enabled else Gate.HOLD
        if self.enable.value != gate:
            await show(self.enable, gate)  # not an operator's write: no putter

    @enable.putter
    async def enable(self, instance, value: str) -> str:
        """Hold or release the queue."""
        self.parent.service.set_enabled(value == Gate.RUN, writer())
        return value

    @remove.putter
    async def remove(self, instance, value: str) -> str:
        """Take a pending task off the queue; refuse an id that is not pending."""
        try:
            self.parent.service.remove(value, writer())
        except NotPending as error:
            await self.parent.record_error(f"QUEUE:REMOVE: NotPending: {error}")
            raise Refused(error) from None
        await self.parent.bridge.settled()
        return value

    @clear.putter
    async def clear(self, instance, value: str) -> str:
        """Take every pending task off the queue."""
        if acts(value):
            self.parent.service.clear(writer())
            await self.parent.bridge.settled()
        return DONE
