"""`LAST:*`: the task that finished most recently."""

from __future__ import annotations

from caproto import AlarmSeverity, AlarmStatus
from caproto.server import PVGroup

from ..models import TaskOutcome, TaskResult, to_json
from .fields import JSON_BYTES, double, enum, string, text, update, update_list, update_text
from .posting import show

SEVERITY = {
    TaskResult.FAILED: AlarmSeverity.MAJOR_ALARM,
    TaskResult.ABORTED: AlarmSeverity.MINOR_ALARM,
    TaskResult.HALTED: AlarmSeverity.MINOR_ALARM,
}


class LastPVs(PVGroup):
    """The last finished task and how it ended."""

    task_id = string("LAST:TASK_ID", "Last finished task id")
    plan = string("LAST:PLAN", "Last finished plan name")
    correlation_id = string("LAST:CORRELATION_ID", "Last finished correlation id")
    result = enum("LAST:RESULT", "How the last task ended", TaskResult, TaskResult.NONE)
    run_uids = text("LAST:RUN_UIDS", "Run start uids of the last task", max_bytes=JSON_BYTES)
    duration = double("LAST:DURATION", "Duration of the last task", units="s")
    history = text("HISTORY", "Finished tasks, newest first, JSON", max_bytes=JSON_BYTES)

    async def show_history(self, outcomes: list[TaskOutcome]) -> None:
        """Show `outcomes` (newest first) on `HISTORY`."""
        await update_list(self.history, outcomes)

    async def show(self, outcome: TaskOutcome) -> None:
        """Show `outcome`; `LAST:RESULT` is in alarm unless the task succeeded or was stopped."""
        task = outcome.task
        await update(self.plan, task.name)
        await update(self.correlation_id, task.correlation_id)
        await update_text(self.run_uids, to_json(list(outcome.run_uids)))
        await show(self.duration, outcome.duration)
        severity = SEVERITY.get(outcome.result, AlarmSeverity.NO_ALARM)
        status = AlarmStatus.STATE if severity else AlarmStatus.NO_ALARM
        await show(self.result, outcome.result, severity=severity, status=status)
        await show(self.task_id, task.task_id)  # last: seeing it change means the rest is set
