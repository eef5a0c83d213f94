"""--acf: writes need the CONTROL group's WRITE rule; reads follow DEFAULT."""

from __future__ import annotations

import getpass

from tests.integration.harness import caget_str, caput_text, run_ca
from tests.integration.ioc_client import request
from tests.integration.who import start_with_acf


def test_a_user_outside_the_write_rule_cannot_submit_or_clear(ioc_factory, tmp_path):
    ioc = start_with_acf(ioc_factory, tmp_path, "somebody_else")
    proc = caput_text(ioc.pv("SUBMIT"), request("count", detectors=["det1"]))
    assert proc.returncode == 1 and "Write access denied" in proc.stdout + proc.stderr
    proc = run_ca("caput", ioc.pv("ERROR:CLEAR"), "1")
    assert proc.returncode == 1 and "Write access denied" in proc.stdout + proc.stderr
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "None"
    assert caget_str(ioc.pv("QUEUE:COUNT")) == "0"
    assert caget_str(ioc.pv("LAST:RESULT")) == "None"


def test_a_listed_user_may_submit_and_read_only_pvs_stay_read_only(ioc_factory, tmp_path):
    ioc = start_with_acf(ioc_factory, tmp_path, getpass.getuser())
    proc = caput_text(ioc.pv("SUBMIT"), request("count", detectors=["det1"]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Accepted"
    proc = run_ca("caput", ioc.pv("STATE"), "1")
    assert proc.returncode == 1 and "Write access denied" in proc.stdout + proc.stderr


def test_a_broken_acf_stops_start_up_with_its_line(tmp_path):
    import subprocess
    import sys

    acf = tmp_path / "broken.acf"
    acf.write_text("ASG(DEFAULT) {\n    RULE(1, SOMETIMES)\n}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ioc", "--acf", str(acf), "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert f"{acf}:2:" in proc.stderr
