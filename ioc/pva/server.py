"""One p4p `Server` beside caproto's on the same event loop, serving a `SharedPV` per PV
of the Channel Access face. Each channel's `publish` (the one call every change of its
value, alarm or time stamp goes through) also posts the new value to its `SharedPV`, so
both protocols' monitors carry the same updates.

A `SharedPV` is open only while pvAccess clients are connected to it (p4p holds their
operations until it opens, with the channel's value then): a PV nobody reads over
pvAccess costs nothing per change.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from caproto import ChannelData
from p4p import Value
from p4p.server import Server, StaticProvider
from p4p.server.asyncio import SharedPV
from p4p.server.raw import SharedPV as RawSharedPV

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
            mirror = Mirror(channel, shape, Writes(channel) if writable(channel) else ReadOnly())
            pv = MirroredPV(handler=mirror)
            channel.publish = _posting(channel.publish, pv, mirror)
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


class MirroredPV(SharedPV):
    """p4p's asyncio `SharedPV`, but the connect and disconnect handlers run at once in
    p4p's thread (not later on the loop): the PV is open before the first client's first
    operation, and closed before another client can come (a close queued on the loop could
    disconnect a client that connected in between). Puts still run on the loop.
    """

    def _exec(self, op: Any, method: Callable[..., Any], *args: Any) -> None:
        if op is None and getattr(method, "__self__", None) is not self:  # the handler's
            RawSharedPV._exec(self, op, method, *args)  # logs what it raises
        else:
            super()._exec(op, method, *args)


class Mirror:
    """The handler of one `SharedPV`: opens it with the channel's value when the first
    pvAccess client connects, closes it when the last one goes; puts go to `puts`.
    """

    def __init__(self, channel: ChannelData, shape: Shape, puts: Writes | ReadOnly) -> None:
        self.channel = channel
        self.shape = shape
        self.put = puts.put
        self._alarm: tuple[int, int] | None = None  # (severity, status) posted last

    def onFirstConnect(self, pv: SharedPV) -> None:  # noqa: N802 -- p4p's name
        """Open `pv` with what the channel holds now."""
        self._alarm = self._alarm_now()
        pv.open(self.shape.value(self.channel))

    def onLastDisconnect(self, pv: SharedPV) -> None:  # noqa: N802 -- p4p's name
        """Close `pv`: no updates are built while nobody reads it."""
        pv.close()

    def update(self) -> Value:
        """The fields that change with the channel's value (the rest stay as opened),
        the alarm only when it changed.
        """
        alarm, self._alarm = self._alarm, self._alarm_now()
        return self.shape.update(self.channel, alarm=alarm != self._alarm)

    def _alarm_now(self) -> tuple[int, int]:
        return int(self.channel.alarm.severity), int(self.channel.alarm.status)


def _posting(publish: Publish, pv: SharedPV, mirror: Mirror) -> Publish:
    async def publish_and_post(flags: Any, *args: Any, **options: Any) -> None:
        await publish(flags, *args, **options)
        if pv.isOpen():
            try:
                pv.post(mirror.update())
            except Exception:  # pvAccess must never break Channel Access
                if pv.isOpen():  # not just closed by its last client's going
                    log.exception("could not post %s over pvAccess", mirror.shape.type.getID())

    return publish_and_post
