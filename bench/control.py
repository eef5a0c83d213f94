"""Latency of the operator commands PAUSE and HALT, as a CA client sees it.

Run from the repository root::

    .venv/bin/python -m bench.control [--n 20] [--json PATH] [--quick]

Starts a caRepeater and the IOC (loopback only, free ports, random prefix,
``--continue-on-error`` so that aborts and halts do not hold the queue), then with
one long-lived caproto threading client measures, ``n`` times each (after 2
warm-up rounds of each):

* PAUSE -> PAUSED: ``count([det1], num=1000, delay=0.01)`` written to ``SUBMIT``;
  once ``STATE`` shows RUNNING (monitor), the time of ``PAUSE`` write(1, wait=True)
  until the put completes (the IOC completes it once the worker is paused), and,
  separately, from the same write to the first ``STATE`` monitor update PAUSED.
  ``STATE`` is read right after the put returned (expected PAUSED); the task is then
  ended with ``ABORT`` write(1, wait=True), which is timed too (abort of a paused plan);
* HALT -> IDLE: ``mv(smotor, 100000)`` (an ophyd-async motor at 1 mm/s: never
  arrives) written to ``SUBMIT``; once RUNNING, the time of ``HALT`` write(1,
  wait=True) until it completes, and from the write to the first ``STATE`` monitor
  update IDLE. ``STATE`` (expected IDLE) and ``LAST:RESULT`` (expected Halted) are
  read right after the put returned.

Halted motors are not stopped (no cleanup): each ``mv`` of smotor starts from
wherever the previous one left it, which does not matter since it never arrives.
"""
from __future__ import annotations

import argparse  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from caproto import ChannelType  # noqa: E402

from bench import common  # first: loopback env before caproto/epics
from bench.common import TIMEOUT, summary  # noqa: E402

PAUSE_REQUEST = common.request("count", detectors=["det1"], num=1000, delay=0.01)
HALT_REQUEST = common.request("mv", motor="smotor", position=100000)
WARMUP = 2  # untimed rounds of each kind


