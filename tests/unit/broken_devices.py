"""ophyd-async devices that never connect, named by import path in test device files."""

import asyncio

from ophyd_async.core import DEFAULT_TIMEOUT, Device, DeviceMock, NotConnectedError


class Unreachable(Device):
    """Gives up at its connect timeout, like a device whose PVs never answer."""

    async def connect(
        self,
        mock: bool | DeviceMock = False,
        timeout: float = DEFAULT_TIMEOUT,
        force_reconnect: bool = False,
    ) -> None:
        await asyncio.sleep(timeout)
        raise NotConnectedError(f"{self.name}: no answer within {timeout} s")


class Hanging(Device):
    """Ignores its connect timeout."""

    async def connect(
        self,
        mock: bool | DeviceMock = False,
        timeout: float = DEFAULT_TIMEOUT,
        force_reconnect: bool = False,
    ) -> None:
        await asyncio.Event().wait()
