"""EPICS base's catime, caEventRate and acctst against the IOC and against a softIoc.

    .venv/bin/python -m bench.ca_tools [--channels N] [--subscriptions N] [--seconds S]
                                       [--json PATH]

* ``catime <PV> <channels>``: connects that many channels to one PV, then times async
  puts, async gets and synchronous gets of DBR_FLOAT, DOUBLE, STRING and INT, the get
  latency and the channel clear, per operation. It writes, so it runs on ``ERROR:CLEAR``
  (a bo; a write acknowledges errors, harmless on an idle IOC) and on a softIoc ``bo``.
  Its DBR_STRING puts write "0.000000", no state string: both refuse it, each with a
  one-line log.
* ``caEventRate <PV> <subscriptions>``: that many subscriptions to one PV; the update
  rate it receives over its longest sample period within ``--seconds``. The PV is
  ``HEARTBEAT`` (+1/s), on the softIoc a ``calc`` heartbeat scanned once a second: both
  post 1 update/s to each subscription, so the rate shows whether all of them arrive.
* ``acctst <PV> 2 1 1`` until its first block (``{....}``, 10,000 cycles of 500
  subscriptions added and cleared) has ended, bounded by a cap: `acctst_first_block`.
  Used by ``python -m bench`` (with catime: `compare_catime`, `compare_acctst`), not here.

One caRepeater, the IOC (``--state-dir <tmp>``) and the softIoc on loopback, each on a
CA port of its own (`start_softioc`); only those are stopped at the end. Prints a table
``figure | ours | softIoc | ratio`` and writes it to JSON (default
bench/results/ca_tools.json).
"""
from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from bench import common  # sets the loopback env, then imports caproto
from bench.common import Figure
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
FIRST_BLOCK_END = re.compile(r"\{\.+\}")
TIMEOUT = 600.0  # s for one catime run
#: catime figures in the table of ``python -m bench``: (key, catime figure, target ratio).
CATIME_FIGURES = (("catime_connect", "catime Channel Connect", 17.0),
                  ("catime_sync_get", "catime DBR_DOUBLE synch get", None),
                  ("catime_async_put", "catime DBR_DOUBLE async put", None))


def log(text: str) -> None:
    print(f"[bench.ca_tools {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def start_softioc(session: common.Session) -> tuple[harness.ManagedProcess, str, dict[str, str]]:
    """A softIoc serving SOFTIOC_DB on a CA port of its own: (process, prefix, the env
    overrides a CA tool needs to reach it)."""
    db = session.work / "softioc.db"
    db.write_text(SOFTIOC_DB, encoding="ascii")
    server_port, repeater_port = harness.session_ports()
    env = harness.epics_env(harness.free_port(exclude={server_port, repeater_port}),
                            repeater_port)
    prefix = harness.random_prefix()
    soft = harness.start_softioc(db, {"P": prefix}, ready_pv=prefix + "HEARTBEAT", env=env,
                                 log_dir=session.work)
    session.started.append(soft)
    return soft, prefix, env


def catime(pvname: str, channels: int, env: Mapping[str, str] | None = None) -> dict[str, float]:
    """catime's figures in µs per operation, keyed like ``catime DBR_FLOAT async put``."""
    out = harness.run_ca("catime", pvname, channels, timeout=TIMEOUT, env=env).stdout
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


def event_rate(pvname: str, subscriptions: int, seconds: float,
               env: Mapping[str, str] | None = None) -> float:
    """The update rate (updates/s) caEventRate last printed within `seconds`: it prints
    one per sample period, and doubles the period each time (1, 2, 4, 8, 16 s ...)."""
    proc = subprocess.Popen(
        ["stdbuf", "-oL", str(harness.ca_bin("caEventRate")), pvname, str(subscriptions)],
        env=harness.process_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
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


def acctst_first_block(pvname: str, cap: float,
                       env: Mapping[str, str] | None = None) -> float | None:
    """Seconds from starting ``acctst <pvname> 2 1 1`` until its first block has ended
    (``{`` dots ``}`` in its output); None if that did not come within `cap` seconds.
    acctst is killed then (this process only): the rest of its blocks is not timed."""
    proc = subprocess.Popen([str(harness.ca_bin("acctst")), pvname, "2", "1", "1"],
                            env=harness.process_env(env), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    t0 = time.perf_counter()
    out = bytearray()
    ended = threading.Event()

    def read() -> None:  # dots come without newlines: read what arrives
        assert proc.stdout is not None
        while chunk := proc.stdout.read1(4096):
            out.extend(chunk)
            if FIRST_BLOCK_END.search(out.decode("utf-8", "replace")):
                break
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        ended.wait(cap)
        elapsed = time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait(10)
        reader.join(10)
    text = out.decode("utf-8", "replace")
    if FIRST_BLOCK_END.search(text):
        return elapsed
    if elapsed < cap:
        raise RuntimeError(f"acctst {pvname} exited before its first block ended: {text[-600:]!r}")
    return None


def compare_catime(ours_pv: str, soft_pv: str, soft_env: Mapping[str, str], *,
                   channels: int, rounds: int) -> list[Figure]:
    """catime on ``ERROR:CLEAR`` of the IOC and of the softIoc, alternating `rounds` times;
    the medians of CATIME_FIGURES, ours / softIoc (every figure in the JSON)."""
    ours: list[dict[str, float]] = []
    soft: list[dict[str, float]] = []
    for _ in range(rounds):
        ours.append(catime(ours_pv + "ERROR:CLEAR", channels))
        soft.append(catime(soft_pv + "ERROR:CLEAR", channels, soft_env))

    def medians(runs: list[dict[str, float]]) -> dict[str, float]:
        return {key: statistics.median(run[key] for run in runs) for key in runs[0]}

    all_ours, all_soft = medians(ours), medians(soft)
    extra = {"channels": channels, "ours_us": all_ours, "softioc_us": all_soft}
    return [Figure(key, f"{name.removeprefix('catime ')} / softIoc", "µs", all_ours[name],
                   all_soft[name], None if target is None else ("ratio<=", target),
                   n=f"{rounds} pairs", extra=extra)
            for key, name, target in CATIME_FIGURES]


def compare_acctst(ours_pv: str, soft_pv: str, soft_env: Mapping[str, str], *,
                   cap: float) -> list[Figure]:
    """acctst's first block on the softIoc, then on the IOC (bounded by `cap` seconds; if
    ours hits it, the figure is the cap, ``capped``: a lower bound)."""
    soft = acctst_first_block(soft_pv + "ERROR:CLEAR", cap, soft_env)
    if soft is None:
        raise RuntimeError(f"acctst's first block on the softIoc took longer than {cap:g} s")
    ours = acctst_first_block(ours_pv + "ERROR:CLEAR", cap)
    return [Figure("acctst_first_block", "acctst first block / softIoc", "s",
                   cap if ours is None else ours, soft, ("ratio<=", 5.0), n="1 each",
                   extra={"cap_s": cap}, capped=ours is None)]


def measure(pv: str, args: argparse.Namespace,
            env: Mapping[str, str] | None = None) -> dict[str, float]:
    figures = catime(pv + "ERROR:CLEAR", args.channels, env)
    figures["caEventRate updates/s"] = event_rate(pv + "HEARTBEAT", args.subscriptions,
                                                  args.seconds, env)
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
        _, prefix, env = start_softioc(session)
        theirs = measure(prefix, args, env)
    print(table(ours, theirs))
    print(f"(catime: {args.channels} channels, µs per operation; caEventRate: "
          f"{args.subscriptions} subscriptions to a 1 Hz PV, updates/s over its last period)")
    common.write_json(args.json, {"args": vars(args), "ours": ours, "softIoc": theirs})
    print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
