"""One client's circuit: caproto's asyncio circuit with its subscription handling mended.

Mends of caproto 1.3.0 (caproto/server/common.py and caproto/asyncio/server.py); each
can go when caproto fixes it:

* ``VirtualCircuit._process_command``, ``ClearChannelRequest``: the channel's
  subscriptions are culled with ``sub.channel == command.sid``, a ``ServerChannel``
  compared with an int, never true. The subscriptions of a cleared channel live on;
  their next update fails in the sans-I/O circuit (the channel is gone) and ends the
  circuit's update loop for good: no monitor on that circuit gets anything after.
* ``EventCancelRequest``: ``_cull_subscriptions`` tests every subscription of the
  circuit and removes from deques, so cancelling N subscriptions costs O(N^2) (acctst's
  add-500/clear-500 cycles ran at ~10 per second), and ``unexpired_updates`` keeps a
  deque per subscription id for ever (memory grows with every subscription made).
* ``Context._subscription_queue_send`` awaits ``circuit.subscription_queue.put``: one
  client that stops reading fills its queue and then stops the loop that fans every
  update out to every client; when that client goes, the loop stays stuck on the dead
  queue (see ``Server``). Here a circuit keeps only the latest update per subscription
  (as EPICS's C server does for a slow client), posting never waits, and each circuit
  sends its own backlog in its own task.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

import caproto as ca
from caproto._dbr import _LongStringChannelType
from caproto.asyncio.server import VirtualCircuit
from caproto.server.common import (
    SUB_BATCH_THRESH,
    WRITE_LOCK_TIMEOUT,
    DisconnectedCircuit,
    LoopExit,
    Subscription,
    SubscriptionSpec,
)

from .fast_commands import FastCircuit

STALLED = 0.5  # seconds a write to a client may wait before it counts as not reading
MAX_HELD_REPLIES = 256  # replies held back while more commands wait, at most

Entry = tuple[SubscriptionSpec, Subscription]
# metadata and values published, data type and count asked, values sent, the update
LatestUpdate = tuple[Any, Any, Any, int, Any, ca.EventAddResponse]
Update = tuple[Subscription, ca.EventAddResponse]
#: ChannelType by its number (the enum's own lookup costs a microsecond per command)
CHANNEL_TYPES: dict[int, ca.ChannelType] = {int(t): t for t in ca.ChannelType}


class SubscriptionSet(dict[Subscription, None]):
    """The subscriptions of one spec: an ordered set with caproto's deque interface
    (``append``, ``remove``, iteration, truth), O(1) where the deque is O(n).
    ``latest``: the last update built for one of them, see ``ioc.pvs.server``.
    """

    latest: LatestUpdate | None = None

    def append(self, sub: Subscription) -> None:
        """Add `sub` at the end."""
        self[sub] = None

    def remove(self, sub: Subscription) -> None:
        """Take `sub` out (KeyError if it is not in)."""
        del self[sub]


class IndexedSubscriptionSet(SubscriptionSet):
    """A circuit's subscriptions of one spec, also entered in the circuit's index by id."""

    def __init__(self, spec: SubscriptionSpec, index: dict[int, Entry]) -> None:
        super().__init__()
        self.spec = spec
        self.index = index

    def append(self, sub: Subscription) -> None:
        """Add `sub`, and enter it in the index under its id."""
        super().append(sub)
        self.index[sub.subscriptionid] = (self.spec, sub)

    def remove(self, sub: Subscription) -> None:
        """Take `sub` out, and out of the index unless its id went to another since."""
        super().remove(sub)
        if self.index.get(sub.subscriptionid, (None, None))[1] is sub:
            del self.index[sub.subscriptionid]


class CircuitSubscriptions(dict[SubscriptionSpec, IndexedSubscriptionSet]):
    """caproto's ``VirtualCircuit.subscriptions`` (spec -> subscriptions), with an index
    subscription id -> (spec, subscription) kept by the sets.
    """

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[int, Entry] = {}

    def __missing__(self, spec: SubscriptionSpec) -> IndexedSubscriptionSet:
        subs = self[spec] = IndexedSubscriptionSet(spec, self.by_id)
        return subs

    def clear(self) -> None:
        """Forget every subscription, index included."""
        super().clear()
        self.by_id.clear()


class Circuit(VirtualCircuit):
    """caproto's asyncio circuit; subscriptions indexed by id, cancelled in O(1), culled
    with their channel, and updates sent from a latest-value-per-subscription backlog.
    """

    subscriptions: CircuitSubscriptions

    def __init__(self, circuit: ca.VirtualCircuit, client: Any, context: Any) -> None:
        # caproto hands over a fresh sans-I/O circuit; its fast twin does the same work
        circuit = FastCircuit(circuit.our_role, circuit.address, circuit.priority)
        super().__init__(circuit, client, context)
        self.subscriptions = CircuitSubscriptions()
        self._backlog: dict[int, deque[Update]] = {}  # subscription id -> its unsent updates
        self._order: deque[int] = deque()  # subscription ids in the order updates were posted
        self._sending_since: float | None = None  # loop time a write to the client began
        self._posted = asyncio.Event()
        self._sent = asyncio.Event()  # set while every posted update has been written
        self._sent.set()

    def post(self, sub: Subscription, command: ca.EventAddResponse) -> None:
        """Queue an update for sending, in the order of posting. Never waits: the loop that
        fans updates out to every client calls this. A client that keeps up gets every
        update (up to the PV's backlog per subscription); one that does not read, or has
        turned events off, keeps only the latest update of each subscription.
        """
        if not self._live(sub):
            return
        queue = self._backlog.get(sub.subscriptionid)
        if queue is None:
            queue = self._backlog[sub.subscriptionid] = deque(maxlen=sub.db_entry.max_subscription_backlog)
        if queue and (self._stalled() or not self.events_on.is_set()):
            queue.clear()  # behind: only the latest value matters, in the place it had
        else:
            self._order.append(sub.subscriptionid)
        queue.append((sub, command))
        self._sent.clear()
        self._posted.set()

    async def sent(self, timeout: float) -> None:
        """Return once every update posted so far has been written to this client (or its
        events are off, or `timeout` has passed: a slow client only delays itself).
        """
        if self.events_on.is_set() and not self._sent.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sent.wait(), timeout)

    async def _start_write_task(self, handle_write: Callable[[], Awaitable[None]]) -> None:
        """caproto's: run the write as a task of its own, which knows its circuit."""
        writing_circuit.set(self)  # the task copies the context it is created in
        await super()._start_write_task(handle_write)

    async def command_queue_loop(self) -> None:
        """The command loop of caproto, but the replies to commands that arrived together go out in one
        write, as EPICS's C server flushes once per batch received (caproto writes each
        reply, even an empty one, on its own: 500 writes per acctst cycle), and without
        caproto's notify of a condition after each command (nothing in its server waits on
        it; taking its lock cost more than a cancel's bookkeeping).
        """
        self.write_event.set()
        replies: list[ca.Message] = []
        try:
            while True:
                command = await self.command_queue.get()
                replies += await self._command_queue_iteration(command) or ()
                if replies and (self.command_queue.empty() or len(replies) >= MAX_HELD_REPLIES):
                    held, replies = replies, []
                    await self.send(*held)
        except DisconnectedCircuit:
            await self._on_disconnect()
            self.circuit.disconnect()
            await self.context.circuit_disconnected(self)
        except (self.TaskCancelled, LoopExit):
            pass

    async def subscription_queue_loop(self) -> None:
        """Send the backlog whenever updates are posted and the client has events on."""
        self.events_on.set()
        try:
            while True:
                await self._posted.wait()
                await self.events_on.wait()
                self._posted.clear()
                batch = self._take_posted()
                for chunk in _chunks(batch):
                    # Checked right before sending (no await in between): no update may
                    # follow its subscription's cancel.
                    current = [command for sub, command in chunk if self._live(sub)]
                    if current:
                        self._sending_since = asyncio.get_running_loop().time()
                        try:
                            await self.send(*current)
                        finally:
                            self._sending_since = None
                if not self._backlog:
                    self._sent.set()
        except DisconnectedCircuit:
            await self._on_disconnect()
            self.circuit.disconnect()
            await self.context.circuit_disconnected(self)

    def _stalled(self) -> bool:
        """Whether a write to the client has waited `STALLED` seconds (it stopped reading);
        a write that waits a moment for a big burst to drain is not a stall.
        """
        since = self._sending_since
        return since is not None and asyncio.get_running_loop().time() - since > STALLED

    def _take_posted(self) -> list[Update]:
        """The unsent updates, in the order they were posted."""
        order, self._order = self._order, deque()
        taken = []
        for subscriptionid in order:
            queue = self._backlog.get(subscriptionid)
            if queue:  # an update dropped as old news leaves its place empty
                taken.append(queue.popleft())
                if not queue:
                    del self._backlog[subscriptionid]
        return taken

    def _live(self, sub: Subscription) -> bool:
        """Whether `sub` is (still) a subscription of this circuit: ids may be reused."""
        entry = self.subscriptions.by_id.get(sub.subscriptionid)
        return entry is not None and entry[1] is sub

    async def _process_command(self, command: ca.Message) -> list[ca.Message]:
        if type(command) is ca.EventAddRequest:
            await self._subscribe(command)
            return []
        if isinstance(command, ca.EventCancelRequest):
            chan, db_entry = self._get_db_entry_from_command(command)
            entry = self.subscriptions.by_id.get(command.subscriptionid)
            data_count = db_entry.length if entry is None else entry[1].data_count
            if entry is not None:
                await self._drop(*entry)
            return [chan.unsubscribe(command.subscriptionid,
                                     data_type=CHANNEL_TYPES[command.header.data_type],
                                     data_count=data_count)]
        if isinstance(command, ca.ClearChannelRequest):
            chan, _ = self._get_db_entry_from_command(command)
            for entry in [e for e in self.subscriptions.by_id.values() if e[1].channel is chan]:
                await self._drop(*entry)
            return [chan.clear()]
        return await super()._process_command(command)

    async def _subscribe(self, command: ca.EventAddRequest) -> None:
        """Handle an event add request as caproto does, first among its checks instead of
        after a dozen ``isinstance`` tests, and without its debug line (which measures the
        command even when debug logging is off).
        """
        chan, db_entry = self._get_db_entry_from_command(command)
        data_type = CHANNEL_TYPES[command.header.data_type]
        if chan.name.endswith("$"):
            with contextlib.suppress(ValueError):  # a long string, if the type can be one
                data_type = _LongStringChannelType(data_type)
        mask = command.buffers[0].mask  # its payload as read (``.mask`` would read it anew)
        channel_filter = chan.channel_filter
        sub = Subscription(mask=mask, channel_filter=channel_filter, circuit=self,
                           channel=chan, data_type=data_type, data_count=command.data_count,
                           subscriptionid=command.subscriptionid, db_entry=db_entry)
        spec = SubscriptionSpec(db_entry=db_entry, data_type_name=data_type.name, mask=mask,
                                channel_filter=channel_filter)
        self.subscriptions[spec].append(sub)
        self.context.subscriptions[spec].append(sub)
        if not self.write_event.is_set():  # let a write under way finish, briefly
            await self.write_event.wait(timeout=WRITE_LOCK_TIMEOUT)
        queue = self.context.subscription_queue
        idle = queue.empty()
        await db_entry.subscribe(queue, spec, sub)
        if idle and queue.qsize() == 1:
            # The first update is the only thing published: send it on now rather than
            # through the fan-out loop, as that loop would next.
            await self.context._subscription_queue_iteration(*queue.get_nowait())

    async def _drop(self, spec: SubscriptionSpec, sub: Subscription) -> None:
        """Forget one subscription here and in the context, as ``_cull_subscriptions``."""
        subs = self.subscriptions[spec]
        subs.remove(sub)
        if not subs:
            del self.subscriptions[spec]
        self._backlog.pop(sub.subscriptionid, None)
        context = self.context
        context.last_dead_band.pop(sub, None)
        context.last_sync_edge_update.pop(sub, None)
        shared = context.subscriptions[spec]
        shared.remove(sub)
        if not shared:
            del context.subscriptions[spec]
            await spec.db_entry.unsubscribe(context.subscription_queue, spec)

    async def _on_disconnect(self) -> None:
        await super()._on_disconnect()
        self._backlog.clear()
        self._order.clear()


writing_circuit: contextvars.ContextVar[Circuit] = contextvars.ContextVar("writing_circuit")
"""The circuit whose write the current task carries out (set for each write task)."""


async def updates_sent(timeout: float = 1.0) -> None:
    """Return once the monitor updates of everything written so far have gone out to the
    client whose write is being carried out, before its completion does (caproto 1.3
    sends the completion at once, and the updates through the subscription loops).
    Call it from a putter.
    """
    circuit = writing_circuit.get(None)
    if circuit is None:
        return
    deadline = asyncio.get_running_loop().time() + timeout
    queue = circuit.context.subscription_queue  # what is published waits here to be posted
    while not queue.empty() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0)
    await circuit.sent(max(0.0, deadline - asyncio.get_running_loop().time()))


def _chunks(updates: Iterable[Update]) -> Iterator[list[Update]]:
    """Lists of updates of about SUB_BATCH_THRESH bytes each."""
    chunk: list[Update] = []
    size = 0
    for update in updates:
        chunk.append(update)
        size += update[1].header.payload_size  # what counts; its header is a few bytes
        if size >= SUB_BATCH_THRESH:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk
