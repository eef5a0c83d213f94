"""pvAccess clients that misbehave: one that stops reading slows nobody else; 200 that come
and go leave nothing behind in the IOC.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from p4p.client.thread import Context

from tests.integration.harness import ca_bin, process_env, run_ca, wait_for
from tests.integration.ioc_client import pvput_request, request

F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Python 3.10+ on Linux; named here for mypy)
CLIENTS = 200
AT_ONCE = 20


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    return module_ioc_factory("--state-dir", tmp_path_factory.mktemp("state"))


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("Threads:")))


def blocked_writing_a_pipe(pid: int) -> bool:
    """Whether a thread of process `pid` waits to write to a full pipe."""
    return any("pipe" in (task / "wchan").read_text() for task in Path(f"/proc/{pid}/task").iterdir())


def test_a_frozen_pvmonitor_slows_neither_ca_nor_other_pvaccess_clients(ioc):
    # pvmonitor of big, busy PVs, writing into a pipe nobody reads: it soon blocks.
    frozen = subprocess.Popen([str(ca_bin("pvmonitor")), ioc.pv("PLANS"), ioc.pv("DOCUMENT"),
                               ioc.pv("DEVICES"), ioc.pv("CURRENT:PROGRESS")],
                              env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert frozen.stdout is not None
    fcntl.fcntl(frozen.stdout.fileno(), F_SETPIPE_SZ, 4096)  # the smallest pipe: full at once
    updates: list[float] = []
    context = Context("pva")
    subscription = context.monitor(ioc.pv("CURRENT:PROGRESS"), lambda value: updates.append(time.monotonic()))
    slowest_caget = 0.0
    try:
        wait_for(lambda: blocked_writing_a_pipe(frozen.pid), 10, message="pvmonitor blocked")
        scan = threading.Thread(target=pvput_request, args=(
            ioc, "RUN", request("count", detectors=["det1"], num=200, delay=0.02)), kwargs={"wait": 120})
        scan.start()
        while scan.is_alive():
            started = time.monotonic()
            assert run_ca("caget", "-w", "5", ioc.pv("HEARTBEAT")).returncode == 0
            slowest_caget = max(slowest_caget, time.monotonic() - started)
            time.sleep(0.05)
        scan.join()
        assert frozen.poll() is None  # still connected, still not read,
        assert blocked_writing_a_pipe(frozen.pid)
    finally:
        subscription.close()
        context.close()
        frozen.kill()
        frozen.wait(10)
    assert slowest_caget < 1.0
    assert len(updates) >= 5  # the other pvAccess client followed the scan
    gaps = [later - earlier for earlier, later in zip(updates, updates[1:])]
    assert max(gaps, default=0.0) < 1.5, gaps


def test_200_pvaccess_clients_coming_and_going_leak_nothing(ioc):
    pid = ioc.pid
    assert pid is not None
    run_ca("pvget", ioc.pv("STATE"))  # the first client sets up what lasts (threads, sockets)
    files, thread_count = open_files(pid), threads(pid)
    for _ in range(CLIENTS // AT_ONCE):
        batch = [subprocess.Popen([str(ca_bin("pvget")), "-w", "10", ioc.pv("QUEUE"), ioc.pv("STATE")],
                                  env=process_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                 for _ in range(AT_ONCE)]
        assert [proc.wait(30) for proc in batch] == [0] * AT_ONCE
    wait_for(lambda: open_files(pid) <= files, 10,
             message=f"open files back to {files} (now {open_files(pid)})")
    assert threads(pid) == thread_count
