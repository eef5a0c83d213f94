"""`CURRENT:*`: the task that is running (empty strings and zeros while idle)."""

from __future__ import annotations

import time

from caproto.server import PVGroup

from ..models import RunProgress, Task, to_json
from .fields import JSON_BYTES, double, long, string, text, update, update_text
from .posting import show


class CurrentPVs(PVGroup):
    """The running task and its open run."""

    task_id = string("CURRENT:TASK_ID", "Running task id")
    plan = string("CURRENT:PLAN", "Running plan name")
    params = text("CURRENT:PARAMS", "Running task params, JSON", max_bytes=JSON_BYTES)
    correlation_id = string("CURRENT:CORRELATION_ID", "Running task correlation id")
    run_uid = string("CURRENT:RUN_UID", "Open run start uid")
    scan_id = long("CURRENT:SCAN_ID", "Open run scan id")
    progress = double("CURRENT:PROGRESS", "Open run progress", units="%", limits=(0.0, 100.0))
    elapsed = double("CURRENT:ELAPSED", "Seconds since the task started", units="s")

    _started: float | None = None

    @elapsed.scan(period=0.5)
    async def elapsed(self, instance, async_lib) -> None:
        """Count the running task's seconds."""
        if self._started is not None:
            await show(instance, time.time() - self._started)

    async def show_task(self, task: Task | None, started: float | None = None) -> None:
        """Show `task` as running since `started`, or clear everything when `task` is None."""
        self._started = started
        await update(self.task_id, task.task_id if task else "")
        await update(self.plan, task.name if task else "")
        await update_text(self.params, to_json(task.params) if task else "")
        await update(self.correlation_id, task.correlation_id if task else "")
        await self.show_run(RunProgress())
        await update(self.elapsed, 0.0)

    async def show_run(self, run: RunProgress) -> None:
        """Show the open run."""
        await update(self.run_uid, run.run_uid)
        await update(self.scan_id, run.scan_id)
        await update(self.progress, run.percent)
