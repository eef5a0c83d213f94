"""Overhead of running a plan through the IOC vs. on a bare RunEngine.

Run from the repository root::

    .venv/bin/python -m bench.overhead [--n 20] [--json PATH] [--quick]

Starts a caRepeater and the IOC (loopback only, free ports, random prefix), then
measures, interleaved (IOC, bare, IOC, bare ...):

* round trip: ``count([det1], num=1)`` written to ``SUBMIT`` (put with completion)
  until ``LAST:TASK_ID`` shows its task id (monitor, no polling), vs. the same plan
  on a bare ``RunEngine`` in this process;
* throughput: a batch of such tasks submitted back to back until the last one
  finished, vs. the same number of bare ``RE(...)`` calls.
"""
from __future__ import annotations

# The EPICS environment must be in os.environ before caproto/epics/ophyd are imported;
# the harness imports neither at import time.
from tests.integration import harness

harness.install_session_env()

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

from bluesky import RunEngine  # noqa: E402
from caproto import ChannelType  # noqa: E402
from caproto.threading.client import Context  # noqa: E402
from ophyd.sim import SynAxis, SynGauss  # noqa: E402

from plans.standard import count  # noqa: E402

REQUEST = json.dumps({"name": "count", "params": {"detectors": ["det1"], "num": 1}})
PAYLOAD = list(REQUEST.encode("utf-8")) + [0]
TIMEOUT = 30.0  # seconds for any one CA operation or task
BATCH_TIMEOUT = 300.0  # seconds for a whole throughput batch to finish


class IocClient:
    """One long-lived caproto client that submits tasks and sees them finish."""

    def __init__(self, ioc: harness.IocProcess) -> None:
        self.ctx = Context(timeout=TIMEOUT)
        names = ("SUBMIT", "SUBMIT:TASK_ID", "LAST:TASK_ID", "LAST:RESULT", "LAST:DURATION")
        pvs = self.ctx.get_pvs(*(ioc.pv(name) for name in names), timeout=TIMEOUT)
        for pv in pvs:
            pv.wait_for_connection(timeout=TIMEOUT)
        self.submit_pv, self.task_id_pv, self.last_pv, self.result_pv, self.duration_pv = pvs
        self.durations: list[float] = []  # LAST:DURATION of each timed round trip
        self._lock = threading.Lock()
        self._finished: set[str] = set()
        self._target: str | None = None
        self._event = threading.Event()
        # caproto holds callbacks weakly: this bound method lives as long as `self`,
        # and `self.sub` keeps the subscription itself alive.
        self.sub = self.last_pv.subscribe(data_type=ChannelType.STRING)
        self.sub.add_callback(self._on_last)

    def _on_last(self, sub: Any, response: Any) -> None:
        """Monitor callback of ``LAST:TASK_ID``: record the id, wake a waiter."""
        task_id = response.data[0].decode("utf-8")
        with self._lock:
            self._finished.add(task_id)
            if task_id == self._target:
                self._event.set()

    def put(self) -> None:
        """Write the request to ``SUBMIT`` and wait for the put completion."""
        self.submit_pv.write(PAYLOAD, wait=True, data_type=ChannelType.CHAR, timeout=TIMEOUT)

    def task_id(self) -> str:
        """``SUBMIT:TASK_ID``: the id of the last accepted request."""
        data = self.task_id_pv.read(data_type=ChannelType.STRING, timeout=TIMEOUT).data
        return data[0].decode("utf-8")

    def wait_finished(self, task_id: str, timeout: float) -> None:
        """Block until ``LAST:TASK_ID`` has shown `task_id` (maybe already)."""
        with self._lock:
            self._target = task_id
            self._event.clear()
            if task_id in self._finished:
                self._event.set()
        if not self._event.wait(timeout):
            raise TimeoutError(f"task {task_id} did not finish within {timeout}s")

    def last_result(self) -> str:
        """``LAST:RESULT`` as its enum string."""
        return self.result_pv.read(data_type=ChannelType.STRING, timeout=TIMEOUT).data[0].decode()

    def round_trip(self) -> float:
        """Seconds from the write of one request to seeing it finished."""
        t0 = time.perf_counter()
        self.put()
        task_id = self.task_id()
        self.wait_finished(task_id, TIMEOUT)
        elapsed = time.perf_counter() - t0
        if (result := self.last_result()) != "Success":
            raise RuntimeError(f"task {task_id} ended with {result}")
        self.durations.append(float(self.duration_pv.read(timeout=TIMEOUT).data[0]))
        return elapsed

    def batch(self, tasks: int) -> float:
        """Seconds to submit `tasks` requests back to back and see the last finish."""
        t0 = time.perf_counter()
        for _ in range(tasks):
            self.put()
        self.wait_finished(self.task_id(), BATCH_TIMEOUT)
        return time.perf_counter() - t0


