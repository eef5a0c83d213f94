"""The control PVs: write 1 to pause, resume, stop, abort, halt, panic, reload...

A put with completion completes once the worker has reached the command's target
state, or with an error (reason on `ERROR:MESSAGE`) when the command does not apply.
"""

from __future__ import annotations

import asyncio

from caproto.server import PVGroup

from ..models import Command
from ..service import CommandRefused
from .fields import Refused, Trigger, trigger


def command_pv(command: Command, doc: str):
    """A trigger PV that carries out `command` when 1 is written."""

    async def put(group: ControlPVs, instance, value: str) -> str:
        if value == Trigger.ACT:
            await group.carry_out(command)
        return Trigger.IDLE

    return trigger(str(command), doc, put=put)


class ControlPVs(PVGroup):
    """One trigger PV per operator command."""

    pause = command_pv(Command.PAUSE, "Pause now (back to last checkpoint)")
    pause_defer = command_pv(Command.PAUSE_DEFER, "Pause at the next checkpoint")
    resume = command_pv(Command.RESUME, "Resume the paused task")
    stop = command_pv(Command.STOP, "End the task, exit_status success")
    abort = command_pv(Command.ABORT, "End the task, exit_status abort")
    halt = command_pv(Command.HALT, "End the task now, no cleanup")
    panic = command_pv(Command.PANIC, "Emergency stop; hold until ALL_IS_WELL")
    all_is_well = command_pv(Command.ALL_IS_WELL, "Lift a panic")
    reload = command_pv(Command.RELOAD, "Reload plans and devices (idle only)")

    async def carry_out(self, command: Command) -> None:
        """Carry out `command`; raise `Refused` (after recording why) if it does not apply."""
        ioc = self.parent
        try:
            await asyncio.wrap_future(ioc.service.command(command))
        except CommandRefused as error:
            await ioc.errors.record(f"{command}: CommandRefused: {error}")
            raise Refused(error) from None
        await ioc.bridge.settled()
