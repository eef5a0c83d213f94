"""Separate virtual environments for the peer systems (not project dependencies).

Each peer gets its own venv under ``~/.cache/bluesky-ioc-bench/`` (override with
``BLUESKY_IOC_BENCH_CACHE``), built with the bench's own Python (3.11) and plain pip
from PyPI. A venv is reused when its marker file records the same requirement list;
otherwise it is rebuilt. Redis comes from Debian (``apt-get install redis-server``).

    python -m bench.peers.envs [blueapi|queueserver|redis ...]   # build what is missing
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(os.environ.get("BLUESKY_IOC_BENCH_CACHE", Path.home() / ".cache" / "bluesky-ioc-bench"))

# Requirement lists. blueapi: the newest release pip resolves on this Python;
# ophyd is added because the shared devices are ophyd.sim's det and motor.
REQUIREMENTS: dict[str, list[str]] = {
    "blueapi": ["blueapi", "ophyd"],
    "queueserver": ["bluesky-queueserver==0.0.25", "bluesky-queueserver-api", "ophyd"],
}
INSTALL_TIMEOUT = 1500.0  # seconds for one pip install


class Unavailable(RuntimeError):
    """A peer (or what it needs) cannot be installed or started; str() says why."""


def base_python() -> str:
    """The interpreter the venvs are made from (the base of the bench's venv)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def venv_dir(name: str) -> Path:
    return CACHE / name


def venv_python(name: str) -> Path:
    return venv_dir(name) / "bin" / "python"


def venv_bin(name: str, script: str) -> Path:
    return venv_dir(name) / "bin" / script


def _marker(name: str) -> Path:
    return venv_dir(name) / "bench-peer.json"


def _tail(text: str, lines: int = 4) -> str:
    kept = [line.strip()[:240] for line in text.strip().splitlines() if not line.startswith("WARNING")]
    return " | ".join(kept[-lines:])


def ensure_venv(name: str, log=lambda m: print(f"[peers] {m}")) -> Path:
    """Build (or reuse) the venv of peer ``name``; return its python. Raises Unavailable."""
    reqs = REQUIREMENTS[name]
    marker = _marker(name)
    if marker.exists() and venv_python(name).exists():
        try:
            if json.loads(marker.read_text()).get("requirements") == reqs:
                return venv_python(name)
        except (OSError, ValueError):
            pass
    vdir = venv_dir(name)
    if vdir.exists():
        shutil.rmtree(vdir)
    vdir.parent.mkdir(parents=True, exist_ok=True)
    log(f"building venv {vdir} ({' '.join(reqs)}); the first build takes minutes")
    t0 = time.monotonic()
    proc = subprocess.run([base_python(), "-m", "venv", str(vdir)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Unavailable(f"cannot create venv: {_tail(proc.stderr)}")
    py = str(venv_python(name))
    cmd = [py, "-m", "pip", "install", "--quiet", "--upgrade", "pip"]
    subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    cmd = [py, "-m", "pip", "install", "--quiet", *reqs]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise Unavailable(f"pip install {' '.join(reqs)} timed out after {INSTALL_TIMEOUT:.0f} s")
    if proc.returncode != 0:
        raise Unavailable(f"pip install {' '.join(reqs)} failed: {_tail(proc.stderr)}")
    freeze = subprocess.run([py, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    marker.write_text(json.dumps({"requirements": reqs, "freeze": freeze.splitlines()}, indent=1))
    log(f"venv {name} ready in {time.monotonic() - t0:.0f} s")
    return venv_python(name)


def installed_version(name: str, dist: str) -> str:
    """Version of distribution ``dist`` in peer venv ``name`` (from the marker's freeze)."""
    try:
        for line in json.loads(_marker(name).read_text())["freeze"]:
            pkg, _, ver = line.partition("==")
            if pkg.lower().replace("_", "-") == dist.lower().replace("_", "-"):
                return ver
    except (OSError, ValueError, KeyError):
        pass
    return "?"


def ensure_redis(log=lambda m: print(f"[peers] {m}")) -> str:
    """Path of ``redis-server``; installs Debian's package (as root) when missing."""
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable("redis-server is not installed (Debian package redis-server; needs root)")
    log("installing Debian package redis-server")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "redis-server"]):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
        except subprocess.TimeoutExpired:
            raise Unavailable(f"{' '.join(cmd)} timed out")
        if proc.returncode != 0:
            raise Unavailable(f"{' '.join(cmd)} failed: {_tail(proc.stderr or proc.stdout)}")
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        raise Unavailable("redis-server still missing after apt-get install")
    return found


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or ["blueapi", "queueserver", "redis"]
    status = 0
    for name in names:
        try:
            print(name, ensure_redis() if name == "redis" else ensure_venv(name))
        except Unavailable as exc:
            print(f"{name}: unavailable: {exc}")
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
