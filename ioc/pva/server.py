"""One p4p `Server` beside caproto's on the same event loop, serving a `SharedPV` per PV
of the Channel Access face. Each channel's `publish` (the one call every change of its
value, alarm or time stamp goes through) also posts the new value to its `SharedPV`, so
both protocols' monitors carry the same updates.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from caproto import ChannelData
from p4p.server import Server, StaticProvider
from p4p.server.asyncio import SharedPV

from ..pvs.writers import writable
from .puts import ReadOnly, Writes
from .shapes import Shape, shape_of

log = logging.getLogger(__name__)

Publish = Callable[..., Awaitable[None]]


class PvaServer:
    """Every PV of a caproto `pvdb` over pvAccess, under the same names."""

    def __init__(self, pvdb: Mapping[str, ChannelData], prefix: str) -> None:
        """Mirror every PV of `pvdb`; call within the running loop, before access security
        narrows the channels' rights (a PV is writable if a client may ever write it).
        """
        self.provider = StaticProvider("bluesky-ioc")
        for name, channel in pvdb.items():
            shape = shape_of(name.removeprefix(prefix), channel)
            handler = Writes(channel) if writable(channel) else ReadOnly()
            pv = SharedPV(handler=handler, initial=shape.value(channel))
            channel.publish = _posting(channel, channel.publish, pv, shape)
            self.provider.add(name, pv)
        self.count = len(pvdb)
        self._server: Server | None = None

    def start(self) -> None:
        """Start serving (configured by the EPICS_PVAS_* environment variables)."""
        self._server = Server(providers=[self.provider])
        conf = self._server.conf()
        log.info("serving %d PVs over pvAccess on port %s", self.count, conf.get("EPICS_PVAS_SERVER_PORT"))

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.stop()
            self._server = None


def _posting(channel: ChannelData, publish: Publish, pv: SharedPV, shape: Shape) -> Publish:
    async def publish_and_post(flags: Any, *args: Any, **options: Any) -> None:
        await publish(flags, *args, **options)
        try:
            pv.post(shape.value(channel))
        except Exception:  # pvAccess must never break Channel Access
            log.exception("could not post %s over pvAccess", shape.type.getID())

    return publish_and_post
