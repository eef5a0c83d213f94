"""Name searches answered as their datagram arrives.

caproto 1.3 hands each UDP datagram from its protocol callback to the loop through a
thread-safe queue (``run_coroutine_threadsafe``: a task and a wake-up of the loop per
datagram), then to a second queue, and answers it from a third task: a client that
connects many channels waits for each batch of searches behind whatever else the loop
is doing, and libca paces its next batches on those replies. Here a datagram of
searches is answered in the callback itself, its replies made from one ``SearchResponse`` (the
client's channel id written in); anything else goes on to caproto's loop.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any, Protocol

import caproto as ca
from caproto._commands import STR_ENC

Datagram = tuple[str, Any, Any]  # interface, bytes (or an OSError), sender's address


class Answerer(Protocol):
    """The server: answers a datagram of searches."""

    def answer_searches(self, data: bytes, address: Any) -> bool:
        """Answer the searches in `data` from `address`; False if it holds more."""


class SearchAnswers:
    """What caproto's UDP protocol puts each datagram into (its ``AsyncioQueue``
    interface): searches are answered at once, the rest is queued for caproto.
    """

    def __init__(self, answerer: Answerer) -> None:
        self.answerer = answerer
        self._others: asyncio.Queue[Datagram] = asyncio.Queue()

    def put(self, datagram: Datagram) -> None:
        """Answer `datagram` if it holds only searches, else queue it (called in the loop)."""
        _, data, address = datagram
        if not isinstance(data, bytes) or not self.answerer.answer_searches(data, address):
            self._others.put_nowait(datagram)

    async def async_get(self) -> Datagram:
        """The next datagram for caproto's loop."""
        return await self._others.get()


HEADER = struct.Struct(">HHHHII")  # command, payload size, data type, count, parameters 1, 2
CID = slice(12, 16)  # where a search reply's header has the client's channel id
SEQUENCE_SINCE = 11  # the minor protocol version since which searches carry a sequence number
SEQUENCE_VALID = 1  # a version header's data type that flags its sequence number valid


def searched(data: bytes) -> tuple[bytes | None, list[tuple[int, str]]] | None:
    """The version reply a datagram asks for (if it does), and the (channel id, name) of
    each search in it, read as caproto's ``SearchRequest`` reads them; None if it holds
    anything else or is cut short.
    """
    version: bytes | None = None
    names = []
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < HEADER.size:
            return None
        command, size, _, minor, cid, _ = HEADER.unpack_from(data, offset)
        start = offset + HEADER.size
        offset = start + size
        if offset > end:
            return None
        if command == ca.VersionRequest.ID:
            version = version_reply(minor, cid)
        elif command == ca.SearchRequest.ID:
            names.append((cid, data[start:offset].rstrip(b"\0").decode(STR_ENC)))
        else:
            return None
    return version, names


def version_reply(minor: int, sequence: int) -> bytes:
    """The version reply to a search datagram whose version header gives the client's
    `minor` protocol version and (in its first parameter) the datagram's `sequence`
    number. From minor version 11 on the reply echoes the number, flagged valid, as
    EPICS's rsrv does: libca matches replies to its searches by it, and without it
    never learns the round trip, so it sends its searches one small batch per timer
    period (connecting 1,000 channels took a second here, 30 ms from a softIoc).
    caproto 1.3 replies with neither.
    """
    if minor < SEQUENCE_SINCE:
        return bytes(ca.VersionResponse(ca.DEFAULT_PROTOCOL_VERSION))
    return HEADER.pack(ca.VersionResponse.ID, 0, SEQUENCE_VALID, ca.DEFAULT_PROTOCOL_VERSION,
                       sequence, 0)


def search_reply(template: bytes, cid: int) -> bytes:
    """A search reply for the channel id `cid`, from the bytes of a ``SearchResponse``."""
    return template[:CID.start] + cid.to_bytes(4, "big") + template[CID.stop:]
