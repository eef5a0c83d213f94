"""What every benchmark shares: loopback CA, starting the IOC, clients, statistics.

Importing this module puts a loopback-only EPICS environment with fresh free ports
into ``os.environ`` (``harness.install_session_env``) *before* anything imports
caproto or pyepics, which read it once per process. Every benchmark module imports
``bench.common`` first. Child processes get that environment through
``harness.process_env()``.
"""
from __future__ import annotations

from tests.integration import harness

harness.install_session_env()

import json  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from caproto import ChannelType  # noqa: E402
from caproto.threading.client import Context  # noqa: E402

REPO_ROOT = harness.REPO_ROOT
TIMEOUT = 30.0  # seconds for any one CA operation or short task
LONG_TIMEOUT = 600.0  # seconds for a long task or a whole batch
IOC_ARGS = ("--continue-on-error",)  # plus --state-dir <fresh tmp dir>, always


def request(name: str, **params: Any) -> str:
    """The JSON of a task request for plan `name`."""
    return json.dumps({"name": name, "params": params})


def payload(text: str) -> list[int]:
    """A request as a CHAR array with its NUL (caproto writes)."""
    return list(text.encode("utf-8")) + [0]


# ---------------------------------------------------------------- processes
class Session:
    """A work directory, one caRepeater, and IOCs started on the session port.

    Every IOC gets ``--continue-on-error --state-dir <fresh dir under work>``. Only
    what this object started is stopped (by PID), in `close`.
    """

    def __init__(self, name: str = "bench") -> None:
        self.work = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.repeater: harness.ManagedProcess | None = None
        self.started: list[harness.ManagedProcess] = []

    def __enter__(self) -> Session:
        self.repeater = harness.start_repeater(harness.session_ports()[1], log_dir=self.work)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop what was started; delete the state dirs (run files), keep the logs."""
        for proc in reversed(self.started):
            proc.stop()
        if self.repeater is not None:
            self.repeater.stop()
        for state in self.work.glob("state-*"):
            shutil.rmtree(state, ignore_errors=True)

    def state_dir(self) -> str:
        return tempfile.mkdtemp(prefix="state-", dir=self.work)

    def ioc_command(self, prefix: str) -> list[str]:
        return [sys.executable, "-m", "ioc", "--prefix", prefix, *IOC_ARGS,
                "--state-dir", self.state_dir()]

    def start_ioc(self, *extra: str, env: dict[str, str] | None = None) -> harness.IocProcess:
        """Start an IOC and wait until its HEARTBEAT answers (harness: C caget); `env`
        overrides the session's EPICS environment (another CA port)."""
        ioc = harness.IocProcess(*IOC_ARGS, "--state-dir", self.state_dir(), *extra,
                                 log_dir=self.work, env=env)
        self.started.append(ioc)  # registered first: stopped even if start fails
        return ioc.start()

    def launch_ioc(self, prefix: str) -> harness.ManagedProcess:
        """Launch an IOC without waiting for anything (start-up timing)."""
        proc = harness.ManagedProcess(self.ioc_command(prefix), name=f"ioc-{prefix[:-1]}",
                                      cwd=REPO_ROOT, env={"PYTHONUNBUFFERED": "1"},
                                      log_dir=self.work, ca_server=True)
        self.started.append(proc)
        return proc.start()

    def stop(self, proc: harness.ManagedProcess) -> None:
        proc.stop()
        if proc in self.started:
            self.started.remove(proc)


class LineReader:
    """Lines of a child's stdout through a thread, so that every wait is bounded."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.lines: queue.Queue[tuple[float, str | None]] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put((time.perf_counter(), line.rstrip("\n")))
        self.lines.put((time.perf_counter(), None))

    def wait_for(self, prefix: str, timeout: float) -> tuple[float, str]:
        """(arrival time, line) of the next line starting with `prefix`."""
        deadline = time.monotonic() + timeout
        other: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line {prefix!r} from {self.proc.args} in {timeout}s "
                                   f"(other lines: {other[-5:]})")
            try:
                t, line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self.lines.put((t, None))  # stays at the end for later waits
                raise RuntimeError(f"{self.proc.args} exited ({self.proc.poll()}) before "
                                   f"printing {prefix!r} (other lines: {other[-5:]})")
            if line.startswith(prefix):
                return t, line
            other.append(line)


def start_child(module: str, *args: str, work: Path) -> tuple[subprocess.Popen, LineReader]:
    """``python -m <module> args`` with the loopback env; stdout read line by line,
    stderr to ``<work>/<module>.err``; stdin a pipe (closing it ends the child)."""
    err = open(work / f"{module.rsplit('.', 1)[-1]}-{time.monotonic_ns()}.err", "wb")
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=REPO_ROOT,
                            env=harness.process_env({"PYTHONUNBUFFERED": "1"}),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                            text=True, encoding="utf-8")
    err.close()
    return proc, LineReader(proc)


def end_child(proc: subprocess.Popen, timeout: float = 10) -> int:
    """Close stdin, wait; kill it (this PID only) if it does not exit in time."""
    try:
        if proc.stdin is not None:
            proc.stdin.close()
    except OSError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


# ---------------------------------------------------------------- /proc
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (/proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14, 15 of stat(5)


def rss_mb(pid: int) -> float:
    """VmRSS of a process in MB (/proc/<pid>/status)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# ---------------------------------------------------------------- CA clients
