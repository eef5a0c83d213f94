"""Name searches answered in the datagram callback, without caproto's broadcaster loops."""
from __future__ import annotations

import asyncio
import socket

import caproto as ca
from caproto.asyncio.utils import _UdpTransportWrapper

from ioc.pvs.server import Server


def search_datagram(*names: str) -> bytes:
    commands = [ca.VersionRequest(priority=0, version=13)]
    commands += [ca.SearchRequest(name, cid, 13) for cid, name in enumerate(names, 1)]
    return b"".join(bytes(command) for command in commands)


async def answers(*names: str) -> tuple[list[ca.Message], int]:
    """The replies a client gets to one datagram searching `names`, and how many
    datagrams were left for caproto's loop."""
    loop = asyncio.get_running_loop()
    server = Server({"X": ca.ChannelDouble(value=1.0)}, ["127.0.0.1"])
    server.port = 5064
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       local_addr=("127.0.0.1", 0))
    server.udp_socks["127.0.0.1"] = _UdpTransportWrapper(transport)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(5)
    try:
        server.broadcaster_datagram_queue.put(
            ("127.0.0.1", search_datagram(*names), client.getsockname()))
        queued = server.broadcaster_datagram_queue._others.qsize()
        try:
            data = await asyncio.to_thread(client.recv, 4096)
        except TimeoutError:
            return [], queued
        commands = ca.Broadcaster(our_role=ca.CLIENT).recv(data, ("127.0.0.1", 5064))
        return commands, queued
    finally:
        client.close()
        transport.close()


def test_a_search_is_answered_in_the_callback():
    replies, queued = asyncio.run(answers("NOPE", "X", "X."))
    assert [type(reply) for reply in replies] == [ca.VersionResponse, *[ca.SearchResponse] * 2]
    assert [(reply.cid, reply.port) for reply in replies[1:]] == [(2, 5064), (3, 5064)]
    assert bytes(replies[1]) == bytes(ca.SearchResponse(5064, None, 2, 13))
    assert queued == 0


def test_a_datagram_of_anything_else_goes_to_caprotos_loop():
    async def other() -> int:
        server = Server({}, ["127.0.0.1"])
        server.broadcaster_datagram_queue.put(
            ("127.0.0.1", bytes(ca.RepeaterRegisterRequest("127.0.0.1")), ("127.0.0.1", 1)))
        server.broadcaster_datagram_queue.put(("127.0.0.1", OSError("unreachable"), None))
        return server.broadcaster_datagram_queue._others.qsize()

    assert asyncio.run(other()) == 2


def test_a_datagram_cut_short_goes_to_caprotos_loop():
    async def cut() -> int:
        server = Server({"X": ca.ChannelDouble(value=1.0)}, ["127.0.0.1"])
        server.broadcaster_datagram_queue.put(("127.0.0.1", search_datagram("X")[:-3], ("127.0.0.1", 1)))
        return server.broadcaster_datagram_queue._others.qsize()

    assert asyncio.run(cut()) == 1
