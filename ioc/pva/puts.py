"""pvAccess puts: handed to the same write path as a Channel Access client's write
(`ChannelData.auth_write`, wrapped by `ioc.pvs.writers.capture_writers`), with the peer's
account and address as the writer, so access security, permissions, the put log and the
putters apply unchanged. Each put ends in exactly one `op.done`.
"""

from __future__ import annotations

from typing import Any

import numpy
from caproto import ChannelChar, ChannelData, ChannelEnum, ChannelType
from p4p import Value
from p4p.server import ServerOperation
from p4p.server.asyncio import SharedPV

from ..pvs.writers import refusal

READ_ONLY = "read-only PV: it refuses writes"


def peer_host(peer: str) -> str:
    """The address of a peer given as `host:port` (`[v6 address]:port` too)."""
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return host.strip("[]")


def as_ca_write(channel: ChannelData, value: Value) -> tuple[Any, ChannelType]:
    """The data and DBR type a CA client would send for the pvAccess put `value`."""
    if isinstance(channel, ChannelEnum):
        choices = [str(state) for state in channel.enum_strings]
        index = int(value["value.index"])
        if not 0 <= index < len(choices):
            raise ValueError(f"choice {index} is not one of 0..{len(choices) - 1} ({', '.join(choices)})")
        return [choices[index].encode()], ChannelType.STRING
    text = str(value["value"])
    if isinstance(channel, ChannelChar):
        return numpy.frombuffer(text.encode("utf-8"), dtype=numpy.uint8), ChannelType.CHAR
    return [text.encode("utf-8")], ChannelType.STRING


class Writes:
    """Put handler of a writable PV's `SharedPV`."""

    def __init__(self, channel: ChannelData) -> None:
        self.channel = channel

    async def put(self, pv: SharedPV, op: ServerOperation) -> None:
        """Write as a CA client would; done when the write is (a `RUN` put: its task ended)."""
        try:
            data, data_type = as_ca_write(self.channel, op.value())
            await self.channel.auth_write(peer_host(op.peer()), op.account(), data, data_type, None)
        except Exception as error:
            op.done(error=refusal(error))
        else:
            op.done()


class ReadOnly:
    """Put handler of a read-only PV's `SharedPV`: every put refused."""

    def put(self, pv: SharedPV, op: ServerOperation) -> None:
        """Refuse the put."""
        op.done(error=READ_ONLY)