class ControlClient(common.CaClient):
    """One long-lived caproto client: submits tasks, sends commands, watches STATE."""

    NAMES = ("SUBMIT", "SUBMIT:STATUS", "SUBMIT:MESSAGE", "STATE", "LAST:RESULT",
             "PAUSE", "ABORT", "HALT")

    def __init__(self, ioc: Any) -> None:
        super().__init__(ioc)
        self.odd: list[str] = []  # unexpected states / results seen
        # Every STATE monitor update as (perf_counter at callback, value).
        self._cond = threading.Condition()
        self._states: list[tuple[float, str]] = []
        # caproto holds callbacks weakly: the bound method lives as long as `self`,
        # and `self.sub` keeps the subscription itself alive.
        self.sub = self.pv["STATE"].subscribe(data_type=ChannelType.STRING)
        self.sub.add_callback(self._on_state)

    # -- STATE monitor
    def _on_state(self, sub: Any, response: Any) -> None:
        t = time.perf_counter()
        value = response.data[0].decode("utf-8")
        with self._cond:
            self._states.append((t, value))
            self._cond.notify_all()

    def mark(self) -> int:
        """Index of the next STATE update to arrive."""
        with self._cond:
            return len(self._states)

    def wait_state(self, value: str, since: int, timeout: float = TIMEOUT) -> float:
        """perf_counter time of the first STATE update == `value` at index >= `since`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, v in self._states[since:]:
                    if v == value:
                        return t
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    last = self._states[-1][1] if self._states else None
                    raise TimeoutError(f"STATE did not become {value} within {timeout}s "
                                       f"(last update {last})")
                self._cond.wait(remaining)

    def wait_idle(self) -> None:
        """Block until the latest STATE update is IDLE (maybe already)."""
        with self._cond:
            since = len(self._states) - 1 if self._states else 0
        self.wait_state("IDLE", since)

    # -- writes
    def submit_running(self, request: str) -> None:
        """Wait until IDLE, submit `request`, wait until STATE shows RUNNING."""
        self.wait_idle()
        since = self.mark()
        self.write_text("SUBMIT", request)
        if self.read_string("SUBMIT:STATUS") != "Accepted":
            raise RuntimeError(f"request refused: {self.read_text('SUBMIT:MESSAGE')}")
        self.wait_state("RUNNING", since)

    def command(self, name: str) -> tuple[float, float, int]:
        """Write 1 to `name` with completion: (t0 before the write, t1 after, mark at t0)."""
        since = self.mark()
        t0 = time.perf_counter()
        self.pv[name].write([1], wait=True, timeout=TIMEOUT)
        return t0, time.perf_counter(), since

    def expect(self, what: str, got: str, want: str) -> None:
        if got != want:
            self.odd.append(f"{what}: {got} (expected {want})")

    # -- one timed round of each kind (seconds)
    def pause_round(self) -> dict[str, float]:
        self.submit_running(PAUSE_REQUEST)
        t0, t1, since = self.command("PAUSE")
        self.expect("STATE after PAUSE put", self.read_string("STATE"), "PAUSED")
        t_mon = self.wait_state("PAUSED", since)
        a0, a1, _ = self.command("ABORT")
        self.expect("LAST:RESULT after ABORT put", self.read_string("LAST:RESULT"), "Aborted")
        return {"put": t1 - t0, "monitor": t_mon - t0, "abort_put": a1 - a0}

    def halt_round(self) -> dict[str, float]:
        self.submit_running(HALT_REQUEST)
        t0, t1, since = self.command("HALT")
        self.expect("STATE after HALT put", self.read_string("STATE"), "IDLE")
        self.expect("LAST:RESULT after HALT put", self.read_string("LAST:RESULT"), "Halted")
        t_mon = self.wait_state("IDLE", since)
        return {"put": t1 - t0, "monitor": t_mon - t0}


def measure(client: ControlClient, n: int) -> dict[str, Any]:
    """All figures of the benchmark (times in ms)."""
    for _ in range(WARMUP):
        client.pause_round()
        client.halt_round()
    client.odd.clear()
    pauses: list[dict[str, float]] = []
    halts: list[dict[str, float]] = []
    for _ in range(n):  # interleaved: pause, halt, pause, halt ...
        pauses.append(client.pause_round())
        halts.append(client.halt_round())
    return {
        "n": n,
        "pause": {key: summary([r[key] for r in pauses], 1e3) for key in pauses[0]},
        "halt": {key: summary([r[key] for r in halts], 1e3) for key in halts[0]},
        "odd": client.odd,
        "rounds_ms": {  # every timed round, in order
            "pause": [{k: v * 1e3 for k, v in r.items()} for r in pauses],
            "halt": [{k: v * 1e3 for k, v in r.items()} for r in halts],
        },
    }


def report(fig: dict[str, Any]) -> str:
    """The figures as a small text table."""
    def row(label: str, s: dict[str, float]) -> str:
        return f"  {label:<34}{s['median']:8.2f} ms  [{s['min']:.2f}..{s['max']:.2f}]"

    p, h = fig["pause"], fig["halt"]
    lines = [
        f"control commands, n={fig['n']} each (median [min..max])",
        "PAUSE during count([det1], num=1000, delay=0.01)",
        row("PAUSE put -> completion", p["put"]),
        row("PAUSE put -> STATE PAUSED monitor", p["monitor"]),
        row("then ABORT put -> completion", p["abort_put"]),
        "HALT during mv(smotor, 100000)",
        row("HALT put -> completion", h["put"]),
        row("HALT put -> STATE IDLE monitor", h["monitor"]),
    ]
    if fig["odd"]:
        lines.append(f"unexpected ({len(fig['odd'])}): " + "; ".join(fig["odd"][:5]))
    else:
        lines.append("states/results right after each put: all as expected")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start caRepeater + IOC, measure, print (and save) the figures, stop both."""
    parser = argparse.ArgumentParser(prog="python -m bench.control", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="timed rounds of each command")
    parser.add_argument("--quick", action="store_true", help="smoke run: n=3")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.n = 3
    with common.Session("bench-control") as session:
        ioc = session.start_ioc()  # --continue-on-error: aborts and halts do not hold
        client = ControlClient(ioc)
        try:
            fig = measure(client, args.n)
        finally:
            client.close()
        fig["ioc_log"] = str(ioc.log_path)
    print(report(fig))
    if args.json:
        common.write_json(args.json, fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
