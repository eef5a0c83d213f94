"""EPICS base's catime and caEventRate against the IOC and against a softIoc, side by side.

    .venv/bin/python -m bench.ca_tools [--channels N] [--subscriptions N] [--seconds S]
                                       [--json PATH]

* ``catime <PV> <channels>``: connects that many channels to one PV, then times async
  puts, async gets and synchronous gets of DBR_FLOAT, DOUBLE, STRING and INT, the get
  latency and the channel clear, per operation. It writes, so it runs on ``ERROR:CLEAR``
  (a bo; a write acknowledges errors, harmless on an idle IOC) and on a softIoc ``bo``.
  Its DBR_STRING puts write "0.000000", no state string: both refuse it, the softIoc
  with a one-line log, caproto with a traceback, which is most of that figure on ours.
* ``caEventRate <PV> <subscriptions>``: that many subscriptions to one PV; the update
  rate it receives over its longest sample period within ``--seconds``. The PV is
  ``HEARTBEAT`` (+1/s), on the softIoc a ``calc`` heartbeat scanned once a second: both
  post 1 update/s to each subscription, so the rate shows whether all of them arrive.

One caRepeater, the IOC (``--state-dir <tmp>``) and the softIoc on loopback, one after
the other on the same free port; only those are stopped at the end. Prints a table
``figure | ours | softIoc | ratio`` and writes it to JSON (default
bench/results/ca_tools.json).
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from bench import common  # sets the loopback env, then imports caproto
from tests.integration import harness

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "ca_tools.json"
SOFTIOC_DB = """\
record(bo, "$(P)ERROR:CLEAR") {
    field(ZNAM, "Idle")
    field(ONAM, "Clear")
}
record(calc, "$(P)HEARTBEAT") {
    field(SCAN, "1 second")
    field(INPA, "$(P)HEARTBEAT NPP")
    field(CALC, "A+1")
}
"""
PER_OP = re.compile(r"Per Op,\s+([\d.]+) uS")
LATENCY = re.compile(r"Get Latency - mean = ([\d.]+) uS")
RATE = re.compile(r"CA Event Rate \(Hz\): current ([-+\d.eE]+)")
TIMEOUT = 600.0  # s for one catime run


def log(text: str) -> None:
    print(f"[bench.ca_tools {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def catime(pvname: str, channels: int) -> dict[str, float]:
    """catime's figures in µs per operation, keyed like ``DBR_FLOAT async put``."""
    out = harness.run_ca("catime", pvname, channels, timeout=TIMEOUT).stdout
    figures: dict[str, float] = {}
    section = ""
    for line in out.splitlines():
        line = line.strip()
        if line.endswith(" Test") and not line.startswith("#"):
            section = line[:-5]
        elif line.startswith("###"):
            section = f"{section.split(' ', 1)[0]} {line.strip('# ').removesuffix(' test')}"
        elif (match := PER_OP.search(line)) and section:
            figures[f"catime {section}"] = float(match.group(1))
        elif match := LATENCY.search(line):
            figures["catime get latency (mean)"] = float(match.group(1))
    if not figures:
        raise RuntimeError(f"catime printed no figures:\n{out}")
    return figures


def event_rate(pvname: str, subscriptions: int, seconds: float) -> float:
    """The update rate (updates/s) caEventRate last printed within `seconds`: it prints
    one per sample period, and doubles the period each time (1, 2, 4, 8, 16 s ...)."""
    proc = subprocess.Popen(
        ["stdbuf", "-oL", str(harness.ca_bin("caEventRate")), pvname, str(subscriptions)],
        env=harness.process_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    reader = common.LineReader(proc)
    rates: list[float] = []
    try:
        reader.wait_for("Waiting for initial value events", 60)
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                _, line = reader.wait_for("CA Event Rate", remaining)
            except TimeoutError:
                break
            if match := RATE.search(line):
                rates.append(float(match.group(1)))
    finally:
        proc.kill()
        proc.wait(10)
    if not rates:
        raise RuntimeError(f"caEventRate {pvname} printed no rate within {seconds} s")
    return rates[-1]


def measure(pv: str, args: argparse.Namespace) -> dict[str, float]:
    figures = catime(pv + "ERROR:CLEAR", args.channels)
    figures["caEventRate updates/s"] = event_rate(pv + "HEARTBEAT", args.subscriptions,
                                                  args.seconds)
    return figures


def number(key: str, x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.0f} /s" if key.startswith("caEventRate") else f"{x:.4g} µs"


def table(ours: dict[str, float], soft: dict[str, float]) -> str:
    """figure | ours | softIoc | ratio"""
    rows = [("figure", "ours", "softIoc", "ratio")]
    for key, mine in ours.items():
        theirs = soft.get(key)
        ratio = f"{mine / theirs:.1f}x" if theirs else "-"
        rows.append((key.removesuffix(" updates/s"), number(key, mine), number(key, theirs),
                     ratio))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(" | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ca_tools", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--channels", type=int, default=1000, help="catime channels (1000)")
    parser.add_argument("--subscriptions", type=int, default=10000,
                        help="caEventRate subscriptions (10000)")
    parser.add_argument("--seconds", type=float, default=35.0,
                        help="how long caEventRate runs (35: its last period is 16 s)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help=f"default {DEFAULT_JSON}")
    args = parser.parse_args(argv)
    with common.Session("ca-tools") as session:
        log("our IOC ...")
        ioc = session.start_ioc()
        ours = measure(ioc.prefix, args)
        session.stop(ioc)
        log("softIoc ...")
        db = session.work / "softioc.db"
        db.write_text(SOFTIOC_DB, encoding="ascii")
        prefix = harness.random_prefix()
        soft = harness.start_softioc(db, {"P": prefix}, ready_pv=prefix + "HEARTBEAT",
                                     log_dir=session.work)
        session.started.append(soft)
        theirs = measure(prefix, args)
    print(table(ours, theirs))
    print(f"(catime: {args.channels} channels, µs per operation; caEventRate: "
          f"{args.subscriptions} subscriptions to a 1 Hz PV, updates/s over its last period)")
    common.write_json(args.json, {"args": vars(args), "ours": ours, "softIoc": theirs})
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
