"""The asyncio CA server of caproto, with Nagle's algorithm off and subscriptions mended."""

from __future__ import annotations

import gc
import socket
from collections import defaultdict
from typing import Any

import caproto as ca
from caproto import apply_arr_filter
from caproto._utils import apply_deadband_filter
from caproto.asyncio.server import Context
from caproto.server.common import Subscription, SubscriptionSpec, host_endian

from .circuit import Circuit, SubscriptionSet
from .client_names import IpHostCircuit
from .searches import SearchAnswers, search_reply, searched


class Server(Context):
    """The asyncio server of caproto, mended where caproto 1.3.0 lets one client stall the
    others (see ``ioc.pvs.circuit`` for the circuit side).

    * Its listening socket is made with protocol 0, so asyncio does not set TCP_NODELAY
      on accepted connections: a small reply then waits for the client's delayed ACK
      (~40 ms on Linux). Each accepted connection gets TCP_NODELAY.
    * ``Context._subscription_queue_send`` (caproto/server/common.py) awaits each
      client's bounded queue from the one loop that fans updates out to every client,
      while iterating that spec's subscriptions: a client that stops reading stops every
      other client's monitors, and once it is gone the loop waits on its dead queue for
      ever. Here an update replaces the client's unsent one of the same subscription
      (``Circuit.post``, never waits), and the subscription sets have O(1) removal.
    """

    CircuitClass = Circuit

    def __init__(
        self, pvdb: dict[str, Any], interfaces: list[str] | None = None, *,
        client_ip_as_host: bool = False,
    ) -> None:
        """Serve `pvdb`; `client_ip_as_host`: see `ioc.pvs.client_names`."""
        super().__init__(pvdb, interfaces)
        if client_ip_as_host:
            self.CircuitClass = IpHostCircuit
        self.subscriptions: defaultdict[SubscriptionSpec, SubscriptionSet] = defaultdict(
            SubscriptionSet
        )
        self.broadcaster_datagram_queue = SearchAnswers(self)
        self._search_reply: bytes | None = None  # a SearchResponse, made once the port is known

    def answer_searches(self, data: bytes, address: Any) -> bool:
        """Answer the searches of one datagram now, as caproto's broadcaster loop would
        (a reply for each name served, none for the others); False, having done nothing,
        if the datagram holds anything else (caproto's loop handles and logs it).
        """
        found = searched(data)
        if found is None:
            return False
        version, names = found
        if address in self.ignore_addresses:
            return True
        if self._search_reply is None:
            self._search_reply = bytes(ca.SearchResponse(self.port, None, 0,
                                                         ca.DEFAULT_PROTOCOL_VERSION))
        replies = [search_reply(self._search_reply, cid) for cid, name in names
                   if self._serves(name)]
        if replies:
            if version is not None:
                replies.insert(0, version)
            payload = b"".join(replies)
            for udp_sock in self.udp_socks.values():
                try:
                    udp_sock.transport.sendto(payload, address)
                except OSError as error:
                    self.log.warning("cannot answer searches from %s:%d: %s", *address, error)
        return True

    def _serves(self, name: str) -> bool:
        """Whether `name` is a PV (or a field of one) served here."""
        try:
            return self[name] is not None
        except KeyError:
            return False

    async def run(self, *args: Any, **kwargs: Any) -> None:
        """Serve until cancelled. What was built before (the PVs, the service, the imported
        libraries) lives as long as the process: it is frozen out of the garbage
        collector's full passes, which CA traffic triggers ever more often (each
        subscription made survives a young pass or two), and which otherwise walk every
        object of the process each time (~15 % of the server's time under acctst).
        """
        gc.freeze()
        await super().run(*args, **kwargs)

    async def tcp_handler(self, client: Any, addr: tuple[str, int]) -> None:
        """Serve one client connection."""
        client.writer.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        await super().tcp_handler(client, addr)

    async def _subscription_queue_send(self, sub_spec: SubscriptionSpec, sub: Subscription,
                                       metadata: Any, values: Any, flags: int) -> None:
        """The update of one subscription as caproto makes it (array, deadband and sync
        filters), posted to its circuit's latest-value backlog instead of awaited into a
        bounded queue.
        """
        command, values = self._update(sub_spec, sub, metadata, values)
        if sub.channel_filter.dbnd is not None:
            tracked = apply_deadband_filter(previous_value=self.last_dead_band.get(sub),
                                            new_value=values, sub=sub, flags=flags,
                                            host_endian=host_endian)
            if tracked is None:
                return
            self.last_dead_band[sub] = tracked
        sync = sub.channel_filter.sync
        if sync is not None:
            last = self.last_sync_edge_update[sub][sync.s]
            if last.get(sync.m) == command:
                return
            last[sync.m] = command
        sub.circuit.post(sub, command)

    def _update(self, sub_spec: SubscriptionSpec, sub: Subscription, metadata: Any,
                values: Any) -> tuple[ca.EventAddResponse, Any]:
        """The update of `sub`, and its values as sent (array filter and count applied).
        A value goes to every subscription of its spec (and a new subscription gets the
        spec's cached reading): the update built for the
        previous subscription, when it carried the same reading, type and count, is
        re-addressed (a copy of its header with this subscription's id) instead of
        converted and serialised again.
        """
        shared = self.subscriptions.get(sub_spec)
        latest = shared.latest if shared is not None else None
        if (latest is not None and latest[0] is metadata and latest[1] is values
                and latest[2] == sub.data_type and latest[3] == sub.data_count):
            return readdressed(latest[5], sub.subscriptionid), latest[4]
        filtered = apply_arr_filter(sub_spec.channel_filter.arr, values)
        data_count = sub.data_count or len(filtered)
        if data_count != len(filtered):
            filtered = filtered[:data_count]
        command = sub.channel.subscribe(data=filtered, metadata=metadata,
                                        data_type=sub.data_type, data_count=data_count,
                                        subscriptionid=sub.subscriptionid, status=1)
        if shared is not None:
            shared.latest = (metadata, values, sub.data_type, sub.data_count, filtered, command)
        return command, filtered


def readdressed(command: ca.EventAddResponse, subscriptionid: int) -> ca.EventAddResponse:
    """`command` for subscription `subscriptionid`: its payload shared, its header copied."""
    header = type(command.header).from_buffer_copy(command.header)
    header.parameter2 = subscriptionid
    return ca.EventAddResponse.from_components(header, *command.buffers)
