"""Two IOCs side by side, one with a feature and one without: the round trip
(``count([det1], num=1)`` through ``RUN``) and the scan (``SUBMIT`` until ``LAST:TASK_ID``)
alternate between them (A B A B ...) after a warm-up, each run after both IOCs, their
workers and any other process named have gone quiet. The ratio is with / without."""
from __future__ import annotations

import statistics  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

from bench import common  # first: loopback env before caproto/epics
from bench.common import Figure, Metered, TaskClient  # noqa: E402
from bench.roundtrip import COUNT1  # noqa: E402


@dataclass
class Comparison:
    """The timings of both IOCs (`without`, `with_`): round trips, scan wall times and
    `LAST:DURATION`s, CPU ms per scan."""

    round_trips: dict[str, list[float]] = field(default_factory=dict)
    walls: dict[str, list[float]] = field(default_factory=dict)
    durations: dict[str, list[float]] = field(default_factory=lambda: {"without": [], "with": []})
    cpu_ms_per_scan: dict[str, dict[str, float]] = field(default_factory=dict)

    def figures(self, key: str, what: str, *, n: int, scan_points: int, scan_pairs: int,
                round_trip_target: float, extra: dict[str, Any]) -> list[Figure]:
        """`<key>_roundtrip`, `<key>_scan_duration`, `<key>_scan_wall`: with / without `what`."""
        extra = {**extra, "cpu_ms_per_scan": self.cpu_ms_per_scan}
        rt, walls, durations = self.round_trips, self.walls, self.durations
        return [
            Figure(f"{key}_roundtrip", f"round trip RUN count: {what} / without", "ms",
                   statistics.median(rt["with"]) * 1e3, statistics.median(rt["without"]) * 1e3,
                   ("ratio<=", round_trip_target), n=f"{n} pairs",
                   extra={"with_ms": common.summary(rt["with"], 1e3),
                          "without_ms": common.summary(rt["without"], 1e3), **extra}),
            Figure(f"{key}_scan_duration", f"scan {scan_points} pts: LAST:DURATION, {what} / without",
                   "s", statistics.median(durations["with"]), statistics.median(durations["without"]),
                   ("ratio<=", 1.05), n=f"{scan_pairs} pairs",
                   extra={"with_s": common.summary(durations["with"]),
                          "without_s": common.summary(durations["without"]), **extra}),
            Figure(f"{key}_scan_wall", f"scan {scan_points} pts: client wall, {what} / without", "s",
                   statistics.median(walls["with"]), statistics.median(walls["without"]),
                   ("ratio<=", 1.05), n=f"{scan_pairs} pairs",
                   extra={"with_s": common.summary(walls["with"]),
                          "without_s": common.summary(walls["without"]), **extra}),
        ]

    def cpu_note(self, key: str) -> str:
        """CPU per scan of each side, one line."""
        return f"{key}: CPU per scan (incl. leftover work): " + "; ".join(
            f"{side}: " + ", ".join(f"{name} {value:.0f} ms" for name, value in ms.items())
            for side, ms in self.cpu_ms_per_scan.items())


def compare(without: TaskClient, with_: TaskClient, *, others: Sequence[int] = (),
            other_names: Sequence[str] = (), n: int, warmup: int, scan_points: int,
            scan_pairs: int, on_timed: Callable[[str], None] = lambda phase: None) -> Comparison:
    """Measure both IOCs; `others`: pids of more processes (named `other_names`) the
    feature's side runs, waited on and metered with it; `on_timed` is told when the timed
    round trips ("round trips") and scans ("scans") begin, and when they are over ("end")."""

    def quiet() -> list[int]:
        return [*without.pids(), *with_.pids(), *others]

    scan = common.request("scan", detectors=["det1"], motor="motor1", start=-1, stop=1,
                          num=scan_points)
    result = Comparison()

    def scan_on(client: TaskClient, side: str) -> Callable[[], float]:
        def run() -> float:
            wall, duration = client.submit_and_wait(scan, common.LONG_TIMEOUT)
            result.durations[side].append(duration)
            return wall
        return run

    round_trips = [lambda: without.run(COUNT1), lambda: with_.run(COUNT1)]
    common.interleave(round_trips, warmup, quiet=quiet)
    scans = [Metered(scan_on(without, "without"), without.pids(), tail=True),
             Metered(scan_on(with_, "with"), [*with_.pids(), *others], tail=True)]
    common.interleave(scans, 1, quiet=quiet)
    for durations in result.durations.values():
        durations.clear()
    for meter in scans:
        meter.reset()
    on_timed("round trips")
    rt_without, rt_with = common.interleave(round_trips, n, quiet=quiet)
    on_timed("scans")
    walls_without, walls_with = common.interleave(scans, scan_pairs, quiet=quiet)
    on_timed("end")
    result.round_trips = {"without": rt_without, "with": rt_with}
    result.walls = {"without": walls_without, "with": walls_with}
    result.cpu_ms_per_scan = {"without": scans[0].per_call_ms(["ioc", "worker"]),
                              "with": scans[1].per_call_ms(["ioc", "worker", *other_names])}
    return result
