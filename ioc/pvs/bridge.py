"""Carries worker reports from the worker's threads onto the server's event loop, in order."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..messages import DeviceProgress, DocumentEmitted, QueueChanged, Report, RunProgressed

if TYPE_CHECKING:
    from .ioc import BlueskyIOC

log = logging.getLogger(__name__)

# Documents of which only the latest matters to a live view; the run store keeps them all.
STREAMED_DOCUMENTS = frozenset({"event", "event_page", "datum", "datum_page", "stream_datum"})

Update = tuple[Callable[..., Awaitable[None]], tuple[Any, ...]]

STREAM_INTERVAL = 0.1  # seconds: a fast stream posts at most 10 updates a second

class LoopBridge:
    """A service listener that never blocks its caller: reports are queued and applied to
    the PVs by one task, in arrival order; the loop is woken (`call_soon_threadsafe`) once
    per batch of reports that arrived while it was busy, not once per report (within
    `batch()`, once at its end), and the PVs that sum up all reports (`STATUS`,
    `ERROR:*`) are written once per batch. Fast streams are posted at a bounded rate,
    keeping only their latest update.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, ioc: BlueskyIOC) -> None:
        self._loop = loop
        self._ioc = ioc
        self._pending: deque[Update | asyncio.Future[None]] = deque()  # under the lock
        self._woken = False  # under the lock: the loop has been told of pending items
        self._wake = asyncio.Event()  # set on the loop only
        self._lock = threading.Lock()
        self._batching = threading.local()  # `batch()` is open on this thread
        self._held: dict[str, Update] = {}  # stream -> its latest update, held back
        self._next_post: dict[str, float] = {}  # stream -> when it may post again
        self._applying = loop.create_task(self._run(), name="pv-updates")

    async def _run(self) -> None:
        """Apply updates for as long as the server runs."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            with self._lock:
                batch, self._woken = list(self._pending), False
                self._pending.clear()
            applied = False  # reports applied since the summary PVs were last written
            for update in batch:
                if isinstance(update, asyncio.Future):
                    if applied:
                        await self._summarize()
                        applied = False
                    update.set_result(None)
                    continue
                apply, args = update
                try:
                    await apply(*args)
                except Exception:  # one bad update must not stop the PVs from moving
                    log.exception("could not show %s%r", apply.__name__, args)
                applied = True
            if applied:
                await self._summarize()

    async def _summarize(self) -> None:
        """Write the PVs that sum up every report (`ERROR:*`, `STATUS`), once per batch."""
        try:
            await self._ioc.summarize()
        except Exception:
            log.exception("could not show the status")

    async def settled(self) -> None:
        """Return once every report posted before this call has been applied (held-back
        stream updates included).
        """
        barrier = self._loop.create_future()
        with self._lock:
            self._release_held()
            self._enqueue(barrier)
        await barrier

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Queue the reports this thread posts meanwhile without waking the loop; wake it
        once at the end. The loop then does not take the interpreter from a thread that
        has more of the worker's reports to record.
        """
        self._batching.open = True
        try:
            yield
        finally:
            self._batching.open = False
            with self._lock:
                if self._pending:
                    self._wake_loop()

    def _enqueue(self, item: Update | asyncio.Future[None]) -> None:
        """Queue `item` (lock held); wake the loop unless a `batch()` is open on this thread."""
        self._pending.append(item)
        if not getattr(self._batching, "open", False):
            self._wake_loop()

    def _wake_loop(self) -> None:
        """Wake the loop to apply what is pending, unless it has been woken already (lock held)."""
        if not self._woken:
            self._woken = True
            self._loop.call_soon_threadsafe(self._wake.set)

    def _post(self, apply: Callable[..., Awaitable[None]], *args: Any) -> None:
        with self._lock:
            self._release_held()  # a stream's latest update keeps its place before this one
            self._enqueue((apply, args))

    def _post_stream(self, stream: str, apply: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Post an update of a fast `stream` (event documents, progress, queue snapshots) at
        most once per `STREAM_INTERVAL`: in between only its latest update is held back,
        and it is posted when the interval is over or before any other report.
        """
        with self._lock:
            now = time.monotonic()
            if stream not in self._held and now >= self._next_post.get(stream, 0.0):
                self._next_post[stream] = now + STREAM_INTERVAL
                self._enqueue((apply, args))
                return
            if stream not in self._held:
                delay = self._next_post[stream] - now
                self._loop.call_soon_threadsafe(self._loop.call_later, delay, self._release, stream)
            self._held[stream] = (apply, args)

    def _release(self, stream: str) -> None:
        with self._lock:
            update = self._held.pop(stream, None)
            if update is not None:
                self._next_post[stream] = time.monotonic() + STREAM_INTERVAL
                self._enqueue(update)

    def _release_held(self) -> None:
        for update in self._held.values():
            self._enqueue(update)
        self._held.clear()

    def __call__(self, report: Report) -> None:
        """Queue `report` for the PVs (any thread); fast streams at a bounded rate."""
        stream = _stream_of(report)
        if stream is None:
            self._post(self._ioc.show, report)
        else:
            self._post_stream(stream, self._ioc.show, report)


def _stream_of(report: Report) -> str | None:
    """The fast stream `report` belongs to, if it is one whose latest update is enough."""
    if isinstance(report, DocumentEmitted):
        return "document" if report.name in STREAMED_DOCUMENTS else None
    return _STREAMS.get(type(report))


_STREAMS: dict[type, str] = {RunProgressed: "run", DeviceProgress: "progress", QueueChanged: "queue"}
