"""scripts/ensure-env.sh says what it installs on a first run (with a stand-in python)."""

import os
import shutil
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# A python that makes a venv of itself and whose pip installs nothing.
FAKE_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
    mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
fi
exit 0
"""


def test_a_first_run_says_what_it_installs_and_a_second_says_nothing(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "ensure-env.sh", tmp_path / "scripts")
    (tmp_path / "pyproject.toml").write_text("")
    python = tmp_path / "python3"
    python.write_text(FAKE_PYTHON)
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PYTHON": str(python)}

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(tmp_path / "scripts" / "ensure-env.sh")], env=env,
                              capture_output=True, text=True, timeout=60, check=True)

    first = run()
    assert "first run" in first.stderr and "installing bluesky-ioc" in first.stderr
    assert "installed in" in first.stderr
    assert first.stdout.strip() == str(tmp_path / ".venv" / "bin" / "python")
    assert run().stderr == ""
