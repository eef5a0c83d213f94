"""Name searches answered as their datagram arrives.

caproto 1.3 hands each UDP datagram from its protocol callback to the loop through a
thread-safe queue (``run_coroutine_threadsafe``: a task and a wake-up of the loop per
datagram), then to a second queue, and answers it from a third task: a client that
connects many channels waits for each batch of searches behind whatever else the loop
is doing, and libca paces its next batches on those replies. Here a datagram of
searches is answered in the callback itself; anything else goes on to caproto's loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import caproto as ca

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


def is_search(command: ca.Message) -> bool:
    """Whether `command` belongs to a search datagram (its version header, or a search)."""
    return isinstance(command, ca.SearchRequest | ca.VersionRequest)
