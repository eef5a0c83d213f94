"""Every benchmark of the IOC in one go, each against a bare RunEngine in the same run.

    .venv/bin/python -m bench [--quick] [--json PATH] [--only NAME ...]

Benchmarks (names for --only):

  roundtrip   count([det1], num=1) through RUN with put-completion (pyepics/libca and
              caproto clients) and through SUBMIT + LAST:TASK_ID monitor
  throughput  100 tasks submitted back to back until the last is done
  streaming   scan of 200 points and count of 10,000 points, run store on, 50 CA
              monitors held by a second process
  idle        CPU % over 30 s idle and VmRSS after start and after the other
              benchmarks, of the IOC and of its worker process
  start       launch -> HEARTBEAT answers, launch -> first count through RUN done
  catime      EPICS base's catime on the IOC and on a softIoc, alternating
  acctst      EPICS base's acctst until its first block has ended, softIoc and ours
  bus         the round trip and the 200-point scan on an IOC with --stomp to a local
              ActiveMQ vs. one without (needs Debian's activemq; skipped, with a note,
              without it)

roundtrip, throughput and streaming run in two passes (names for --only, too; both
when neither is named):

  ca          on an IOC started with --no-pva (Channel Access only)
  pva         on an IOC serving pvAccess too (the default), 20 pvAccess monitors held
              by the bench process; keys pva_on_<key>, plus RUN written over pvAccess.
              idle, catime and acctst run on this IOC.

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
from collections.abc import Callable  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench import (  # noqa: E402
    bus,
    ca_tools,
    common,  # first: loopback env before caproto/epics
    pva,
    roundtrip,
    startup,
    streaming,
)
from bench.common import Figure  # noqa: E402
from bench.peers.runner import format_table, run_peers  # noqa: E402
from bench.pva_monitor_proc import MONITORED  # noqa: E402

BENCHMARKS = ("roundtrip", "throughput", "streaming", "idle", "start", "catime", "acctst",
              "bus")
PASSES = ("ca", "pva")
NAMES = BENCHMARKS + PASSES
TASK_BENCHMARKS = ("roundtrip", "throughput", "streaming")  # run in each pass
PVA_PREFIX = "pva_on_"  # the keys of the pass with pvAccess on
#: The figures of one pass, in table order.
PASS_KEYS = ("roundtrip_run_pyepics", "roundtrip_run_caproto", "roundtrip_submit_monitor",
             "throughput", "streaming_scan_duration", "streaming_scan_wall",
             "streaming_count_duration", "streaming_count_wall")
#: Every figure of a full run, in table order (the keys of "results" in the JSON).
KEYS = (*PASS_KEYS, *(PVA_PREFIX + key for key in PASS_KEYS), "pva_roundtrip_pvput",
        "catime_connect", "catime_sync_get", "catime_async_put", "acctst_first_block",
        "idle_cpu_ioc", "idle_cpu_worker", "rss_idle_ioc", "rss_idle_worker", "rss_after_ioc",
        "rss_after_worker", "start_first_pv", "start_ready", "bus_roundtrip",
        "bus_scan_duration", "bus_scan_wall")
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"

FULL = {"n": 20, "warmup": 5, "tasks": 100, "rounds": 10, "scan_points": 200,
        "scan_pairs": 20, "count_points": 10000, "count_pairs": 3, "idle_seconds": 30.0,
        "launches": 3, "catime_channels": 1000, "catime_rounds": 3, "acctst_cap": 900.0}
QUICK = {"n": 3, "warmup": 1, "tasks": 10, "rounds": 2, "scan_points": 20,
         "scan_pairs": 2, "count_points": 300, "count_pairs": 1, "idle_seconds": 2.0,
         "launches": 1, "catime_channels": 100, "catime_rounds": 1, "acctst_cap": 0.0}


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
        self.bare: common.Bare | None = None
        passes = [name for name in PASSES if name in only]
        named = [name for name in TASK_BENCHMARKS if name in only]
        if passes and not named:  # "--only pva": every task benchmark in that pass
            named = list(TASK_BENCHMARKS)
        #: The task benchmarks of each pass.
        self.tasks = {name: named if name in (passes or PASSES) else [] for name in PASSES}

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
            try:
                self.run_in(session)
            finally:
                if self.tasks["ca"] or self.tasks["pva"]:
                    common.PyepicsRunClient.finalize()

    def run_in(self, session: common.Session) -> None:
        """start; the CA-only pass; the pass with pvAccess (idle, catime, acctst on its
        IOC); bus."""
        if "start" in self.only:
            out = self.step("start", startup.start, session, self.c["launches"])
            if out is not None:
                figures, self.bare_rss = out
                self.figures += figures
        if self.tasks["ca"]:
            ioc = self.start_ioc(session, "--no-pva")
            self.task_pass("ca", ioc, self.tasks["ca"])
            session.stop(ioc)
        if self.tasks["pva"] or set(self.only) & {"idle", "catime", "acctst"}:
            ioc = self.start_ioc(session)
            if "idle" in self.only:
                self.figures += self.step("idle", startup.idle, ioc, self.c["idle_seconds"],
                                          self.bare_rss) or []
            if self.tasks["pva"]:
                self.pva_pass(ioc)
            if "idle" in self.only:
                self.figures += startup.rss_after(ioc, self.bare_rss, "the benchmarks")
            if set(self.only) & {"catime", "acctst"}:
                self.ca_tools(session, ioc)
            session.stop(ioc)
        if "bus" in self.only:
            c = self.c
            out = self.step("bus", lambda: bus.bus(
                session, n=c["n"], warmup=c["warmup"], scan_points=c["scan_points"],
                scan_pairs=c["scan_pairs"]))
            if out is not None:
                self.figures += out[0]
                self.notes += out[1]

    def start_ioc(self, session: common.Session, *args: str) -> Any:
        ioc = session.start_ioc(*args)
        self.ioc_logs.append(str(ioc.log_path))
        return ioc

    def pva_pass(self, ioc: Any) -> None:
        """The task benchmarks with 20 pvAccess monitors held, then RUN over pvAccess."""
        monitors = self.step("pvAccess monitors", pva.PvaMonitors, ioc, self.work)
        if monitors is None:
            return
        try:
            before = monitors.total()

            def pvput(client: common.TaskClient) -> None:
                if "roundtrip" in self.tasks["pva"]:
                    figure = self.step("pvput", pva.pvput_round_trip, client, self.c["n"],
                                       self.c["warmup"])
                    self.figures += [figure] if figure is not None else []

            self.task_pass("pva", ioc, self.tasks["pva"], then=pvput)
            self.notes.append(f"pva on: the {len(MONITORED)} pvAccess monitors received "
                              f"{monitors.total() - before} updates in that pass")
        finally:
            monitors.close()

    def task_pass(self, name: str, ioc: Any, benchmarks: list[str],
                  then: Callable[[common.TaskClient], None] = lambda client: None) -> None:
        """roundtrip, throughput, streaming on `ioc` with long-lived clients, each
        interleaved with the bare RunEngine; then `then(client)`. Keys and labels of the
        pass "pva" get PVA_PREFIX and "pva on: "."""
        c = self.c
        if self.bare is None:
            self.bare = common.Bare()
        bare = self.bare
        client = common.TaskClient(ioc)
        pyepics = None
        figures: list[Figure] = []
        try:
            log(f"pass {name}: warm-up ...")
            roundtrip.warm_up(client, bare, c["warmup"])
            if "roundtrip" in benchmarks:
                pyepics = common.PyepicsRunClient(ioc)
                figures += self.step(f"{name} roundtrip", roundtrip.roundtrip, client, pyepics,
                                     bare, c["n"], c["warmup"]) or []
            if "throughput" in benchmarks:
                figures += self.step(f"{name} throughput", roundtrip.throughput, client, bare,
                                     c["tasks"], c["rounds"]) or []
            if "streaming" in benchmarks:
                figures += self.step(
                    f"{name} streaming", lambda: streaming.streaming(
                        client, bare, self.work, scan_points=c["scan_points"],
                        scan_pairs=c["scan_pairs"], count_points=c["count_points"],
                        count_pairs=c["count_pairs"])) or []
            then(client)
        finally:
            if pyepics is not None:
                pyepics.close()
            client.close()
        notes = roundtrip.describe(figures) + streaming.describe(figures)
        if name == "pva":
            for f in figures:
                f.key, f.label = PVA_PREFIX + f.key, f"pva on: {f.label}"
            notes = [line if line.startswith(" ") else f"pva on: {line}" for line in notes]
        self.figures += figures
        self.notes += notes

    def ca_tools(self, session: common.Session, ioc: Any) -> None:
        """catime (alternating) and acctst's first block on `ioc` and on a softIoc."""
        c = self.c
        out = self.step("softIoc", ca_tools.start_softioc, session)
        if out is None:
            return
        soft, prefix, env = out
        try:
            if "catime" in self.only:
                self.figures += self.step(
                    "catime", lambda: ca_tools.compare_catime(
                        ioc.prefix, prefix, env, channels=c["catime_channels"],
                        rounds=c["catime_rounds"])) or []
            if "acctst" in self.only:
                if c["acctst_cap"] <= 0:
                    self.notes.append("acctst: not run (--acctst-cap 0; its first block is "
                                      "10,000 fixed cycles, ~17 s on a softIoc)")
                else:
                    figures = self.step("acctst", lambda: ca_tools.compare_acctst(
                        ioc.prefix, prefix, env, cap=c["acctst_cap"])) or []
                    self.figures += figures
                    self.notes += [f"acctst: ours hit the cap of {f.extra['cap_s']:g} s "
                                   "(--acctst-cap)" for f in figures if f.capped]
        finally:
            session.stop(soft)

    def compare_passes(self) -> None:
        """Notes: each figure with pvAccess on / the same with --no-pva (not interleaved:
        the passes ran one after the other)."""
        by_key = {f.key: f for f in self.figures}
        pairs = [(by_key[PVA_PREFIX + key], by_key[key]) for key in PASS_KEYS
                 if key in by_key and PVA_PREFIX + key in by_key]
        if pairs:
            self.notes.append("pva on / --no-pva (passes one after the other): " + ", ".join(
                f"{off.key} {on.ours / off.ours:.2f}x" for on, off in pairs if off.ours))


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
                        help="tiny counts, no bus, no acctst (smoke run, < 90 s): " + ", ".join(
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
    # --quick leaves the bus out unless named (starting ActiveMQ and two IOCs: ~25 s)
    only = list(args.only or (n for n in NAMES if not (args.quick and n == "bus")))

    t0 = time.monotonic()
    load0 = os.getloadavg()
    runner = Runner(only, counts)
    runner.run()
    runner.compare_passes()
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
