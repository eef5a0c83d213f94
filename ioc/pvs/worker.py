"""`STATE`, `BUSY`, `HEARTBEAT`, `VERSION`, `STATUS`: is the worker alive, and what is it doing."""

from __future__ import annotations

from enum import StrEnum
from importlib.metadata import version

from caproto.server import PVGroup

from ..models import WorkerState
from .fields import enum, long, string, text


class Busy(StrEnum):
    """`BUSY`: a task is between its start and its end (paused included)."""

    IDLE = "Idle"
    BUSY = "Busy"


class WorkerPVs(PVGroup):
    """The worker's state, liveness and one human-readable line."""

    state = enum("STATE", "RunEngine/worker state", WorkerState, WorkerState.IDLE)
    busy = enum("BUSY", "Busy while a task runs", Busy, Busy.IDLE)
    heartbeat = long("HEARTBEAT", "+1 every second while alive")
    version = string("VERSION", "IOC package version", value=version("bluesky-ioc"))
    status = text("STATUS", "What the worker is doing now")

    @heartbeat.scan(period=1.0)
    async def heartbeat(self, instance, async_lib) -> None:
        """Count seconds of life."""
        await instance.write(instance.value + 1)
