"""Who: permissions re-read on RELOAD and checked again when a task starts; a broken file
keeps the old rules; `--client-ip-as-host` against a client that claims another host.
"""

from __future__ import annotations

import subprocess
import sys

import caproto as ca
from caproto.threading.client import Context

from tests.integration.harness import ca_write, caget_str
from tests.integration.ioc_client import command, read_json, request, wait_finished
from tests.integration.who import acf, refused_as, submit_as, task_id_of

VISITORS_COUNT = """\
user_groups:
  staff:
    allowed_plans: [null]
    allowed_devices: [null]
  visitors:
    allowed_plans: [count]
    allowed_devices: [null]
"""
VISITORS_SLEEP_AND_A_DEFAULT = """\
user_groups:
  staff:
    allowed_plans: [null]
    allowed_devices: [null]
  visitors:
    allowed_plans: [sleep]
  default:
    allowed_plans: [count]
    allowed_devices: [det1]
"""
BROKEN = "user_groups:\n  visitors:\n    allowed_plans: [count\n"


def test_reload_rereads_the_permissions_and_a_queued_task_is_checked_again(ioc_factory, tmp_path):
    (tmp_path / "ioc.acf").write_text(acf("sally", "vera"))
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text(VISITORS_COUNT)
    ioc = ioc_factory("--acf", tmp_path / "ioc.acf", "--permissions", permissions,
                      "--state-dir", tmp_path / "state")
    vera, carol = (Context(timeout=5, client_name=name) for name in ("vera", "carol"))
    try:
        ca_write(vera, ioc.pv("QUEUE:ENABLE"), 0)  # Hold
        status, message = submit_as(vera, ioc, request("count", detectors=["det1"]))
        assert status == "Accepted", message
        queued = task_id_of(message)
        no_group = "user 'carol' is in no group of the permissions file, and it has no 'default' group"
        refused_as(carol, ioc, request("count", detectors=["det1"]), f"{no_group}: every request of theirs is refused")

        permissions.write_text(BROKEN)
        assert command(ioc, "RELOAD").returncode == 1
        error = caget_str(ioc.pv("ERROR:MESSAGE"))
        assert error.startswith(f"RELOAD: CommandRefused: {permissions}:4: not valid YAML"), error
        assert error.endswith("(the old rules and worker go on)")
        refused_as(carol, ioc, request("count", detectors=["det2"]), f"{no_group}: every request of theirs is refused")

        permissions.write_text(VISITORS_SLEEP_AND_A_DEFAULT)
        assert command(ioc, "RELOAD").returncode == 0
        status, message = submit_as(carol, ioc, request("count", detectors=["det1"]))
        assert status == "Accepted", message
        assert read_json(carol, ioc, "QUEUE")[-1]["user_group"] == "default"
        refused_as(carol, ioc, request("count", detectors=["det2"]),
                   "user 'carol' (group default) may not use device 'det2' (params.detectors.0)")

        ca_write(vera, ioc.pv("QUEUE:ENABLE"), 1)  # Run: vera's count is checked again, refused
        assert wait_finished(vera, ioc, queued) == "Failed"
        [entry] = [item for item in read_json(vera, ioc, "HISTORY") if item["task_id"] == queued]
        refusal = "PermissionRefused: user 'vera' (group visitors) may not run plan 'count'"
        assert (entry["error"], entry["run_uids"]) == (refusal, [])
        assert caget_str(ioc.pv("ERROR:MESSAGE")) == f"{queued}: {refusal}"
    finally:
        vera.disconnect()
        carol.disconnect()


def test_client_ip_as_host_ignores_the_claimed_host_and_late_names(ioc_factory, tmp_path):
    ioc = ioc_factory("--client-ip-as-host", "--state-dir", tmp_path / "state")
    claimer = Context(timeout=5, client_name="alice", host_name="console-of-the-director")
    try:
        ca_write(claimer, ioc.pv("QUEUE:ENABLE"), 0)  # Hold: the tasks stay on QUEUE
        status, message = submit_as(claimer, ioc, request("count", detectors=["det1"]))
        assert status == "Accepted", message
        [pv] = claimer.get_pvs(ioc.pv("SUBMIT"))
        pv.circuit_manager.send(ca.ClientNameRequest("mallory"), ca.HostNameRequest("elsewhere"))
        status, message = submit_as(claimer, ioc, request("count", detectors=["det1"]))
        assert status == "Accepted", message
        writers = [(item["user"], item["host"]) for item in read_json(claimer, ioc, "QUEUE")]
        assert writers == [("alice", "127.0.0.1"), ("alice", "127.0.0.1")]
        put_log = (tmp_path / "state" / "put.log").read_text()
        assert f"127.0.0.1 alice {ioc.pv('SUBMIT')} new=" in put_log
        assert "mallory" not in put_log and "elsewhere" not in put_log
    finally:
        claimer.disconnect()


def test_without_the_option_the_claimed_names_are_taken(ioc_factory, tmp_path):
    ioc = ioc_factory("--state-dir", tmp_path / "state")
    claimer = Context(timeout=5, client_name="alice", host_name="ws3")
    try:
        ca_write(claimer, ioc.pv("QUEUE:ENABLE"), 0)
        status, message = submit_as(claimer, ioc, request("count", detectors=["det1"]))
        assert status == "Accepted", message
        assert [(i["user"], i["host"], i["user_group"]) for i in read_json(claimer, ioc, "QUEUE")] == [
            ("alice", "ws3", None)]
    finally:
        claimer.disconnect()


def test_permissions_need_an_acf_and_a_broken_file_stops_start_up(tmp_path):
    permissions = tmp_path / "permissions.yaml"
    permissions.write_text("user_groups:\n  staff:\n    allowed_plan: [null]\n")
    (tmp_path / "ioc.acf").write_text(acf("sally", "vera"))
    for args, exit_status, said in [
        (["--permissions", permissions], 2, "--permissions requires --acf"),
        (["--acf", tmp_path / "ioc.acf", "--permissions", permissions], 1,
         f"cannot start: {permissions}:3: group 'staff': unknown key 'allowed_plan'"),
    ]:
        proc = subprocess.run([sys.executable, "-m", "ioc", *map(str, args), "--state-dir", str(tmp_path / "state")],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == exit_status and said in proc.stderr, proc.stderr
