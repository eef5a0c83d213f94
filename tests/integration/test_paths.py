"""Relative paths in options are the caller's; start_ioc.sh and the console script work from
any directory, with their defaults found in the checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import REPO_ROOT, IocProcess, caget_str, process_env

BIG = {"EPICS_CA_MAX_ARRAY_BYTES": "1000000"}
CONSOLE_SCRIPT = Path(sys.executable).with_name("bluesky-ioc")
MY_DEVICES = """
my_motor:
  class: ophyd.sim.SynAxis
"""


def device_names(ioc: IocProcess) -> list[str]:
    return [device["name"] for device in json.loads(caget_str(ioc.pv("DEVICES"), env=BIG))]


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A working directory outside the checkout, with a device file of its own."""
    (tmp_path / "my.yaml").write_text(MY_DEVICES)
    return tmp_path


def started(command: list[str], cwd: Path) -> IocProcess:
    ioc = IocProcess(cwd=cwd, log_dir=cwd / "logs")
    ioc.cmd = [*command, "--prefix", ioc.prefix]
    return ioc.start()


def test_start_ioc_sh_takes_relative_paths_from_the_caller(elsewhere: Path) -> None:
    ioc = started([str(REPO_ROOT / "start_ioc.sh"), "--devices", "my.yaml", "--state-dir", "mystate"], elsewhere)
    try:
        assert device_names(ioc) == ["my_motor"]
        assert (elsewhere / "mystate" / "state.sqlite3").is_file()
        assert not (REPO_ROOT / "mystate").exists()
    finally:
        ioc.stop()


def test_the_console_script_works_from_any_directory(elsewhere: Path) -> None:
    ioc = started([str(CONSOLE_SCRIPT), "--state-dir", "mystate"], elsewhere)
    try:
        assert "motor1" in device_names(ioc)  # the default device file, found in the checkout
        assert (elsewhere / "mystate" / "state.sqlite3").is_file()
    finally:
        ioc.stop()


def test_help_of_the_console_script_names_its_defaults(elsewhere: Path) -> None:
    proc = subprocess.run([str(CONSOLE_SCRIPT), "--help"], cwd=elsewhere, env=process_env({"COLUMNS": "500"}),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: bluesky-ioc")
    assert f"(default: {REPO_ROOT / 'db' / 'devices.yaml'})" in proc.stdout
    assert f"(default: {REPO_ROOT / 'state'})" in proc.stdout
