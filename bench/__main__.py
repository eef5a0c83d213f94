"""Every benchmark of the IOC in one go, each against a bare RunEngine in the same run.

    .venv/bin/python -m bench [--quick] [--json PATH] [--only NAME ...]

Benchmarks (names for --only):

  roundtrip   count([det1], num=1) through RUN with put-completion (pyepics/libca and
              caproto clients) and through SUBMIT + LAST:TASK_ID monitor
  throughput  100 tasks submitted back to back until the last is done
  streaming   scan of 200 points and count of 10,000 points, run store on, 50 monitors
              held by a second process
  idle        CPU % over 30 s idle, VmRSS after start and after the other benchmarks
  start       launch -> HEARTBEAT answers, launch -> first count through RUN done
  bus         the round trip and the 200-point scan on an IOC with --stomp to a local
              ActiveMQ vs. one without (needs Debian's activemq; skipped, with a note,
              without it)
  pva         the same on an IOC serving pvAccess (7 pvAccess monitors held) vs. one with
              --no-pva; and RUN written over pvAccess vs. over CA

Starts one caRepeater and the IOCs itself (loopback, free ports, random prefixes,
``--continue-on-error --state-dir <tmp>``) and stops them at the end. The IOC side and
the bare side alternate (A B A B ...) after a warm-up; figures are medians. Prints a
table and writes all figures to JSON (default bench/results/latest.json).
"""
from __future__ import annotations

import argparse  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench import (  # noqa: E402
    bus,
    common,  # first: loopback env before caproto/epics
    pva,
    roundtrip,
    startup,
    streaming,
)
from bench.common import Figure  # noqa: E402
from bench.peers.runner import format_table, run_peers  # noqa: E402

NAMES = ("roundtrip", "throughput", "streaming", "idle", "start", "bus", "pva")
#: Every figure of a full run, in table order (the keys of "results" in the JSON).
KEYS = ("roundtrip_run_pyepics", "roundtrip_run_caproto", "roundtrip_submit_monitor",
        "throughput", "streaming_scan_duration", "streaming_scan_wall",
        "streaming_count_duration", "streaming_count_wall", "idle_cpu", "rss_idle",
        "rss_after_streaming", "start_first_pv", "start_ready", "bus_roundtrip",
        "bus_scan_duration", "bus_scan_wall", "pva_roundtrip", "pva_scan_duration",
        "pva_scan_wall", "pva_roundtrip_pvput")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"

FULL = {"n": 20, "warmup": 5, "tasks": 100, "rounds": 20, "scan_points": 200,
        "scan_pairs": 20, "count_points": 10000, "count_pairs": 5, "idle_seconds": 30.0,
        "launches": 3}
