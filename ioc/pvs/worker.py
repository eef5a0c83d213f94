"""`STATE`, `BUSY`, `HEARTBEAT`, `VERSION`, `STATUS`: is the worker alive, and what is it doing."""

from __future__ import annotations

from enum import StrEnum
from importlib.metadata import version
from typing import Any

from caproto.server import PVGroup

from ..models import WorkerState, to_json
from .fields import JSON_BYTES, enum, long, string, text, update, update_text
from .posting import show


class Busy(StrEnum):
    """`BUSY`: a task is between its start and its end (paused included)."""

    IDLE = "Idle"
    BUSY = "Busy"


class Suspension(StrEnum):
    """`SUSPEND:ACTIVE`: a suspender holds the running task."""

    NO = "No"
    YES = "Yes"


class WorkerPVs(PVGroup):
    """The worker's state, liveness and one human-readable line."""

    state = enum("STATE", "RunEngine/worker state", WorkerState, WorkerState.IDLE)
    busy = enum("BUSY", "Busy while a task runs", Busy, Busy.IDLE)
    heartbeat = long("HEARTBEAT", "+1 every second while alive")
    version = string("VERSION", "IOC package version", value=version("bluesky-ioc"))
    status = text("STATUS", "What the worker is doing now")
    pid = long("WORKER:PID", "Worker process id (0: none up)")
    restarts = long("WORKER:RESTARTS", "Worker processes that took over")
    suspended = enum("SUSPEND:ACTIVE", "A suspender holds the task", Suspension, Suspension.NO)
    suspend_reason = text("SUSPEND:REASON", "Which suspender holds the task, why")
    suspenders = text("SUSPENDERS", "Declared suspenders, JSON", max_bytes=JSON_BYTES)

    async def show_process(self, pid: int, restarts: int) -> None:
        """Show the worker process now up (`pid`, 0 for none) and the restarts so far."""
        await update(self.pid, pid)
        await update(self.restarts, restarts)

    async def show_suspended(self, reason: str) -> None:
        """Show which suspender holds the task (`reason`), or none (empty)."""
        await update(self.suspended, Suspension.YES if reason else Suspension.NO)
        await update_text(self.suspend_reason, reason)

    async def show_suspenders(self, suspenders: list[dict[str, Any]]) -> None:
        """Show the declared suspenders (`SUSPENDERS`)."""
        await update_text(self.suspenders, to_json(suspenders))

    @heartbeat.scan(period=1.0)
    async def heartbeat(self, instance, async_lib) -> None:
        """Count seconds of life."""
        await show(instance, instance.value + 1)
