"""`BUS:STATUS`, `BUS:DROPPED`: the health of the message bus (`--stomp`)."""

from __future__ import annotations

from caproto import AlarmSeverity, AlarmStatus
from caproto.server import PVGroup

from ..messages import BusChanged
from ..models import BusStatus
from .fields import enum, long, update
from .posting import show


class BusPVs(PVGroup):
    """Whether the broker is connected, and what the full buffer has dropped."""

    status = enum("BUS:STATUS", "Message bus broker connection", BusStatus, BusStatus.OFF)
    dropped = long("BUS:DROPPED", "Bus messages dropped, buffer full")

    async def show(self, health: BusChanged) -> None:
        """Show the bus's health: a lost broker is a MAJOR communication alarm."""
        lost = health.status is BusStatus.DISCONNECTED
        alarm = (AlarmSeverity.MAJOR_ALARM, AlarmStatus.COMM) if lost else (
            AlarmSeverity.NO_ALARM, AlarmStatus.NO_ALARM)
        if (self.status.value, self.status.alarm.severity) != (health.status, alarm[0]):
            await show(self.status, health.status, severity=alarm[0], status=alarm[1])
        await update(self.dropped, health.dropped)
