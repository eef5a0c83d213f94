"""Orchestrator of the peer comparison (standard library only: runs in the project venv).

For each peer: build its venv if missing (``envs.py``), run its driver script inside
that venv in a child process (own session, time-limited), read the driver's JSON. A
peer that cannot be installed or started, or whose driver fails, comes back as
``{"status": "unavailable", "reason": ...}``; nothing here raises for a peer's sake.
"""
from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from . import envs

HERE = Path(__file__).resolve().parent
PEERS = ("blueapi", "queueserver")
DRIVER_TIMEOUT = {"quick": 900.0, "full": 2700.0}  # s for one driver run (servers included)


def _log(msg: str) -> None:
    print(f"[peers] {msg}", file=sys.stderr, flush=True)


def _kill_leftovers(work: Path) -> list[str]:
    """SIGKILL the process groups a driver recorded in pids.json and left running
    (only groups whose leader still has cwd == this driver's workdir)."""
    killed = []
    try:
        entries = json.loads((work / "pids.json").read_text())
    except (OSError, ValueError):
        return killed
    for entry in entries:
        pgid = int(entry["pgid"])
        try:
            if os.readlink(f"/proc/{pgid}/cwd") != str(work):
                continue
            os.killpg(pgid, signal.SIGKILL)
            killed.append(entry["name"])
        except (OSError, ProcessLookupError):
            continue
    return killed


def _run_driver(name: str, python: Path, quick: bool) -> dict[str, Any]:
    mode = "quick" if quick else "full"
    work = Path(tempfile.mkdtemp(prefix=f"bench-peer-{name}-"))
    out = work / "result.json"
    argv = [str(python), str(HERE / f"{name}_bench.py"), "--json", str(out), "--workdir", str(work)]
    if quick:
        argv.append("--quick")
    tail: deque[str] = deque(maxlen=15)
    proc = subprocess.Popen(argv, cwd=str(HERE), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def forward() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip())
            print(f"  {line.rstrip()}", file=sys.stderr, flush=True)

    reader = threading.Thread(target=forward, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(DRIVER_TIMEOUT[mode])
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.send_signal(signal.SIGTERM)  # the driver stops its servers
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    reader.join(5)
    leftovers = _kill_leftovers(work)
    try:
        result = json.loads(out.read_text())
    except (OSError, ValueError):
        why = f"driver timed out after {DRIVER_TIMEOUT[mode]:.0f} s" if timed_out else \
            f"driver exited {proc.returncode} without a result"
        result = {"peer": name, "status": "unavailable", "reason": f"{why}: {' | '.join(list(tail)[-4:])}"}
    if timed_out and result.get("status") == "ok":
        result["status"], result["reason"] = "unavailable", f"driver timed out after {DRIVER_TIMEOUT[mode]:.0f} s"
    result["workdir"] = str(work)
    if leftovers:
        result["killed_leftovers"] = leftovers
    return result


def run_peer(name: str, quick: bool) -> dict[str, Any]:
    t0 = time.monotonic()
    try:
        python = envs.ensure_venv(name, log=_log)
        if name == "queueserver":
            envs.ensure_redis(log=_log)
    except envs.Unavailable as exc:
        return {"peer": name, "status": "unavailable", "reason": f"cannot install: {exc}"}
    except Exception as exc:  # noqa: BLE001
        return {"peer": name, "status": "unavailable", "reason": f"cannot install: {type(exc).__name__}: {exc}"}
    _log(f"running {name} ({'quick' if quick else 'full'})")
    try:
        result = _run_driver(name, python, quick)
    except Exception as exc:  # noqa: BLE001
        result = {"peer": name, "status": "unavailable", "reason": f"driver failed: {type(exc).__name__}: {exc}"}
    result["elapsed_s"] = time.monotonic() - t0
    return result


def run_peers(quick: bool = False, peers: tuple[str, ...] | list[str] = PEERS) -> dict[str, Any]:
    """Build what is missing, run each peer against a bare RunEngine, return the figures.

    ``{"quick": bool, "peers": {name: {"status": "ok"|"unavailable", "reason"?,
    "versions", "rows": [{"metric", "unit", "peer", "bare", "ratio", ...}], ...}}}``
    where ``ratio`` is a slowdown vs bare (> 1: the peer is slower).
    """
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    results = {name: run_peer(name, quick) for name in peers}
    return {"quick": quick, "started": started, "cache": str(envs.CACHE),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "peers": results}


def _fmt(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "s":
        return f"{value:.3g} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "tasks/s":
        return f"{value:.1f}/s"
    return f"{value:.3g} {unit}"


def format_table(result: dict[str, Any]) -> str:
    """``peer | metric | peer value | bare | ratio`` (ratio: x slower than bare)."""
    head = ("peer", "metric", "peer value", "bare", "ratio")
    lines = []
    for name, res in result["peers"].items():
        label = name
        if res.get("status") == "ok":
            ver = res.get("versions", {})
            label = f"{name} {ver.get('blueapi') or ver.get('bluesky-queueserver') or ''}".strip()
        if res.get("status") != "ok":
            reason = str(res.get("reason", "?"))
            lines.append((label, f"unavailable: {reason[:200]}{'...' if len(reason) > 200 else ''}", "", "", ""))
            continue
        for row in res.get("rows", []):
            if "error" in row:
                lines.append((label, row["metric"], f"error: {row['error']}", "", ""))
                continue
            ratio = f"{row['ratio']:.2f}x" if row.get("ratio") else ""
            lines.append((label, row["metric"], _fmt(row["peer"], row["unit"]), _fmt(row.get("bare"), row["unit"]),
                          ratio))
    widths = [max(len(str(r[i])) for r in [head, *lines]) for i in range(len(head))]
    widths[1] = min(widths[1], 34)
    out = [" | ".join(str(c).ljust(w) for c, w in zip(head, widths)).rstrip()]
    out.append("-+-".join("-" * w for w in widths))
    out += [" | ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines]
    out.append("ratio = times slower than a bare RunEngine (peer/bare for times, bare/peer for rates), "
               "same plans and ophyd.sim det/motor, interleaved in the same run")
    return "\n".join(out)