class CaClient:
    """One long-lived caproto threading client connected to some PVs of an IOC."""

    NAMES: tuple[str, ...] = ()

    def __init__(self, ioc: harness.IocProcess, names: Sequence[str] = ()) -> None:
        self.ioc = ioc
        self.ctx = Context(timeout=TIMEOUT)
        names = tuple(dict.fromkeys((*self.NAMES, *names)))
        pvs = self.ctx.get_pvs(*(ioc.pv(name) for name in names), timeout=TIMEOUT)
        for pv in pvs:
            pv.wait_for_connection(timeout=TIMEOUT)
        self.pv = dict(zip(names, pvs))

    def read_string(self, name: str) -> str:
        """A STRING or ENUM PV as text."""
        data = self.pv[name].read(data_type=ChannelType.STRING, timeout=TIMEOUT).data
        return data[0].decode("utf-8")

    def read_text(self, name: str) -> str:
        """A char waveform as text (up to the first NUL)."""
        data = self.pv[name].read(data_type=ChannelType.CHAR, timeout=TIMEOUT).data
        return bytes(data).split(b"\0", 1)[0].decode("utf-8", "replace")

    def read_float(self, name: str) -> float:
        return float(self.pv[name].read(timeout=TIMEOUT).data[0])

    def write_text(self, name: str, text: str, timeout: float = TIMEOUT) -> None:
        """Put `text` to a char waveform and wait for the completion."""
        self.pv[name].write(payload(text), wait=True, data_type=ChannelType.CHAR,
                            timeout=timeout)

    def close(self) -> None:
        self.ctx.disconnect()


