"""Who did what: the writer of every request and command (two Unix users writing with the
real C caput and with pyepics), per-group permissions, and the put log.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from caproto.threading.client import Context

from ioc.service.runstore import read_run
from tests.integration.harness import ca_read_text, ca_write, ca_write_text, caget_str, wait_for
from tests.integration.ioc_client import SAMPLE_PLANS, Camonitor, read_json, request, wait_finished
from tests.integration.who import (
    acf,
    caput_as,
    needs_root,
    pyepics_put_as,
    refused_as,
    submit_as,
    task_id_of,
    unix_users,
)

pytestmark = needs_root

PERMISSIONS = """\
user_groups:
  root:
    allowed_plans: [null]
    forbidden_plans: [":^fail$"]        # root filter: nobody runs the sample plan 'fail'
    allowed_devices: [null]
    forbidden_devices: [det3]           # root filter: nobody uses det3
  staff:
    allowed_plans: [null]
    allowed_devices: [null]
  visitors:
    allowed_plans: [count, sleep, ":scan$"]
    forbidden_plans: [grid_scan]
    allowed_devices: [":^det", motor2]
    forbidden_devices: [det2]
"""


@pytest.fixture(scope="module")
def users() -> Iterator[list[str]]:
    with unix_users(2) as names:
        yield names


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("who-state")


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, users, state_dir):
    alice, bob = users
    (state_dir / "ioc.acf").write_text(acf(f"{alice}, sally", f"{bob}, vera"))
    (state_dir / "permissions.yaml").write_text(PERMISSIONS)
    return module_ioc_factory(
        "--acf", state_dir / "ioc.acf", "--permissions", state_dir / "permissions.yaml",
        "--state-dir", state_dir, "--continue-on-error", *SAMPLE_PLANS,
    )


@pytest.fixture(scope="module")
def claims() -> Iterator[dict[str, Context]]:
    """caproto clients claiming a user name each (names are claims, as in EPICS)."""
    contexts = {name: Context(timeout=5, client_name=name, host_name="opi7")
                for name in ("sally", "vera", "carol")}
    yield contexts
    for context in contexts.values():
        context.disconnect()


def history_entry(ca_context, ioc, task_id: str) -> dict:
    [entry] = [item for item in read_json(ca_context, ioc, "HISTORY") if item["task_id"] == task_id]
    return entry


def test_caput_and_pyepics_writers_are_recorded_everywhere(ioc, users, state_dir, ca_context):
    alice, bob = users
    host = socket.gethostname()
    events = Camonitor(ioc.pv("EVENT"))
    try:
        ca_write(ca_context, ioc.pv("QUEUE:ENABLE"), 0)  # Hold: read the queued item first
        proc = caput_as(alice, ioc.pv("SUBMIT"), request("count", detectors=["det1"], num=2))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        first = task_id_of(caget_str(ioc.pv("SUBMIT:MESSAGE")))
        proc = pyepics_put_as(bob, ioc.pv("SUBMIT"), request("count", detectors=["det1"]))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        second = task_id_of(caget_str(ioc.pv("SUBMIT:MESSAGE")))
        queued = {item["task_id"]: item for item in read_json(ca_context, ioc, "QUEUE")}
        assert {k: queued[first][k] for k in ("user", "host", "user_group")} == {
            "user": alice, "host": host, "user_group": "staff"}
        assert {k: queued[second][k] for k in ("user", "host", "user_group")} == {
            "user": bob, "host": host, "user_group": "visitors"}
        ca_write(ca_context, ioc.pv("QUEUE:ENABLE"), 1)
        wait_finished(ca_context, ioc, second)
        entry = history_entry(ca_context, ioc, first)
        assert (entry["user"], entry["host"], entry["user_group"], entry["ended_by"]) == (alice, host, "staff", None)
        start = read_run(state_dir / "runs", entry["run_uids"][0])[0][1]
        assert (start["user"], start["user_host"], start["user_group"]) == (alice, host, "staff")
        wait_for(lambda: any(e.get("task_id") == second and e["type"] == "task_finished"
                             for e in events.json_values()), 10, message="task_finished EVENT")
        about = {(e["type"], e["task_id"]): e["user"] for e in events.json_values() if e["task_id"]}
        assert about[("task_submitted", first)] == alice and about[("task_finished", first)] == alice
        assert about[("task_started", second)] == bob and about[("task_finished", second)] == bob
    finally:
        events.stop()


def test_ended_by_names_who_aborted_another_users_task(ioc, users, ca_context):
    alice, bob = users
    host = socket.gethostname()
    proc = caput_as(alice, ioc.pv("SUBMIT"), request("sleep", seconds=60))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    task_id = task_id_of(caget_str(ioc.pv("SUBMIT:MESSAGE")))
    wait_for(lambda: ca_read_text(ca_context, ioc.pv("CURRENT:TASK_ID")) == task_id, 30, message="started")
    proc = caput_as(bob, ioc.pv("ABORT"), "1", text=False, completion=True, wait=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert wait_finished(ca_context, ioc, task_id) == "Aborted"
    entry = history_entry(ca_context, ioc, task_id)
    assert (entry["user"], entry["ended_by"]) == (alice, f"{bob}@{host}")
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == f"{task_id}: Aborted: aborted by {bob}@{host}"


@pytest.mark.parametrize(
    ("user", "text", "refusal"),
    [
        ("vera", request("mv", motor="motor2", position=1),
         "user 'vera' (group visitors) may not run plan 'mv'"),  # not in the allowed list
        ("vera", request("grid_scan", detectors=["det1"], motor1="motor2", start1=0, stop1=1, num1=2,
                         motor2="motor2", start2=0, stop2=1, num2=2),
         "user 'vera' (group visitors) may not run plan 'grid_scan'"),  # allowed by ':scan$', forbidden
        ("vera", request("scan", detectors=["det1"], motor="motor1", start=0, stop=1, num=2),
         "user 'vera' (group visitors) may not use device 'motor1' (params.motor)"),  # not allowed
        ("vera", request("count", detectors=["det1", "det2"]),
         "user 'vera' (group visitors) may not use device 'det2' (params.detectors.1)"),  # forbidden
        ("vera", request("count", detectors=["det1", "det2.val"]),
         "user 'vera' (group visitors) may not use device 'det2.val' (params.detectors.1)"),  # a part
        ("sally", request("fail"), "user 'sally' (group staff) may not run plan 'fail'"),  # root filter
        ("sally", request("count", detectors=["det3"]),
         "user 'sally' (group staff) may not use device 'det3' (params.detectors.0)"),  # root filter
        ("carol", request("count", detectors=["det1"]),
         "user 'carol' is in no group of the permissions file, and it has no 'default' group:"
         " every request of theirs is refused"),
    ],
    ids=["plan-not-allowed", "plan-forbidden", "device-not-allowed", "device-forbidden", "sub-device",
         "root-plan", "root-device", "no-group"],
)
def test_a_request_is_refused_naming_the_rule(ioc, claims, user, text, refusal):
    refused_as(claims[user], ioc, text, refusal)
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == f"SUBMIT: PermissionRefused: {refusal}"


def test_the_same_requests_pass_where_the_rules_allow(ioc, claims, ca_context):
    for user, text in [
        ("vera", request("scan", detectors=["det1"], motor="motor2", start=0, stop=1, num=2)),  # regex
        ("vera", request("count", detectors=["det1", "det1.val"])),
        ("sally", request("mv", motor="motor1", position=0)),
    ]:
        status, message = submit_as(claims[user], ioc, text)
        assert status == "Accepted", message
        wait_finished(ca_context, ioc, task_id_of(message))


def test_the_put_log_has_a_line_per_write_accepted_or_refused(ioc, claims, state_dir):
    refused_as(claims["vera"], ioc, request("mv", motor="motor2", position=1),
               "user 'vera' (group visitors) may not run plan 'mv'")
    submit_as(claims["sally"], ioc, request("sleep", seconds=0))
    ca_write_text(claims["sally"], ioc.pv("QUEUE:REMOVE"), "nothing-pending", wait=False)  # refused
    put_log = state_dir / "put.log"
    wait_for(lambda: "new=nothing-pending refused=" in put_log.read_text(), 10, message="REMOVE logged")
    lines = put_log.read_text().splitlines()
    date_time = r"\d\d-[A-Z][a-z]{2}-\d\d \d\d:\d\d:\d\d"
    refused = [line for line in lines if "opi7 vera" in line and "refused=" in line]
    assert re.fullmatch(
        rf"{date_time} opi7 vera {re.escape(ioc.pv('SUBMIT'))} new=\{{\"name\": \"mv\".{{0,190}} "
        r"refused=user 'vera' \(group visitors\) may not run plan 'mv'", refused[-1]), refused[-1]
    accepted = [line for line in lines if f"opi7 sally {ioc.pv('SUBMIT')} new=" in line and "sleep" in line]
    assert re.search(r" old=\{.*\}$", accepted[-1]), accepted[-1]
    assert any(re.search(rf"opi7 sally {re.escape(ioc.pv('QUEUE:REMOVE'))} new=nothing-pending refused=", line)
               for line in lines)
    assert any(re.search(rf"{re.escape(ioc.pv('ABORT'))} new=Abort old=Done$", line) for line in lines)
    assert any(re.search(rf"{re.escape(ioc.pv('QUEUE:ENABLE'))} new=Hold old=Run$", line) for line in lines)


def test_a_long_value_is_cut_in_the_put_log(ioc, claims, state_dir):
    text = json.dumps({"name": "count", "params": {"detectors": ["det1"]}, "metadata": {"note": "x" * 500}})
    status, _ = submit_as(claims["sally"], ioc, text)
    assert status == "Accepted"
    [line] = [line for line in (state_dir / "put.log").read_text().splitlines() if "x" * 100 in line]
    new = line.split(" new=", 1)[1].split(" old=", 1)[0]
    assert len(new) == 200 and new.endswith("...")