QUICK = {"n": 3, "warmup": 1, "tasks": 10, "rounds": 2, "scan_points": 20,
         "scan_pairs": 2, "count_points": 300, "count_pairs": 1, "idle_seconds": 3.0,
         "launches": 1}


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Runner:
    """Runs the selected benchmarks, collecting figures, notes and errors."""

    def __init__(self, only: list[str], counts: dict[str, Any]) -> None:
        self.only = only
        self.c = counts
        self.figures: list[Figure] = []
        self.notes: list[str] = []
        self.errors: dict[str, str] = {}
        self.ioc_logs: list[str] = []
        self.bare_rss: float | None = None

    def step(self, name: str, fn: Any, *args: Any) -> Any:
        """Run one benchmark; an exception is recorded and the others go on."""
        log(f"{name} ...")
        t0 = time.monotonic()
        try:
            out = fn(*args)
        except Exception:  # noqa: BLE001
            self.errors[name] = traceback.format_exc()
            log(f"{name} FAILED:\n{self.errors[name]}")
            return None
        log(f"{name} done in {time.monotonic() - t0:.1f} s")
        return out

    def run(self) -> None:
        with common.Session("bench") as session:
            self.work = session.work
            if "start" in self.only:
                out = self.step("start", startup.start, session, self.c["launches"])
                if out is not None:
                    figures, self.bare_rss = out
                    self.figures += figures
            if set(self.only) & {"idle", "roundtrip", "throughput", "streaming"}:
                self.main_session(session)
            for name, side_by_side in (("bus", bus.bus), ("pva", pva.pva)):
                if name in self.only:
                    self.side_by_side(name, side_by_side, session)

    def side_by_side(self, name: str, measure, session: common.Session) -> None:
        """Run one side-by-side benchmark (two IOCs alternating) and keep its figures."""
        c = self.c
        out = self.step(name, lambda: measure(
            session, n=c["n"], warmup=c["warmup"], scan_points=c["scan_points"],
            scan_pairs=c["scan_pairs"]))
        if out is not None:
            self.figures += out[0]
            self.notes += out[1]

    def main_session(self, session: common.Session) -> None:
        """One IOC for idle, roundtrip, throughput and streaming, with long-lived clients."""
        ioc = session.start_ioc()
        self.ioc_logs.append(str(ioc.log_path))
        c = self.c
        if "idle" in self.only:
            self.figures += self.step("idle", startup.idle, ioc, c["idle_seconds"],
                                      self.bare_rss) or []
        client = common.TaskClient(ioc)
        bare = common.Bare()
        pyepics = None
        try:
            log("warm-up ...")
            roundtrip.warm_up(client, bare, c["warmup"])
            if "roundtrip" in self.only:
                pyepics = common.PyepicsRunClient(ioc)
                figures = self.step("roundtrip", roundtrip.roundtrip, client, pyepics, bare,
                                    c["n"], c["warmup"]) or []
                self.figures += figures
                self.notes += roundtrip.describe(figures)
            if "throughput" in self.only:
                figures = self.step("throughput", roundtrip.throughput, client, bare,
                                    c["tasks"], c["rounds"]) or []
                self.figures += figures
                self.notes += roundtrip.describe(figures)
            if "streaming" in self.only:
                figures = self.step(
                    "streaming", lambda: streaming.streaming(
                        client, bare, session.work, scan_points=c["scan_points"],
                        scan_pairs=c["scan_pairs"], count_points=c["count_points"],
                        count_pairs=c["count_pairs"])) or []
                self.figures += figures
                self.notes += streaming.describe(figures)
            if "idle" in self.only:
                what = "streaming" if "streaming" in self.only else "the other benchmarks"
                self.figures.append(startup.rss_after(ioc, self.bare_rss, what))
        finally:
            if pyepics is not None:
                pyepics.close()
            client.close()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("bluesky", "ophyd", "caproto", "pyepics", "bluesky-ioc"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny counts (smoke run, < 60 s): " + ", ".join(
                            f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--json", metavar="PATH", default=str(DEFAULT_JSON),
                        help=f"where to write the figures (default {DEFAULT_JSON})")
    parser.add_argument("--only", nargs="+", choices=NAMES, metavar="NAME",
                        help=f"run only these: {', '.join(NAMES)}")
    parser.add_argument("--peers", action=argparse.BooleanOptionalAction, default=None,
                        help="also measure blueapi and the queueserver side by side with a bare "
                        "RunEngine (builds their environments on first use; default: on, "
                        "off with --quick or --only)")
    for key, value in FULL.items():  # overrides of single counts
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), dest=key,
                            metavar="N", help=f"default {value} (--quick {QUICK[key]})")
    args = parser.parse_args(argv)
    counts = dict(QUICK if args.quick else FULL)
    counts.update({k: getattr(args, k) for k in FULL if getattr(args, k) is not None})
    only = list(args.only or NAMES)

    t0 = time.monotonic()
    load0 = os.getloadavg()
    runner = Runner(only, counts)
    runner.run()
    elapsed = time.monotonic() - t0

    order = {key: i for i, key in enumerate(KEYS)}
    figures = sorted(runner.figures, key=lambda f: order.get(f.key, len(KEYS)))
    print(common.table(figures))
    print(f"({'quick run, ' if args.quick else ''}{elapsed:.0f} s; [n]: interleaved IOC/bare "
          "pairs (after warm-up) or launches; figures are medians; ratio = ours / bare)")
    for line in runner.notes:
        print("  " + line)
    for name in runner.errors:
        print(f"ERROR in {name}: see the JSON ('errors') or the log above")
    result = {
        "meta": {
            "quick": args.quick, "only": only, "counts": counts, "elapsed_s": elapsed,
            "cpus": os.cpu_count(), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
            "versions": versions(), "work_dir": str(getattr(runner, "work", "")),
            "ioc_logs": runner.ioc_logs,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "results": {f.key: f.as_json() for f in figures},
        "notes": runner.notes,
        "errors": runner.errors,
    }
    if args.peers if args.peers is not None else not (args.quick or args.only):
        result["peers"] = run_peers(quick=args.quick)
        print(format_table(result["peers"]))
    common.write_json(args.json, result)
    print(f"figures written to {args.json}")
    return 1 if runner.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
