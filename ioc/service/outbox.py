"""The message bus's bounded outbox: what is to be sent, in order, kept until the broker
has confirmed it, so that what a lost connection swallowed is sent again.

Any thread puts; one sender thread takes. Nothing here waits on the network.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Envelope(Generic[T]):
    """One message and its place in the outbox's order (`seq` grows by 1 per message)."""

    seq: int
    message: T


class Outbox(Generic[T]):
    """At most `capacity` messages, oldest first: unconfirmed ones (sent on the current
    connection, not yet confirmed by the broker), then unsent ones. When it is full, a new
    message pushes out the oldest, which is counted in `dropped`.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"the outbox must hold at least 1 message, not {capacity}")
        self.capacity = capacity
        self._items: deque[Envelope[T]] = deque()  # under the lock
        self._sent = 0  # under the lock: how many of the oldest items went out on this connection
        self._next_seq = 0
        self._dropped = 0
        self._closed = False
        self._changed = threading.Condition()

    def __len__(self) -> int:
        with self._changed:
            return len(self._items)

    @property
    def dropped(self) -> int:
        """Messages pushed out unconfirmed because the outbox was full."""
        with self._changed:
            return self._dropped

    def put(self, message: T) -> None:
        """Add `message` at the end (any thread; never waits)."""
        with self._changed:
            if len(self._items) >= self.capacity:
                self._items.popleft()
                self._dropped += 1
                self._sent = max(self._sent - 1, 0)
            self._items.append(Envelope(self._next_seq, message))
            self._next_seq += 1
            self._changed.notify_all()

    def next_unsent(self, timeout: float) -> Envelope[T] | None:
        """The oldest message not yet sent on this connection, now counted as sent; None if
        none came within `timeout` seconds or the outbox was closed.
        """
        with self._changed:
            self._changed.wait_for(lambda: self._closed or len(self._items) > self._sent, timeout)
            if self._closed or len(self._items) <= self._sent:
                return None
            envelope = self._items[self._sent]
            self._sent += 1
            return envelope

    def has_unsent(self) -> bool:
        """Whether a message waits that was not sent on this connection yet."""
        with self._changed:
            return len(self._items) > self._sent

    def confirm(self, seq: int) -> None:
        """The broker has message `seq`, and so (it keeps a connection's order) every
        message before it: forget them.
        """
        with self._changed:
            while self._items and self._items[0].seq <= seq:
                self._items.popleft()
                self._sent = max(self._sent - 1, 0)
            self._changed.notify_all()

    def rewind(self) -> None:
        """A new connection: every unconfirmed message is to be sent again, in order."""
        with self._changed:
            self._sent = 0

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds until every message is confirmed; whether it was."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._items, timeout)

    def close(self) -> None:
        """Wake the sender for good: `next_unsent` returns None from now on."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