class TaskClient(CaClient):
    """Submits tasks (``SUBMIT``, ``RUN``) and sees them finish (``LAST:TASK_ID`` monitor)."""

    NAMES = ("SUBMIT", "RUN", "SUBMIT:STATUS", "SUBMIT:MESSAGE", "SUBMIT:TASK_ID",
             "LAST:TASK_ID", "LAST:RESULT", "LAST:DURATION", "ERROR:MESSAGE")

    def __init__(self, ioc: harness.IocProcess) -> None:
        super().__init__(ioc)
        self._cond = threading.Condition()
        self._finished: dict[str, float] = {}  # task id -> perf_counter at its monitor update
        # caproto holds callbacks weakly: the bound method lives as long as `self`,
        # and `self.sub` keeps the subscription alive.
        self.sub = self.pv["LAST:TASK_ID"].subscribe(data_type=ChannelType.STRING)
        self.sub.add_callback(self._on_last)

    def _on_last(self, sub: Any, response: Any) -> None:
        t = time.perf_counter()
        task_id = response.data[0].decode("utf-8")
        with self._cond:
            self._finished.setdefault(task_id, t)
            self._cond.notify_all()

    def pids(self) -> list[int]:
        """The IOC process and its worker process."""
        return [self.ioc.pid, self.ioc.worker_pid()]

    def submit(self, text: str) -> str:
        """Write `text` to ``SUBMIT`` (put with completion); the accepted task id."""
        self.write_text("SUBMIT", text)
        return self.read_string("SUBMIT:TASK_ID")

    def wait_finished(self, task_id: str, timeout: float = TIMEOUT) -> float:
        """perf_counter time at which ``LAST:TASK_ID`` showed `task_id` (maybe earlier)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while task_id not in self._finished:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"task {task_id} did not finish within {timeout}s")
                self._cond.wait(remaining)
            return self._finished[task_id]

    def check_success(self, what: str) -> None:
        if (result := self.read_string("LAST:RESULT")) != "Success":
            raise RuntimeError(f"{what} ended {result}: {self.read_text('ERROR:MESSAGE')}")

    def submit_and_wait(self, text: str, timeout: float = TIMEOUT) -> tuple[float, float]:
        """(seconds from the SUBMIT write to seeing the task finish, its LAST:DURATION)."""
        t0 = time.perf_counter()
        task_id = self.submit(text)
        t1 = self.wait_finished(task_id, timeout)
        self.check_success(f"task {task_id}")
        return t1 - t0, self.read_float("LAST:DURATION")

    def run(self, text: str, timeout: float = TIMEOUT) -> float:
        """Seconds of a put with completion to ``RUN`` (raises if the task did not succeed)."""
        t0 = time.perf_counter()
        self.write_text("RUN", text, timeout)
        return time.perf_counter() - t0

    def batch(self, text: str, tasks: int, timeout: float = LONG_TIMEOUT) -> float:
        """Seconds to submit `tasks` requests back to back and see the last one finish."""
        t0 = time.perf_counter()
        for _ in range(tasks):
            self.write_text("SUBMIT", text)
        t1 = self.wait_finished(self.read_string("SUBMIT:TASK_ID"), timeout)
        self.check_success("last task of the batch")
        return t1 - t0


class PyepicsRunClient:
    """``RUN`` through libca: ``epics.PV(RUN).put(request, wait=True)``.

    pyepics turns a str put to a char waveform into its bytes plus a NUL (as
    ``epics.caput`` does).
    """

    def __init__(self, ioc: harness.IocProcess) -> None:
        import epics  # noqa: PLC0415 -- after the loopback env is in os.environ

        self.run_pv = epics.PV(ioc.pv("RUN"), auto_monitor=False)
        if not self.run_pv.wait_for_connection(timeout=TIMEOUT):
            raise TimeoutError(f"pyepics could not connect to {ioc.pv('RUN')}")

    def run(self, text: str, timeout: float = TIMEOUT) -> float:
        """Seconds of one put with completion (the caller checks LAST:RESULT)."""
        t0 = time.perf_counter()
        ret = self.run_pv.put(text, wait=True, timeout=timeout)
        elapsed = time.perf_counter() - t0
        if ret is None or ret < 0:
            raise TimeoutError(f"pyepics put to RUN did not complete within {timeout}s")
        return elapsed

    def close(self) -> None:
        """Disconnect the PV (libca's context lives on: `finalize`)."""
        self.run_pv.disconnect()

    @staticmethod
    def finalize() -> None:
        """End libca's context (one per process, once, at the end), so that stopping the
        IOCs afterwards does not print a virtual-circuit warning."""
        import epics  # noqa: PLC0415

        epics.ca.finalize_libca()


# ---------------------------------------------------------------- bare RunEngine
class Bare:
    """The plans of the IOC on a bare RunEngine in this process, with the devices of
    db/devices.yaml that the benchmarks use, built by hand (same classes and kwargs)."""

    def __init__(self) -> None:
        from bluesky import RunEngine  # noqa: PLC0415
        from ophyd.sim import SynAxis, SynGauss  # noqa: PLC0415

        import plans.standard  # noqa: PLC0415

        self.plans = plans.standard
        self.RE = RunEngine(context_managers=[])
        self.motor1 = SynAxis(name="motor1", delay=0)
        self.det1 = SynGauss("det1", self.motor1, "motor1", center=0, Imax=1, sigma=1)

    def count(self, num: int = 1) -> float:
        """Seconds of ``RE(count([det1], num=num))``."""
        t0 = time.perf_counter()
        self.RE(self.plans.count([self.det1], num=num))
        return time.perf_counter() - t0

    def scan(self, num: int) -> float:
        """Seconds of ``RE(scan([det1], motor1, -1, 1, num))``."""
        t0 = time.perf_counter()
        self.RE(self.plans.scan([self.det1], self.motor1, -1, 1, num))
        return time.perf_counter() - t0

    def batch(self, tasks: int) -> float:
        """Seconds of `tasks` ``RE(count([det1], num=1))`` calls in a loop."""
        t0 = time.perf_counter()
        for _ in range(tasks):
            self.RE(self.plans.count([self.det1], num=1))
        return time.perf_counter() - t0


def settle(pids: Sequence[int], window: float = 0.1, timeout: float = 30.0) -> float:
    """Wait until none of `pids` used more than one clock tick of CPU in `window` seconds
    (bounded by `timeout`); the seconds waited. Keeps one side's leftover work (an IOC
    still sending monitor updates) from running during the other side's timing."""
    t0 = time.monotonic()
    tick = 1.0 / CLK_TCK
    before = [cpu_seconds(pid) for pid in pids]
    while time.monotonic() - t0 < timeout:
        time.sleep(window)
        after = [cpu_seconds(pid) for pid in pids]
        if all(a - b <= tick + 1e-9 for a, b in zip(after, before)):
            break
        before = after
    return time.monotonic() - t0


class Metered:
    """A timed callable that also adds up what each call cost in CPU: in the processes
    `pids` (with `tail`: including their leftover work after the call, until they are
    quiet again, see `settle`) and in this process (`time.process_time`)."""

    def __init__(self, fn: Callable[[], float], pids: Sequence[int] = (),
                 tail: bool = False) -> None:
        self.fn, self.pids, self.tail = fn, list(pids), tail
        self.reset()

    def reset(self) -> None:
        self.calls = 0
        self.cpu = [0.0] * len(self.pids)
        self.own = 0.0
        self.tails: list[float] = []

    def __call__(self) -> float:
        c0 = [cpu_seconds(pid) for pid in self.pids]
        o0 = time.process_time()
        elapsed = self.fn()
        self.own += time.process_time() - o0
        if self.tail:
            self.tails.append(settle(self.pids))
        self.cpu = [a + cpu_seconds(pid) - b for a, pid, b in zip(self.cpu, self.pids, c0)]
        self.calls += 1
        return elapsed

    def per_call_ms(self, names: Sequence[str] = ()) -> dict[str, float]:
        """CPU ms per call: {name of each pid: ..., "this_process": ...}."""
        n = max(self.calls, 1)
        out = {name: cpu * 1e3 / n for name, cpu in zip(names, self.cpu)}
        out["this_process"] = self.own * 1e3 / n
        return out


# ---------------------------------------------------------------- statistics
def interleave(fns: Sequence[Callable[[], float]], n: int,
               quiet: Callable[[], Sequence[int]] | None = None) -> list[list[float]]:
    """Run fns[0], fns[1], ..., fns[0], fns[1], ... `n` rounds; each one's timings.
    With `quiet`, waits before each run until the processes it names are idle (settle)."""
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for xs, fn in zip(out, fns):
            if quiet is not None:
                settle(quiet())
            xs.append(fn())
    return out


def summary(xs: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """Median, min, max (times `scale`, e.g. 1e3 for ms)."""
    return {"median": statistics.median(xs) * scale, "min": min(xs) * scale,
            "max": max(xs) * scale, "n": len(xs)}


@dataclass
class Figure:
    """One row of the table: our figure, the bare one, and the target.

    `target` is ``("ratio<=", x)``, ``("ratio>=", x)``, ``("<", x)`` (on ours, in its
    unit) or ``None`` (shown for information). `capped`: ours stopped at a cap, its figure
    is a lower bound (shown as ``> x``; met only if even that bound says so).
    """

    key: str
    label: str
    unit: str
    ours: float
    bare: float | None
    target: tuple[str, float] | None
    n: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    capped: bool = False

    @property
    def ratio(self) -> float | None:
        if self.bare is None or self.bare == 0:
            return None
        return self.ours / self.bare

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        op, x = self.target
        if op == "<":
            met = self.ours < x
        elif self.ratio is None:
            return None
        else:
            met = self.ratio <= x if op == "ratio<=" else self.ratio >= x
        if self.capped and met and op != "ratio>=":
            return None  # below the cap: it might still be met
        return met

    def target_text(self) -> str:
        if self.target is None:
            return "-"
        op, x = self.target
        if op == "<":
            return f"< {x:g} {self.unit}"
        return f"{op[5:]} {x:g}x"

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "unit": self.unit, "ours": self.ours, "bare": self.bare,
                "ratio": self.ratio, "target": self.target_text(), "met": self.met,
                "n": self.n, "capped": self.capped, **self.extra}


def table(figures: Sequence[Figure]) -> str:
    """benchmark | ours | bare | ratio | target | met?"""
    def num(x: float | None, unit: str) -> str:
        if x is None:
            return "-"
        return f"{x:.3g} {unit}" if abs(x) < 100 else f"{x:.0f} {unit}"

    rows = [("benchmark", "ours", "bare", "ratio", "target", "met?")]
    for f in figures:
        met = ("?" if f.capped else "-") if f.met is None else ("yes" if f.met else "NO")
        more = "> " if f.capped else ""
        ratio = "-" if f.ratio is None else f"{more}{f.ratio:.2f}x"
        label = f"{f.label} [{f.n}]" if f.n else f.label
        rows.append((label, more + num(f.ours, f.unit), num(f.bare, f.unit), ratio,
                     f.target_text(), met))
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    lines = [" | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(r, widths))) for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def write_json(path: str | Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
