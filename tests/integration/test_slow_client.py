"""One client never slows another (issue 9, item 3; the contract's Conventions).

A real ``camonitor`` with 300 subscriptions whose stdout is never read: once the pipe
is full it stops reading its socket, and the updates of a running ``count`` back up
towards it. Meanwhile a second client must see every ``HEARTBEAT`` update (+1/s) with
no gap over 1.5 s, have its gets and puts answered within a second, and the IOC's
memory must stay bounded. Once the frozen client reads again it gets current values;
once it is killed a new monitor gets its first value at once.
"""
from __future__ import annotations

import itertools
import os
import re
import subprocess
import threading
import time

import pytest
from caproto import ChannelType

from tests.integration.harness import (
    ca_bin,
    ca_read,
    ca_read_value,
    ca_write,
    make_context,
    process_env,
    scaled,
    wait_for,
)
from tests.integration.ioc_client import request, submit
from tests.integration.test_subscriptions import rss_mb

#: The frozen client's subscriptions: the streams of a running task, many times over.
FROZEN_PVS = {"DOCUMENT": 120, "STATUS": 60, "CURRENT:PROGRESS": 40, "CURRENT:ELAPSED": 40,
              "HEARTBEAT": 40}
BACKED_UP = 1 << 20  # bytes the IOC could not send to the frozen client: backed up
FROZEN_SECONDS = 20.0  # how long the other client is watched while the socket is full
MAX_GAP = scaled(1.5)  # s between two HEARTBEAT updates of the other client
MAX_REPLY = scaled(1.0)  # s for a get or a put of the other client
MAX_RSS_GROWTH_MB = 50.0


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_table() -> list[list[str]]:
    with open("/proc/net/tcp", encoding="ascii") as f:
        return [line.split() for line in f.readlines()[1:]]


def unsent_to(pid: int) -> int:
    """Bytes the peers of the TCP sockets of `pid` have queued but not got across: what
    backs up towards a client that does not read (/proc/net/tcp tx_queue)."""
    rows = tcp_table()
    inodes = socket_inodes(pid)
    ours = {row[1] for row in rows if row[9] in inodes}  # local addresses of `pid`
    return sum(int(row[4].split(":")[0], 16) for row in rows if row[2] in ours)


class Monitor:
    """Arrival times and values (as integers) of a caproto monitor."""

    def __init__(self, ctx, pvname: str) -> None:
        (self.pv,) = ctx.get_pvs(pvname)
        self.pv.wait_for_connection(timeout=10)
        self.seen: list[tuple[float, int]] = []
        self.subscription = self.pv.subscribe(data_type=ChannelType.LONG)
        self.subscription.add_callback(self.record)

    def record(self, sub, response) -> None:
        self.seen.append((time.monotonic(), int(response.data[0])))

    def since(self, t0: float) -> list[tuple[float, int]]:
        return [(t, v) for t, v in list(self.seen) if t >= t0]


@pytest.fixture
def ioc(ioc_factory, tmp_path):
    return ioc_factory("--continue-on-error", "--state-dir", tmp_path / "state")


@pytest.fixture
def frozen(ioc):
    """camonitor of FROZEN_PVS, its stdout a pipe nobody reads (yet)."""
    names = [ioc.pv(name) for name, n in FROZEN_PVS.items() for _ in range(n)]
    proc = subprocess.Popen([str(ca_bin("camonitor")), *names], env=process_env(),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


@pytest.fixture
def ctx(ioc):
    ctx = make_context()
    yield ctx
    ctx.disconnect()


def test_a_frozen_client_slows_no_other(ioc, frozen, ctx):
    heartbeats = Monitor(ctx, ioc.pv("HEARTBEAT"))
    rss0 = rss_mb(ioc.pid)
    submit(ctx, ioc, request("count", detectors=["det1"], num=2000, delay=0.02))
    wait_for(lambda: unsent_to(frozen.pid) > BACKED_UP, scaled(60), interval=0.2,
             message="the frozen camonitor's socket did not back up")

    t0 = time.monotonic()
    replies: list[float] = []
    rss: list[float] = []
    while time.monotonic() - t0 < FROZEN_SECONDS:
        t = time.monotonic()
        ca_read(ctx, ioc.pv("STATE"))
        ca_write(ctx, ioc.pv("QUEUE:ENABLE"), [1])  # Run: as it is
        replies.append(time.monotonic() - t)
        rss.append(rss_mb(ioc.pid))
        time.sleep(0.25)
    assert unsent_to(frozen.pid) > BACKED_UP, "the camonitor read its socket again"
    beats = heartbeats.since(t0)
    times = [t0] + [t for t, _ in beats] + [time.monotonic()]
    assert max(b - a for a, b in itertools.pairwise(times)) < MAX_GAP, "HEARTBEAT updates stalled"
    values = [v for _, v in beats]
    assert values == list(range(values[0], values[0] + len(values))), "HEARTBEAT updates lost"
    assert max(replies) < MAX_REPLY, f"a get and put took {max(replies):.2f} s"
    assert max(rss) - rss0 < MAX_RSS_GROWTH_MB, f"IOC memory grew from {rss0} to {max(rss)} MB"

    # Reading again, the frozen client comes to the current HEARTBEAT.
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(frozen.stdout), daemon=True)
    reader.start()
    now = ca_read_value(ctx, ioc.pv("HEARTBEAT"))
    pattern = re.compile(rb"HEARTBEAT\s+\S+\s+\S+\s+(\d+)")
    wait_for(lambda: any((m := pattern.search(line)) and int(m.group(1)) >= now
                         for line in list(lines)),
             message="the camonitor that read again did not get to the current HEARTBEAT")

    # Killed, it leaves nothing behind: a new monitor gets its first value at once.
    frozen.kill()
    frozen.wait(10)
    t = time.monotonic()
    fresh = Monitor(ctx, ioc.pv("CURRENT:ELAPSED"))
    wait_for(lambda: fresh.seen, MAX_REPLY, message="a new monitor got no first value")
    assert fresh.seen[0][0] - t < MAX_REPLY
    beats_after = heartbeats.since(t)
    wait_for(lambda: len(heartbeats.since(t)) >= len(beats_after) + 2,
             message="HEARTBEAT stopped after the frozen client was killed")
