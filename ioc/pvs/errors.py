"""`ERROR:*`: the most recent error, whether one is active, and how many there were."""

from __future__ import annotations

from enum import StrEnum

from caproto.server import PVGroup

from ..service.view import ErrorLatch
from .fields import DONE, acts, enum, long, severity, text, trigger, update, update_text
from .posting import show


class Active(StrEnum):
    """`ERROR:ACTIVE`: a failure not yet acknowledged."""

    NO = "No"
    YES = "Yes"


class ErrorPVs(PVGroup):
    """Errors of refused requests, failed tasks and refused commands."""

    message = text("ERROR:MESSAGE", "Most recent error")
    active = enum("ERROR:ACTIVE", "A failure is unacknowledged", Active, Active.NO)
    count = long("ERROR:COUNT", "Errors since the IOC started")
    clear = trigger("ERROR:CLEAR", "Write 1 to acknowledge", "Clear")

    async def show(self, latch: ErrorLatch) -> None:
        """Show the error latch (only what changed is posted)."""
        await update_text(self.message, latch.latest)
        await update(self.count, latch.count)
        active = latch.active is not None
        if (self.active.value == Active.YES) != active:
            await show(self.active, Active.YES if active else Active.NO, **severity(active))

    @clear.putter
    async def clear(self, instance, value: str) -> str:
        """Acknowledge the active error."""
        if acts(value):
            await self.parent.acknowledge()
        return DONE
