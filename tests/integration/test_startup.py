"""Start-up as an operator sees it: --help, --version, a quiet log."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version

from tests.integration.harness import REPO_ROOT, free_port, process_env, run_ca, wait_for


def ioc_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ioc", *args], cwd=REPO_ROOT, env=process_env(),
                          capture_output=True, text=True, timeout=60)


def test_help_names_the_program_and_the_prefix_default() -> None:
    proc = ioc_cli("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: python -m ioc")
    assert "prefix of every PV name (default: BLUESKY:)" in proc.stdout
    for option in ("--halt-timeout", "--shutdown-timeout", "--version"):
        assert option in proc.stdout


def test_version() -> None:
    proc = ioc_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"python -m ioc {version('bluesky-ioc')}"


def test_no_tracebacks_without_a_repeater_and_clients_are_not_logged(ioc_factory, ca_context, tmp_path):
    nobody = str(free_port())  # beacons go where no caRepeater listens
    ioc = ioc_factory("--state-dir", tmp_path, env={"EPICS_CAS_BEACON_PORT": nobody})
    for _ in range(3):
        assert run_ca("caget", ioc.pv("HEARTBEAT")).returncode == 0
    wait_for(lambda: int(run_ca("caget", "-t", ioc.pv("HEARTBEAT")).stdout) >= 3)
    log = ioc.log_text()
    assert "Traceback" not in log, log
    assert log.count("cannot send beacons") == 1, log  # said once, in one line
    assert "Connected to new client" not in log and "Disconnected from client" not in log
