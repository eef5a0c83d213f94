"""`QUEUE`, `QUEUE:COUNT`: the pending tasks in run order."""

from __future__ import annotations

from caproto.server import PVGroup

from ..models import Task, to_json
from .fields import JSON_BYTES, long, text, write_text


class QueuePVs(PVGroup):
    """The pending tasks."""

    tasks = text("QUEUE", "Pending tasks, JSON, run order", max_bytes=JSON_BYTES)
    count = long("QUEUE:COUNT", "Number of pending tasks")

    async def show(self, tasks: list[Task]) -> None:
        """Show `tasks` as the pending queue."""
        await write_text(self.tasks, to_json([task.summary() for task in tasks]))
        await self.count.write(len(tasks))
