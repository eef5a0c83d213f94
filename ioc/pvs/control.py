"""The control PVs: write 1 to pause, resume, stop, abort, halt, panic, reload...

A put with completion completes once the worker has reached the command's target
state, or with an error (reason on `ERROR:MESSAGE`) when the command does not apply.
"""

from __future__ import annotations

import asyncio

from caproto.server import PVGroup

from ..models import Command
from ..service import CommandRefused
from .fields import DONE, Refused, acts, trigger
from .writers import writer


def command_pv(command: Command, doc: str, act: str):
    """A trigger PV that carries out `command` when 1 is written."""

    async def put(group: ControlPVs, instance, value: str) -> str:
        if acts(value):
            await group.carry_out(command)
        return DONE

    return trigger(str(command), doc, act, put=put)


class ControlPVs(PVGroup):
    """One trigger PV per operator command."""

    pause = command_pv(Command.PAUSE, "Pause now (back to last checkpoint)", "Pause")
    pause_defer = command_pv(Command.PAUSE_DEFER, "Pause at the next checkpoint", "Pause later")
    resume = command_pv(Command.RESUME, "Resume the paused task", "Resume")
    stop = command_pv(Command.STOP, "End the task, exit_status success", "Stop")
    abort = command_pv(Command.ABORT, "End the task, exit_status abort", "Abort")
    halt = command_pv(Command.HALT, "End the task now, no cleanup", "Halt")
    panic = command_pv(Command.PANIC, "Emergency stop; hold until ALL_IS_WELL", "Panic")
    all_is_well = command_pv(Command.ALL_IS_WELL, "Lift a panic", "All is well")
    reload = command_pv(Command.RELOAD, "Reload plans and devices (idle only)", "Reload")

    async def carry_out(self, command: Command) -> None:
        """Carry out `command`; raise `Refused` (after recording why) if it does not apply."""
        ioc = self.parent
        try:
            await asyncio.wrap_future(ioc.service.command(command, writer()))
        except CommandRefused as error:
            await ioc.record_error(f"{command}: CommandRefused: {error}")
            raise Refused(error) from None
        await ioc.bridge.settled()
