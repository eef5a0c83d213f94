"""Monitor updates built once per reading and re-addressed to each subscription."""
from __future__ import annotations

import asyncio
from typing import Any

import caproto as ca
from caproto._circuit import ServerChannel
from caproto._dbr import DBR_TYPES
from caproto.server.common import Subscription, SubscriptionSpec

from ioc.pvs.circuit import Circuit
from ioc.pvs.fast_commands import FastCircuit
from ioc.pvs.server import Server
from tests.unit.test_fast_commands import ADDRESS, SID, connected

TIME_DOUBLE = ca.ChannelType.TIME_DOUBLE


async def serving(pvdb: dict[str, Any]) -> Server:
    """A server (not started): caproto makes its queues in a running loop."""
    return Server(pvdb, ["127.0.0.1"])


def subscription(chan: ServerChannel, entry: ca.ChannelDouble, subscriptionid: int) -> Subscription:
    return Subscription(mask=1, channel_filter=chan.channel_filter, circuit=None, channel=chan,
                        data_type=TIME_DOUBLE, data_count=0, subscriptionid=subscriptionid,
                        db_entry=entry)


def test_an_update_is_built_once_per_reading_and_readdressed(monkeypatch):
    chan = connected(ca.VirtualCircuit).channels_sid[SID]
    entry = ca.ChannelDouble(value=1.5)
    server = asyncio.run(serving({"X": entry}))
    spec = SubscriptionSpec(db_entry=entry, data_type_name=TIME_DOUBLE.name, mask=1,
                            channel_filter=chan.channel_filter)
    subs = [subscription(chan, entry, subscriptionid) for subscriptionid in (11, 12, 13)]
    for sub in subs:
        server.subscriptions[spec].append(sub)
    values = [1.5]  # one reading goes to every subscription of its spec
    metadata = DBR_TYPES[TIME_DOUBLE](status=0, severity=0)
    built = []
    subscribe = ServerChannel.subscribe
    monkeypatch.setattr(ServerChannel, "subscribe",
                        lambda self, **kwargs: built.append(1) or subscribe(self, **kwargs))
    updates = [server._update(spec, sub, metadata, values)[0] for sub in subs]
    assert len(built) == 1
    expected = [subscribe(chan, data=[1.5], metadata=metadata, data_type=TIME_DOUBLE,
                          data_count=1, subscriptionid=sub.subscriptionid, status=1)
                for sub in subs]
    assert [bytes(update) for update in updates] == [bytes(command) for command in expected]
    server._update(spec, subs[0], metadata, [2.5])  # a new reading is built anew
    assert len(built) == 2


class Socket:
    """The client's socket, as far as a circuit reads it before any traffic."""

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 5064)


def test_a_new_subscription_s_first_update_is_posted_at_once():
    """With nothing else published, the first update of a new subscription goes straight
    to its circuit's backlog, not through the server's fan-out queue and loop."""
    async def subscribe() -> tuple[Server, Circuit]:
        server = await serving({"X": ca.ChannelDouble(value=1.5)})
        circuit = Circuit(ca.VirtualCircuit(ca.SERVER, ADDRESS, None), Socket(), server)
        circuit.circuit = connected(FastCircuit)
        command = ca.EventAddRequest(TIME_DOUBLE, 1, SID, 11, 0, 0, 0, 1)
        circuit.circuit.process_command(command)
        await circuit._process_command(command)
        return server, circuit

    server, circuit = asyncio.run(subscribe())
    assert server.subscription_queue.empty()
    (sub, update), = circuit._take_posted()
    assert (sub.subscriptionid, update.header.parameter2, update.data) == (11, 11, [1.5])
