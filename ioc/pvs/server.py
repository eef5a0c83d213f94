"""caproto's asyncio CA server, with Nagle's algorithm off for every client."""

from __future__ import annotations

import socket
from typing import Any

from caproto.asyncio.server import Context


class Server(Context):
    """caproto's asyncio server makes its listening socket with protocol 0, so asyncio
    does not set TCP_NODELAY on accepted connections: a small reply then waits for the
    client's delayed ACK (~40 ms on Linux). Each accepted connection gets TCP_NODELAY.
    """

    async def tcp_handler(self, client: Any, addr: tuple[str, int]) -> None:
        """Serve one client connection."""
        client.writer.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        await super().tcp_handler(client, addr)
