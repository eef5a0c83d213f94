"""pvAccess and the IOC's options: access security refuses a pvAccess write (and the put log
says so), permissions apply to it with the peer's account; `--no-pva` serves Channel Access
only.
"""

from __future__ import annotations

import getpass
import json
import re

from tests.integration.harness import caget_str, run_ca
from tests.integration.ioc_client import pvput, pvput_request, request
from tests.integration.who import acf, start_with_acf


def test_access_security_refuses_a_pvput_and_logs_it(ioc_factory, tmp_path):
    ioc = start_with_acf(ioc_factory, tmp_path, "somebody_else")
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


VISITORS_COUNT = """\
user_groups:
  visitors:
    allowed_plans: [count]
    allowed_devices: [det1]
"""


def test_permissions_apply_to_a_pvput_as_to_a_ca_write(ioc_factory, tmp_path):
    me = getpass.getuser()  # what pvput sends as its account
    (tmp_path / "ioc.acf").write_text(acf("nobody_here", me))
    (tmp_path / "permissions.yaml").write_text(VISITORS_COUNT)
    ioc = ioc_factory("--acf", tmp_path / "ioc.acf", "--permissions", tmp_path / "permissions.yaml",
                      "--state-dir", tmp_path / "state")
    refused = pvput_request(ioc, "SUBMIT", request("sleep", seconds=1))
    assert refused.returncode != 0
    assert f"user '{me}' (group visitors) may not run plan 'sleep'" in refused.stderr
    device = pvput_request(ioc, "SUBMIT", request("count", detectors=["det2"]))
    assert f"user '{me}' (group visitors) may not use device 'det2' (params.detectors.0)" in device.stderr
    accepted = pvput_request(ioc, "RUN", request("count", detectors=["det1"]))
    assert accepted.returncode == 0, accepted.stderr
    history = json.loads(caget_str(ioc.pv("HISTORY")))
    assert (history[0]["user"], history[0]["host"], history[0]["user_group"]) == (me, "127.0.0.1", "visitors")