class Bare:
    """The same plan on a bare RunEngine with the devices of db/devices.yaml."""

    def __init__(self) -> None:
        self.RE = RunEngine(context_managers=[])
        self.motor1 = SynAxis(name="motor1", delay=0)
        self.det1 = SynGauss("det1", self.motor1, "motor1", center=0, Imax=1, sigma=1)

    def round_trip(self) -> float:
        """Seconds of one ``RE(count([det1], num=1))``."""
        t0 = time.perf_counter()
        self.RE(count([self.det1], num=1))
        return time.perf_counter() - t0

    def batch(self, tasks: int) -> float:
        """Seconds of `tasks` such calls in a loop."""
        t0 = time.perf_counter()
        for _ in range(tasks):
            self.RE(count([self.det1], num=1))
        return time.perf_counter() - t0


def interleave(a: Callable[[], float], b: Callable[[], float], n: int) -> tuple[list[float], list[float]]:
    """Run a, b, a, b ... `n` times each; return both lists of timings."""
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(n):
        xs.append(a())
        ys.append(b())
    return xs, ys


def measure(client: IocClient, bare: Bare, n: int, tasks: int, rounds: int) -> dict[str, Any]:
    """All figures of the benchmark (times in ms, rates in tasks/s)."""
    interleave(client.round_trip, bare.round_trip, 5)  # warm-up
    client.durations.clear()
    ioc_rt, bare_rt = interleave(client.round_trip, bare.round_trip, n)
    ioc_b, bare_b = interleave(lambda: client.batch(tasks), lambda: bare.batch(tasks), rounds)
    ioc_ms, bare_ms = statistics.median(ioc_rt) * 1e3, statistics.median(bare_rt) * 1e3
    ioc_rate = statistics.median(tasks / t for t in ioc_b)
    bare_rate = statistics.median(tasks / t for t in bare_b)
    return {
        "n": n,
        "round_trip_ms": {
            "ioc_median": ioc_ms,
            "bare_median": bare_ms,
            "ratio": ioc_ms / bare_ms,
            "overhead_ms": ioc_ms - bare_ms,
            "ioc_task_median": statistics.median(client.durations) * 1e3,  # LAST:DURATION
            "ioc_min": min(ioc_rt) * 1e3,
            "ioc_max": max(ioc_rt) * 1e3,
            "bare_min": min(bare_rt) * 1e3,
            "bare_max": max(bare_rt) * 1e3,
        },
        "throughput": {
            "tasks": tasks,
            "rounds": rounds,
            "ioc_tasks_per_s": ioc_rate,
            "bare_tasks_per_s": bare_rate,
            "ratio": ioc_rate / bare_rate,
            "ioc_rounds_s": ioc_b,
            "bare_rounds_s": bare_b,
        },
    }


def report(fig: dict[str, Any]) -> str:
    """The figures as a small text table."""
    rt, tp = fig["round_trip_ms"], fig["throughput"]
    return "\n".join([
        f"round trip count([det1], num=1), n={fig['n']} (median [min..max])",
        f"  IOC   {rt['ioc_median']:8.2f} ms  [{rt['ioc_min']:.2f}..{rt['ioc_max']:.2f}]",
        f"  bare  {rt['bare_median']:8.2f} ms  [{rt['bare_min']:.2f}..{rt['bare_max']:.2f}]",
        f"  (IOC's own LAST:DURATION, worker side: {rt['ioc_task_median']:.2f} ms)",
        f"  ratio IOC/bare {rt['ratio']:.2f}   overhead {rt['overhead_ms']:.2f} ms",
        f"throughput, {tp['tasks']} tasks back to back, median of {tp['rounds']} rounds",
        f"  IOC   {tp['ioc_tasks_per_s']:8.1f} tasks/s",
        f"  bare  {tp['bare_tasks_per_s']:8.1f} tasks/s",
        f"  ratio IOC/bare {tp['ratio']:.2f}",
    ])


def main(argv: list[str] | None = None) -> int:
    """Start caRepeater + IOC, measure, print (and save) the figures, stop both."""
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20, help="timed round trips of each kind")
    parser.add_argument("--tasks", type=int, default=100, help="tasks per throughput batch")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds of each kind")
    parser.add_argument("--quick", action="store_true", help="smoke run: n=3, 10 tasks")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.tasks = 3, 10
    work = tempfile.mkdtemp(prefix="bench-overhead-")
    repeater_port = int(harness.session_ports()[1])
    repeater = ioc = client = None
    try:
        repeater = harness.start_repeater(repeater_port, log_dir=work)
        state = tempfile.mkdtemp(prefix="state-", dir=work)
        ioc = harness.start_ioc("--state-dir", state, log_dir=work)
        client = IocClient(ioc)
        fig = measure(client, Bare(), args.n, args.tasks, args.rounds)
        fig["ioc_log"] = str(ioc.log_path)
        print(report(fig))
        if args.json:
            with open(args.json, "w", encoding="utf-8") as out:
                json.dump(fig, out, indent=2)
    finally:
        if client is not None:
            client.ctx.disconnect()
        if ioc is not None:
            ioc.stop()
        if repeater is not None:
            repeater.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
