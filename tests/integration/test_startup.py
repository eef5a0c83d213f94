"""Start-up as an operator sees it: --help, --version, a quiet log."""

from __future__ import annotations

import re
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


READ_ENVIRONMENT = re.compile(r"""(?:os\.environ\.get|os\.environ\[|os\.getenv)\(?\s*["']([A-Z0-9_]+)["']""")
EPICS_VARIABLES = ("EPICS_CAS_SERVER_PORT", "EPICS_CAS_INTF_ADDR_LIST", "EPICS_CAS_BEACON_PORT",
                   "EPICS_CA_ADDR_LIST", "EPICS_CA_MAX_ARRAY_BYTES")


def test_help_and_the_deploy_guide_name_every_environment_variable_the_code_reads() -> None:
    sources = [path for package in ("ioc", "plans", "beamline") for path in (REPO_ROOT / package).rglob("*.py")]
    read = {name for path in sources for name in READ_ENVIRONMENT.findall(path.read_text())}
    assert {"BLUESKY_IOC_MAX_POINTS", "TILED_API_KEY"} <= read  # the pattern finds them
    help_text = ioc_cli("--help").stdout
    guide = (REPO_ROOT / "docs" / "deploy.md").read_text()
    for name in sorted(read | set(EPICS_VARIABLES)):
        assert name in help_text, f"--help does not name {name}"
        assert name in guide, f"docs/deploy.md does not name {name}"
