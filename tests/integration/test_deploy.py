"""The shipped deployment files work: the systemd unit parses and its command line serves
and stops on the unit's kill signal; the procServ script runs the IOC with its console.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from ioc.service.store import StateStore
from tests.integration.harness import (
    LOOPBACK,
    REPO_ROOT,
    IocProcess,
    free_port,
    session_ports,
    wait_for,
)

DEPLOY = REPO_ROOT / "db" / "deploy"
UNIT = DEPLOY / "bluesky-ioc.service"
INSTALLED = "/opt/bluesky-ioc"  # where the unit expects the checkout


def unit_here(tmp_path: Path) -> Path:
    """The unit with this checkout in place of /opt/bluesky-ioc and its device file."""
    text = UNIT.read_text().replace(INSTALLED, str(REPO_ROOT))
    text = text.replace("/etc/bluesky-ioc/devices.yaml", str(REPO_ROOT / "db" / "devices.yaml"))
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    return unit


def setting(unit: Path, key: str) -> str:
    (value,) = [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith(f"{key}=")]
    return value


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze (apt install systemd)")
def test_the_systemd_unit_verifies(tmp_path):
    proc = subprocess.run(["systemd-analyze", "verify", str(unit_here(tmp_path))],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_the_units_command_line_serves_and_stops_on_its_kill_signal(tmp_path):
    unit = unit_here(tmp_path)
    assert (setting(unit, "KillMode"), setting(unit, "KillSignal")) == ("mixed", "SIGTERM")
    command = shlex.split(setting(unit, "ExecStart"))
    state = Path(setting(unit, "WorkingDirectory"))
    assert command[command.index("--state-dir") + 1] == str(state) == "/var/lib/bluesky-ioc"
    command[command.index("--state-dir") + 1] = str(tmp_path / "state")
    ioc = IocProcess(cwd=tmp_path, log_dir=tmp_path / "logs")
    command[command.index("--prefix") + 1] = ioc.prefix
    ioc.cmd = command
    try:
        ioc.start()
        ioc.popen.send_signal(signal.SIGTERM)  # KillMode=mixed: to the main process only
        assert ioc.wait(float(setting(unit, "TimeoutStopSec"))) == 0
        assert "INFO ioc: stopping" in ioc.log_text()
    finally:
        ioc.stop()


@pytest.mark.skipif(shutil.which("procServ") is None, reason="needs procServ (apt install procserv)")
def test_the_procserv_script_runs_the_ioc_with_its_console_log(tmp_path):
    console = free_port(exclude=session_ports())
    state, logs = tmp_path / "state", tmp_path / "log"
    ioc = IocProcess(cwd=tmp_path, log_dir=tmp_path / "logs", env={
        "CHECKOUT": str(REPO_ROOT), "STATE_DIR": str(state), "LOG_DIR": str(logs),
        "CONSOLE_PORT": str(console)})  # fmt: skip
    ioc.cmd = [str(DEPLOY / "procserv.sh"), "--prefix", ioc.prefix]
    try:
        ioc.start()
        pid = int((state / "ioc.lock").read_text())  # the IOC, procServ's child
        with socket.create_connection((LOOPBACK, console), timeout=10) as telnet:
            assert b"Welcome to procServ" in telnet.recv(4096)  # the console, on localhost
        console_log = (logs / "bluesky-ioc.log").read_text(errors="replace")
        assert f"ioc[{pid}] INFO ioc: state directory {state}: 0 pending tasks" in console_log
    finally:
        ioc.stop()
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), 30, message="the IOC outlived procServ")
    StateStore.in_directory(state).close()  # the directory is free again
