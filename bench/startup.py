"""Benchmark 4: the IOC idle (CPU, memory) and how fast it starts."""
from __future__ import annotations

import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from caproto import CaprotoError, ChannelType  # noqa: E402
from caproto.sync import client as sync_client  # noqa: E402

from bench import common  # first: loopback env before caproto/epics
from bench.common import Figure  # noqa: E402
from bench.roundtrip import COUNT1  # noqa: E402

START_TIMEOUT = 60.0  # seconds a launch may take to answer / to run the first count
PROBE_TIMEOUT = 0.02  # one search probe (caproto's sync client resends after half of it)


def idle_cpu(pids: list[int], seconds: float) -> list[float]:
    """CPU % (of one core) each process used over the same `seconds` of wall time."""
    c0, t0 = [common.cpu_seconds(pid) for pid in pids], time.monotonic()
    time.sleep(seconds)
    c1, t1 = [common.cpu_seconds(pid) for pid in pids], time.monotonic()
    return [100.0 * (b - a) / (t1 - t0) for a, b in zip(c0, c1)]


def first_answer(proc: Any, pvname: str) -> None:
    """Return once a read of `pvname` succeeds: caproto's sync client in a tight, bounded
    loop (each try: a UDP search, resent after PROBE_TIMEOUT/2, then a TCP read)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not proc.is_running():
            raise RuntimeError(f"the IOC exited ({proc.returncode}); log {proc.log_path}")
        try:
            sync_client.read(pvname, timeout=PROBE_TIMEOUT, repeater=False)
            return
        except (CaprotoError, OSError, TimeoutError):
            continue
    raise TimeoutError(f"{pvname} did not answer within {START_TIMEOUT}s")


def launch_ioc(session: common.Session, n: int) -> dict[str, float]:
    """Launch an IOC; seconds to the first HEARTBEAT read and to the end of the first
    ``count`` through RUN (written once HEARTBEAT answered); its VmRSS then."""
    prefix = f"BS{n}{common.harness.random_prefix()}"
    t0 = time.perf_counter()
    proc = session.launch_ioc(prefix)
    try:
        first_answer(proc, prefix + "HEARTBEAT")
        t1 = time.perf_counter()
        sync_client.write(prefix + "RUN", common.payload(COUNT1), notify=True,
                          data_type=ChannelType.CHAR, timeout=START_TIMEOUT, repeater=False)
        t2 = time.perf_counter()
        result = sync_client.read(prefix + "LAST:RESULT", data_type=ChannelType.STRING,
                                  timeout=common.TIMEOUT, repeater=False).data[0]
        if result != b"Success":
            raise RuntimeError(f"first count of launch {n} ended {result!r}")
        return {"first_pv_s": t1 - t0, "ready_s": t2 - t0, "rss_mb": common.rss_mb(proc.pid)}
    finally:
        session.stop(proc)


def launch_bare(session: common.Session) -> dict[str, float]:
    """Launch `bench.bare_start`: seconds to imports + devices built, to the first count
    done; its VmRSS."""
    t0 = time.perf_counter()
    proc, lines = common.start_child("bench.bare_start", work=session.work)
    try:
        t1, _ = lines.wait_for("imported", START_TIMEOUT)
        t2, _ = lines.wait_for("ready", START_TIMEOUT)
        rss = int(lines.wait_for("rss_kb", START_TIMEOUT)[1].split()[1]) / 1024
    finally:
        common.end_child(proc)
    return {"first_pv_s": t1 - t0, "ready_s": t2 - t0, "rss_mb": rss}


def start(session: common.Session, launches: int) -> tuple[list[Figure], float]:
    """Median over `launches` interleaved IOC / bare launches (after one untimed pair, so
    that both find the files in the page cache; none with a single launch, as --quick
    has). Also returns the bare VmRSS."""
    if launches > 1:
        launch_ioc(session, 0)
        launch_bare(session)
    iocs, bares = [], []
    for n in range(1, launches + 1):
        iocs.append(launch_ioc(session, n))
        bares.append(launch_bare(session))

    def med(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    extra = {"ioc_launches": iocs, "bare_launches": bares}
    figures = [
        Figure("start_first_pv", "start: launch -> HEARTBEAT answers", "s",
               med(iocs, "first_pv_s"), med(bares, "first_pv_s"), ("<", 1.0),
               n=f"{launches} launches", extra=extra),
        Figure("start_ready", "start: launch -> first count via RUN done", "s",
               med(iocs, "ready_s"), med(bares, "ready_s"), ("<", 2.0),
               n=f"{launches} launches", extra=extra),
    ]
    return figures, med(bares, "rss_mb")


def idle(ioc: Any, seconds: float, bare_rss: float | None) -> list[Figure]:
    """CPU % over `seconds` of idle and VmRSS of the running IOC and of its worker process,
    each."""
    time.sleep(1.0)  # let start-up settle
    cpu = idle_cpu([ioc.pid, ioc.worker_pid()], seconds)
    return [Figure(f"idle_cpu_{name}", f"idle: {name} CPU over {seconds:g} s", "%", percent,
                   None, ("<", 1.0), n="1 window")
            for name, percent in zip(("ioc", "worker"), cpu)] + rss(ioc, "idle", "after start",
                                                                   bare_rss)


def rss_after(ioc: Any, bare_rss: float | None, what: str) -> list[Figure]:
    return rss(ioc, "after", f"after {what}", bare_rss)


def rss(ioc: Any, key: str, when: str, bare_rss: float | None) -> list[Figure]:
    """``rss_<key>_ioc``, ``rss_<key>_worker``: VmRSS of each process (bare: a fresh
    Python that built the devices and ran one count)."""
    return [Figure(f"rss_{key}_{name}", f"idle: {name} VmRSS {when}", "MB", common.rss_mb(pid),
                   bare_rss, ("<", 200.0))
            for name, pid in (("ioc", ioc.pid), ("worker", ioc.worker_pid()))]
