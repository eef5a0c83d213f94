"""Name searches answered in the datagram callback, without caproto's broadcaster loops."""
from __future__ import annotations

import asyncio
import socket
import struct

import caproto as ca
from caproto.asyncio.utils import _UdpTransportWrapper

from ioc.pvs.server import Server

HEADER = ">HHHHII"


def search_datagram(*names: str) -> bytes:
    commands = [ca.VersionRequest(priority=0, version=13)]
    commands += [ca.SearchRequest(name, cid, 13) for cid, name in enumerate(names, 1)]
    return b"".join(bytes(command) for command in commands)


async def reply_to(datagram: bytes) -> tuple[bytes, int]:
    """The reply a client gets to `datagram` (b"" if none), and how many datagrams were
    left for caproto's loop."""
    loop = asyncio.get_running_loop()
    server = Server({"X": ca.ChannelDouble(value=1.0)}, ["127.0.0.1"])
    server.port = 5064
    transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol,
                                                       local_addr=("127.0.0.1", 0))
    server.udp_socks["127.0.0.1"] = _UdpTransportWrapper(transport)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(2)
    try:
        server.broadcaster_datagram_queue.put(("127.0.0.1", datagram, client.getsockname()))
        queued = server.broadcaster_datagram_queue._others.qsize()
        try:
            return await asyncio.to_thread(client.recv, 4096), queued
        except TimeoutError:
            return b"", queued
    finally:
        client.close()
        transport.close()


def test_a_search_is_answered_in_the_callback():
    data, queued = asyncio.run(reply_to(search_datagram("NOPE", "X", "X.")))
    replies = ca.Broadcaster(our_role=ca.CLIENT).recv(data, ("127.0.0.1", 5064))
    assert [type(reply) for reply in replies] == [ca.VersionResponse, *[ca.SearchResponse] * 2]
    assert [(reply.cid, reply.port) for reply in replies[1:]] == [(2, 5064), (3, 5064)]
    assert bytes(replies[1]) == bytes(ca.SearchResponse(5064, None, 2, 13))
    assert queued == 0


def test_the_version_reply_echoes_the_search_sequence_number_as_rsrv_does():
    # libca's search datagram: its version header flags its sequence number (7) valid
    datagram = struct.pack(HEADER, 0, 0, 1, 13, 7, 0) + bytes(ca.SearchRequest("X", 1, 13))
    data, _ = asyncio.run(reply_to(datagram))
    assert struct.unpack_from(HEADER, data) == (0, 0, 1, 13, 7, 0)
    assert data[16:] == bytes(ca.SearchResponse(5064, None, 1, 13))


def test_a_datagram_of_anything_else_or_cut_short_goes_to_caprotos_loop():
    for datagram in (bytes(ca.RepeaterRegisterRequest("127.0.0.1")), search_datagram("X")[:-3]):
        assert asyncio.run(reply_to(datagram)) == (b"", 1)


def test_a_receive_error_goes_to_caprotos_loop():
    async def error() -> int:
        server = Server({}, ["127.0.0.1"])
        server.broadcaster_datagram_queue.put(("127.0.0.1", OSError("unreachable"), None))
        return server.broadcaster_datagram_queue._others.qsize()

    assert asyncio.run(error()) == 1
