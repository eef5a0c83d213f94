"""`ERROR:*`: the most recent error, whether one is active, and how many there were."""

from __future__ import annotations

from enum import StrEnum

from caproto.server import PVGroup

from .fields import DONE, acts, enum, long, severity, text, trigger, write_text


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

    latest = ""  # the text of ERROR:MESSAGE

    @property
    def is_active(self) -> bool:
        """Whether a failure is unacknowledged."""
        return self.active.value == Active.YES

    async def record(self, message: str, *, failure: bool = False) -> None:
        """Count an error and show `message`; a `failure` also raises `ERROR:ACTIVE`."""
        self.latest = message
        await write_text(self.message, message)
        await self.count.write(self.count.value + 1)
        if failure:
            await self.set_active(True)

    async def set_active(self, active: bool) -> None:
        """Raise or lower `ERROR:ACTIVE` (MAJOR alarm while raised)."""
        await self.active.write(Active.YES if active else Active.NO, **severity(active))
        await self.parent.refresh_status()

    @clear.putter
    async def clear(self, instance, value: str) -> str:
        """Acknowledge the active error."""
        if acts(value):
            await self.set_active(False)
        return DONE
