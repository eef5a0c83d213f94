"""Helpers shared by the peer drivers (``blueapi_bench.py``, ``queueserver_bench.py``).

The drivers run inside each peer's own venv (so the bare RunEngine uses the very
bluesky/ophyd the peer uses); this module imports only the standard library at import
time and bluesky/ophyd lazily (``Bare``).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEER_ENV = HERE / "peer_env"  # bench_peer_plans.py, bench_peer_devices.py
POLL = 0.010  # the client polling period where a peer has no push notification

SIZES = {  # per mode: warm-up, timed round trips, tasks per batch, batch rounds, scans
    "full": {"warmup": 5, "n": 20, "tasks": 100, "rounds": 3, "scans": 3},
    "quick": {"warmup": 2, "n": 5, "tasks": 10, "rounds": 1, "scans": 1},
}
SCAN_ARGS = (-1.0, 1.0, 200)  # scan([det], motor, -1, 1, 200)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def metric(name: str, unit: str, peer: float | None, bare: float | None = None,
           higher_is_better: bool = False, **extra: Any) -> dict[str, Any]:
    """One table row. ``ratio`` is a slowdown: how many times worse than bare the peer
    is (peer/bare for times, bare/peer for rates); > 1 means the peer is slower."""
    ratio = None
    if peer and bare:
        ratio = bare / peer if higher_is_better else peer / bare
    row = {"metric": name, "unit": unit, "peer": peer, "bare": bare, "ratio": ratio}
    row.update(extra)
    return row


def error_row(name: str, exc: BaseException) -> dict[str, Any]:
    return {"metric": name, "error": f"{type(exc).__name__}: {exc}"[:300]}


# ----------------------------------------------------------------------------- processes

class Proc:
    """A server process this driver started, in its own session (process group)."""

    registry: list[Proc] = []
    pid_file: Path | None = None  # the orchestrator kills what is left if we die

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.name, self.log_path = name, log_path
        self._log = open(log_path, "wb")
        self.t_launch = time.perf_counter()
        self.popen = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid
        Proc.registry.append(self)
        Proc._save()

    @classmethod
    def _save(cls) -> None:
        if cls.pid_file is not None:
            live = [{"name": p.name, "pgid": p.pid, "marker": str(p.log_path.parent)}
                    for p in cls.registry if p.popen.poll() is None]
            cls.pid_file.write_text(json.dumps(live))

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip()[:200] for line in text[-lines:])

    def stop(self, timeout: float = 15.0) -> bool:
        """SIGTERM to the leader (it shuts its children down), SIGKILL to the whole
        process group after `timeout` s. True if the leader exited by itself."""
        graceful = True
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                graceful = False
        # children may outlive the leader: clean the group either way
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        Proc._save()
        return graceful

    @classmethod
    def stop_all(cls) -> None:
        for p in reversed(cls.registry):
            p.stop()



def run_sections(peer: str, sections: list[tuple[str, Callable[[], Any]]], server: Any) -> list[Any]:
    """Run each measurement; a failing one gives an error row, unless `server` died."""
    rows = []
    for name, run in sections:
        log(f"{peer}: {name}")
        try:
            rows.append(run())
        except Exception as exc:  # one failing path does not sink the others
            log(f"{peer}: {name} failed: {exc!r}")
            rows.append(error_row(name, exc))
            if not server.alive():
                raise RuntimeError(f"{peer} exited: {server.tail()}") from exc
    return rows

def install_signal_handlers() -> None:
    """Stop our servers when the orchestrator sends SIGTERM (timeout)."""
    def handler(signum, frame):  # noqa: ARG001
        Proc.stop_all()
        sys.exit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    kids, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cmd(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:160]
    except OSError:
        return ""


def memory(pid: int) -> dict[str, Any]:
    """RSS (sum over the process tree, shared pages counted per process) and PSS, MB."""
    procs = [{"pid": p, "cmd": _cmd(p), "rss_mb": _status_kb(p, "VmRSS") / 1024, "pss_mb": _pss_kb(p) / 1024}
             for p in tree(pid)]
    procs = [p for p in procs if p["rss_mb"] > 0]
    return {"rss_mb": sum(p["rss_mb"] for p in procs), "pss_mb": sum(p["pss_mb"] for p in procs),
            "processes": procs}


def wait_until(pred: Callable[[], Any], timeout: float, what: str, proc: Proc | None = None,
               period: float = POLL) -> Any:
    """Call `pred` every `period` s until it returns a true value (returned)."""
    deadline = time.perf_counter() + timeout
    while True:
        value = pred()
        if value:
            return value
        if proc is not None and not proc.alive():
            raise RuntimeError(f"{proc.name} exited (code {proc.popen.returncode}): {proc.tail()}")
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(period)


# ----------------------------------------------------------------------------- bare RE

class Bare:
    """The same plans on a bare ``RunEngine(context_managers=[])`` in this process, with
    ``from ophyd.sim import det, motor`` (the peer's venv: same bluesky/ophyd as the peer)."""

    def __init__(self) -> None:
        sys.path.insert(0, str(PEER_ENV))
        from bench_peer_plans import count, scan
        from bluesky import RunEngine
        from ophyd.sim import det, motor

        self.RE = RunEngine(context_managers=[])
        self.det, self.motor, self._count, self._scan = det, motor, count, scan

    def count(self) -> float:
        t0 = time.perf_counter()
        self.RE(self._count([self.det], num=1))
        return time.perf_counter() - t0

    def batch(self, tasks: int) -> float:
        t0 = time.perf_counter()
        for _ in range(tasks):
            self.RE(self._count([self.det], num=1))
        return time.perf_counter() - t0

    def scan(self) -> float:
        t0 = time.perf_counter()
        self.RE(self._scan([self.det], self.motor, *SCAN_ARGS))
        return time.perf_counter() - t0


def interleave(a: Callable[[], float], b: Callable[[], float], n: int) -> tuple[list[float], list[float]]:
    xs: list[float] = []
    ys: list[float] = []
    for _ in range(n):
        xs.append(a())
        ys.append(b())
    return xs, ys


def round_trip_rows(label: str, peer: Callable[[], float], bare: Bare, size: dict[str, int],
                    note: str) -> dict[str, Any]:
    """count([det], num=1) submit -> seen finished, median of n after warm-up, vs bare."""
    interleave(peer, bare.count, size["warmup"])
    xs, ys = interleave(peer, bare.count, size["n"])
    return metric(f"count RT {label}", "ms", median_ms(xs), median_ms(ys), n=size["n"], note=note,
                  peer_min=min(xs) * 1e3, peer_max=max(xs) * 1e3, bare_min=min(ys) * 1e3,
                  bare_max=max(ys) * 1e3)


def throughput_row(label: str, peer_batch: Callable[[int], float], bare: Bare, size: dict[str, int],
                   note: str) -> dict[str, Any]:
    tasks = size["tasks"]
    xs, ys = interleave(lambda: peer_batch(tasks), lambda: bare.batch(tasks), size["rounds"])
    rate = statistics.median(tasks / t for t in xs)
    bare_rate = statistics.median(tasks / t for t in ys)
    return metric(f"{tasks} counts {label}", "tasks/s", rate, bare_rate, higher_is_better=True, tasks=tasks,
                  rounds=size["rounds"], peer_rounds_s=xs, bare_rounds_s=ys, note=note)


def scan_row(label: str, peer: Callable[[], float], bare: Bare, size: dict[str, int], note: str) -> dict[str, Any]:
    xs, ys = interleave(peer, bare.scan, size["scans"])
    return metric(f"scan 200 pts {label}", "s", statistics.median(xs), statistics.median(ys), n=size["scans"],
                  peer_runs_s=xs, bare_runs_s=ys, note=note)


def driver_args(prog: str, doc: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=doc)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", required=True, help="where to write the result")
    parser.add_argument("--workdir", required=True, help="scratch dir: configs, logs, pids.json")
    return parser.parse_args()


def versions(*dists: str) -> dict[str, str]:
    from importlib import metadata
    out = {}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "-"
    return out
