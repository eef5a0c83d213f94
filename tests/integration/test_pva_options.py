"""pvAccess and the IOC's options: access security refuses a pvAccess write (and the put log
says so); `--no-pva` serves Channel Access only.
"""

from __future__ import annotations

import getpass
import re

from tests.integration.harness import run_ca
from tests.integration.ioc_client import pvput, pvput_request, request

ACF = """
UAG(operators) {{ {users} }}
ASG(DEFAULT) {{ RULE(1, READ) }}
ASG(CONTROL) {{
    RULE(1, READ)
    RULE(1, WRITE) {{ UAG(operators) }}
}}
"""


def test_access_security_refuses_a_pvput_and_logs_it(ioc_factory, tmp_path):
    acf = tmp_path / "ioc.acf"
    acf.write_text(ACF.format(users="somebody_else"))
    ioc = ioc_factory("--acf", acf, "--state-dir", tmp_path / "state")
    proc = pvput_request(ioc, "SUBMIT", request("count", detectors=["det1"]))
    assert proc.returncode != 0 and "no write access" in proc.stderr
    assert pvput(ioc, "QUEUE:ENABLE", "Hold").returncode != 0
    assert run_ca("caget", "-t", ioc.pv("QUEUE:ENABLE")).stdout.strip() == "Run"
    assert run_ca("caget", "-t", ioc.pv("SUBMIT:STATUS")).stdout.strip() == "None"
    log = (tmp_path / "state" / "put.log").read_text()
    assert re.search(rf"127\.0\.0\.1 {getpass.getuser()} {re.escape(ioc.pv('SUBMIT'))} new=.* "
                     r"refused=no write access", log), log


def test_no_pva_serves_no_pvaccess(ioc_factory, tmp_path):
    ioc = ioc_factory("--no-pva", "--state-dir", tmp_path / "state")
    assert run_ca("caget", "-t", ioc.pv("STATE")).returncode == 0
    proc = run_ca("pvget", "-w", "2", ioc.pv("STATE"))
    assert proc.returncode != 0
    assert "pvAccess" not in ioc.log_text()
