"""Benchmark 3: plans that stream documents, with the run store on and 50 monitors held
by a second process, vs. the same plans on a bare RunEngine in this process."""
from __future__ import annotations

import json  # noqa: E402
import statistics  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from bench import common  # first: loopback env before caproto/epics
from bench.common import Figure, Metered, TaskClient  # noqa: E402

WARMUP_POINTS = 1000
MONITORS = {"DOCUMENT": 13, "EVENT": 13, "STATUS": 12, "CURRENT:PROGRESS": 12}


class Monitors:
    """`bench.monitor_proc` in a child process, holding the monitors of MONITORS."""

    def __init__(self, client: TaskClient, work: Any) -> None:
        spec = [f"{name}={n}" for name, n in MONITORS.items()]
        self.proc, self.lines = common.start_child(
            "bench.monitor_proc", "--prefix", client.ioc.prefix, *spec, work=work)
        try:
            self.lines.wait_for("ready", common.TIMEOUT * 2)
        except BaseException:
            common.end_child(self.proc)
            raise

    def counts(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("counts\n")
        self.proc.stdin.flush()
        return json.loads(self.lines.wait_for("counts ", common.TIMEOUT)[1][7:])

    def close(self) -> dict[str, Any]:
        """Final counts; the child exits."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("stop\n")
            self.proc.stdin.flush()
            final = json.loads(self.lines.wait_for("counts ", common.TIMEOUT)[1][7:])
        finally:
            common.end_child(self.proc)
        return final


def _delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, int]:
    return {name: after[name]["updates"] - before[name]["updates"] for name in after}


def _figures(key: str, label: str, walls: list[float], durations: list[float],
             bares: list[float], n: int, extra: dict[str, Any]) -> list[Figure]:
    bare_s = statistics.median(bares)
    common_extra = {"bare_s": common.summary(bares), **extra}
    return [
        Figure(f"{key}_duration", f"{label}: LAST:DURATION", "s",
               statistics.median(durations), bare_s, ("ratio<=", 1.05), n=f"{n} pairs",
               extra={"ours_s": common.summary(durations), **common_extra}),
        Figure(f"{key}_wall", f"{label}: client wall", "s",
               statistics.median(walls), bare_s, ("ratio<=", 1.05), n=f"{n} pairs",
               extra={"ours_s": common.summary(walls), **common_extra}),
    ]


def _pairs(client: TaskClient, monitors: Monitors, make_req: Callable[[int], str],
           run_bare: Callable[[int], float], points: int, pairs: int) -> dict[str, Any]:
    """One warm-up pair (at most WARMUP_POINTS points), then `pairs` interleaved pairs.
    The IOC side waits, untimed, after each run until the IOC (still posting monitor
    updates) and the monitor process (still reading them) are quiet: that wait and
    their CPU until then are reported too."""
    pids = [*client.pids(), monitors.proc.pid]
    walls: list[float] = []
    durations: list[float] = []
    size = [min(points, WARMUP_POINTS)]

    def ours() -> float:
        wall, duration = client.submit_and_wait(make_req(size[0]), common.LONG_TIMEOUT)
        walls.append(wall)
        durations.append(duration)
        return wall

    ours_m = Metered(ours, pids, tail=True)
    bare_m = Metered(lambda: run_bare(size[0]))
    common.interleave([ours_m, bare_m], 1, quiet=lambda: pids)  # warm-up
    walls.clear()
    durations.clear()
    ours_m.reset()
    bare_m.reset()
    size[0] = points
    before = monitors.counts()
    _, bares = common.interleave([ours_m, bare_m], pairs, quiet=lambda: pids)
    cpu = ours_m.per_call_ms(["ioc", "worker", "monitor_process"])
    cpu["bare"] = bare_m.per_call_ms()["this_process"]
    return {"walls": walls, "durations": durations, "bares": bares,
            "extra": {"monitor_updates": _delta(monitors.counts(), before),
                      "monitors": MONITORS, "settle_after_ioc_s": common.summary(ours_m.tails),
                      "cpu_ms_per_run": cpu}}


def streaming(client: TaskClient, bare: common.Bare, work: Any, *, scan_points: int,
              scan_pairs: int, count_points: int, count_pairs: int) -> list[Figure]:
    """``scan([det1], motor1, -1, 1, scan_points)`` and ``count([det1], num=count_points)``,
    each interleaved IOC (SUBMIT, until LAST:TASK_ID) / bare, after a warm-up pair. Before
    each run, the processes of the IOC side (IOC, monitor process) are let go quiet."""
    def scan_req(num: int) -> str:
        return common.request("scan", detectors=["det1"], motor="motor1", start=-1, stop=1,
                              num=num)

    def count_req(num: int) -> str:
        return common.request("count", detectors=["det1"], num=num)

    monitors = Monitors(client, work)
    figures: list[Figure] = []
    try:
        for key, label, make_req, run_bare, points, pairs in (
            ("streaming_scan", f"scan {scan_points} pts, 50 monitors", scan_req, bare.scan,
             scan_points, scan_pairs),
            ("streaming_count", f"count {count_points} pts, 50 monitors", count_req,
             bare.count, count_points, count_pairs),
        ):
            r = _pairs(client, monitors, make_req, run_bare, points, pairs)
            figures += _figures(key, label, r["walls"], r["durations"], r["bares"], pairs,
                                r["extra"])
    finally:
        final = monitors.close()
    for f in figures:
        f.extra["monitor_totals"] = final
    return figures


def describe(figures: list[Figure]) -> list[str]:
    lines = []
    for f in figures:
        if f.key.endswith("_duration"):
            u = f.extra["monitor_updates"]
            cpu = f.extra["cpu_ms_per_run"]
            tail = f.extra["settle_after_ioc_s"]["median"]
            lines.append(f"{f.label.split(':')[0]} [{f.n}]: CPU/run: IOC {cpu['ioc']:.0f} ms, "
                         f"monitor process {cpu['monitor_process']:.0f} ms, client "
                         f"{cpu['this_process']:.0f} ms, bare {cpu['bare']:.0f} ms; IOC/monitors "
                         f"busy {tail:.2f} s after the task ended")
            lines.append("  updates seen by the monitor process: "
                         + ", ".join(f"{k} {v}" for k, v in u.items()))
    return lines
