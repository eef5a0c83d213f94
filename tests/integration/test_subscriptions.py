"""Subscriptions under rapid add and clear, as EPICS's acctst makes them (issue 12).

A raw Channel Access client (caproto's message classes over a plain socket) so that
hundreds of requests go out in one write, as libca sends them, and every reply is
seen in order. Each new subscription must get its first update within a bounded time,
no update may follow the reply to its cancel or to its channel's clear, and the IOC's
memory must not grow with subscriptions that came and went.
"""
from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Iterable, Iterator

import caproto as ca
import pytest
from caproto._commands import read_from_bytestream

from tests.integration.harness import CA_TIMEOUT, LOOPBACK, SETTLE, scaled, session_ports

BURST = 500  # subscriptions per cycle, as acctst's multiSubscrDestroyNoLateCallbackTest
FIRST_UPDATE_TIMEOUT = SETTLE  # seconds for the first update of a new subscription
VALUE = ca.SubscriptionType.DBE_VALUE


class RawClient:
    """One CA circuit over a socket: requests out in bulk, replies parsed in order."""

    def __init__(self, port: int, timeout: float = CA_TIMEOUT) -> None:
        self.sock = socket.create_connection((LOOPBACK, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray()
        self.next_cid = 0
        self.next_subscriptionid = 0
        self.send(ca.VersionRequest(priority=0, version=13), ca.HostNameRequest("localhost"),
                  ca.ClientNameRequest("test"))

    def close(self) -> None:
        self.sock.close()

    def send(self, *commands: ca.Message) -> None:
        self.sock.sendall(b"".join(bytes(command) for command in commands))

    def replies(self, timeout: float) -> Iterator[ca.Message]:
        """Replies as they arrive, for up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            while True:
                self.buffer, command, _ = read_from_bytestream(self.buffer, ca.SERVER)
                if command is ca.NEED_DATA:
                    break
                yield command
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            if select.select([self.sock], [], [], remaining)[0]:
                data = self.sock.recv(1 << 16)
                if not data:
                    raise ConnectionError("the IOC closed the circuit")
                self.buffer += data

    def receive_until(self, done: Callable[[ca.Message], bool],
                      timeout: float) -> list[ca.Message]:
        """Replies up to and including the first for which `done` is true."""
        seen: list[ca.Message] = []
        for command in self.replies(timeout):
            seen.append(command)
            if done(command):
                return seen
        raise TimeoutError(f"no awaited reply within {timeout} s ({len(seen)} other replies)")

    def create_channel(self, name: str) -> int:
        """Connect a channel; its sid."""
        self.next_cid += 1
        cid = self.next_cid
        self.send(ca.CreateChanRequest(name, cid, 13))
        replies = self.receive_until(
            lambda c: isinstance(c, ca.CreateChanResponse) and c.cid == cid, CA_TIMEOUT)
        return replies[-1].sid

    def subscribe(self, sid: int, count: int,
                  data_type: ca.ChannelType = ca.ChannelType.GR_FLOAT) -> list[int]:
        """Send `count` subscription requests in one write; their ids."""
        ids = list(range(self.next_subscriptionid + 1, self.next_subscriptionid + count + 1))
        self.next_subscriptionid += count
        self.send(*(ca.EventAddRequest(data_type, 1, sid, i, 0, 0, 0, VALUE) for i in ids))
        return ids

    def cancel(self, sid: int, ids: Iterable[int],
               data_type: ca.ChannelType = ca.ChannelType.GR_FLOAT) -> None:
        self.send(*(ca.EventCancelRequest(data_type, sid, i) for i in ids))


def is_update(subscriptionid: int) -> Callable[[ca.Message], bool]:
    """A monitor update (not a cancel reply) for that subscription."""
    return lambda c: (isinstance(c, ca.EventAddResponse)
                      and c.subscriptionid == subscriptionid and c.header.payload_size > 0)


def is_cancelled(subscriptionid: int) -> Callable[[ca.Message], bool]:
    """The reply to the cancel of that subscription (an empty EVENT_ADD)."""
    return lambda c: (isinstance(c, ca.EventAddResponse | ca.EventCancelResponse)
                      and c.subscriptionid == subscriptionid and c.header.payload_size == 0)


def rss_mb(pid: int) -> float:
    """VmRSS of a process, in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    return module_ioc_factory("--state-dir", tmp_path_factory.mktemp("state"))


@pytest.fixture
def client(ioc):
    client = RawClient(session_ports()[0])
    yield client
    client.close()


def cycle(client: RawClient, sid: int, burst: int = BURST) -> None:
    """acctst's cycle: `burst` subscriptions in one write, wait for the first one's first
    update, cancel them all; no update of a subscription may follow its cancel reply."""
    ids = client.subscribe(sid, burst)
    client.receive_until(is_update(ids[0]), FIRST_UPDATE_TIMEOUT)
    client.cancel(sid, ids)
    replies = client.receive_until(is_cancelled(ids[-1]), FIRST_UPDATE_TIMEOUT)
    cancelled: set[int] = set()
    for reply in replies:
        if is_cancelled(reply.subscriptionid)(reply):
            cancelled.add(reply.subscriptionid)
        else:
            assert reply.subscriptionid not in cancelled, "an update came after its cancel"


def test_each_new_subscription_gets_its_first_update(ioc, client):
    """Cycles of add 500 / clear 500 on one channel, as acctst's first block."""
    sid = client.create_channel(ioc.pv("ERROR:CLEAR"))
    for _ in range(100):
        cycle(client, sid)


def test_cancelling_many_subscriptions_is_not_quadratic(ioc, client):
    """Cancelling N subscriptions must cost O(N), not O(N^2): caproto 1.3 scanned every
    subscription of the circuit for each cancel (20,000 cancels took minutes)."""
    sid = client.create_channel(ioc.pv("ERROR:CLEAR"))
    ids = client.subscribe(sid, 20000)
    client.receive_until(is_update(ids[-1]), scaled(60))
    t0 = time.monotonic()
    client.cancel(sid, ids)
    client.receive_until(is_cancelled(ids[-1]), scaled(60))
    took = time.monotonic() - t0  # ~1 s quiet; quadratic cancels took minutes
    assert took < scaled(30), f"cancelling 20,000 subscriptions took {took:.0f} s"
    cycle(client, sid)


def test_memory_does_not_grow_with_subscriptions_that_came_and_went(ioc, client):
    """150,000 subscriptions added and cancelled leave no state behind (caproto 1.3 kept
    a backlog deque per subscription id for ever: ~0.5 kB each)."""
    sid = client.create_channel(ioc.pv("ERROR:CLEAR"))
    for _ in range(20):  # warm up: caches, allocator arenas
        cycle(client, sid)
    before = rss_mb(ioc.pid)
    for _ in range(300):
        cycle(client, sid)
    assert rss_mb(ioc.pid) - before < 20, "the IOC's memory grew with cancelled subscriptions"


def test_clearing_a_channel_ends_its_subscriptions(ioc, client):
    """A channel cleared while it has a subscription: no update of it afterwards, and the
    circuit's other subscriptions go on (caproto 1.3 kept the subscription of a cleared
    channel, and its next update broke the circuit's update loop for good)."""
    old_sid = client.create_channel(ioc.pv("HEARTBEAT"))
    (old,) = client.subscribe(old_sid, 1, ca.ChannelType.TIME_LONG)
    client.receive_until(is_update(old), FIRST_UPDATE_TIMEOUT)
    client.send(ca.ClearChannelRequest(old_sid, client.next_cid))
    client.receive_until(lambda c: isinstance(c, ca.ClearChannelResponse), CA_TIMEOUT)
    sid = client.create_channel(ioc.pv("HEARTBEAT"))
    (new,) = client.subscribe(sid, 1, ca.ChannelType.TIME_LONG)
    replies = client.receive_until(is_update(new), FIRST_UPDATE_TIMEOUT)
    replies += client.receive_until(is_update(new), SETTLE)  # a HEARTBEAT tick after the clear
    assert not [r for r in replies if getattr(r, "subscriptionid", None) == old]
    cycle(client, sid)


def test_events_off_holds_back_only_the_latest_update(ioc, client):
    """A client that turns events off (libca's flow control) gets no updates until it
    turns them on again, and then the latest value of each subscription, once."""
    sid = client.create_channel(ioc.pv("HEARTBEAT"))
    (sub,) = client.subscribe(sid, 1, ca.ChannelType.TIME_LONG)
    client.receive_until(is_update(sub), FIRST_UPDATE_TIMEOUT)
    client.send(ca.EventsOffRequest())
    held = [r for r in client.replies(3.5) if is_update(sub)(r)]  # 3 HEARTBEAT ticks
    assert len(held) <= 1, "updates came while events were off"  # one may have been on its way
    client.send(ca.EventsOnRequest(), ca.ReadNotifyRequest(ca.ChannelType.LONG, 1, sid, 1))
    replies = list(client.replies(0.5))
    values = [int(r.data[0]) for r in replies if is_update(sub)(r)]
    (now,) = [int(r.data[0]) for r in replies if isinstance(r, ca.ReadNotifyResponse)]
    assert now - 1 <= values[0] <= now, f"held back {values[0]}, not the latest ({now})"
    assert values == list(range(values[0], values[0] + len(values))), "not each value once"
