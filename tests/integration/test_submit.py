"""SUBMIT end to end: every standard plan runs, failures are reported, the queue keeps order."""

from __future__ import annotations

import json

import pytest

from tests.integration.harness import (
    CA_TIMEOUT,
    ca_read_text,
    ca_read_value,
    caget_str,
    caput_text,
    pyepics_get_text,
    run_ca,
    wait_for,
)
from tests.integration.ioc_client import (
    SAMPLE_PLANS,
    read_json,
    request,
    submit,
    wait_finished,
)

DEFAULT_ARRAY_BYTES = {"EPICS_CA_MAX_ARRAY_BYTES": "16384"}

STANDARD_PLANS = {
    "count": request("count", detectors=["det1", "det2"], num=3),
    "scan": request("scan", detectors=["det1"], motor="motor1", start=-1, stop=1, num=5),
    "rel_scan": request("rel_scan", detectors=["det1"], motor="motor1", start=-1, stop=1, num=3),
    "list_scan": request("list_scan", detectors=["det3"], motor="motor2", points=[0, 0.5, 2]),
    "grid_scan": request(
        "grid_scan", detectors=["det3"], motor1="motor1", start1=-1, stop1=1, num1=3,
        motor2="motor2", start2=-1, stop2=1, num2=2,
    ),
    "rel_grid_scan": request(
        "rel_grid_scan", detectors=["det3"], motor1="motor1", start1=-1, stop1=1, num1=2,
        motor2="motor2", start2=-1, stop2=1, num2=2, snake_axes=True,
    ),
    "mv": request("mv", motor="motor1", position=0.5),
    "mvr": request("mvr", motor="motor2", distance=-0.25),
    "sleep": request("sleep", seconds=0.05),
}
STUBS = {"mv", "mvr", "sleep"}


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    return module_ioc_factory(*SAMPLE_PLANS, "--continue-on-error", "--state-dir", state)


@pytest.mark.parametrize("plan", sorted(STANDARD_PLANS))
def test_every_standard_plan_runs_to_success(ioc, ca_context, plan):
    task_id = submit(ca_context, ioc, STANDARD_PLANS[plan])
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    assert ca_read_text(ca_context, ioc.pv("LAST:PLAN")) == plan
    run_uids = read_json(ca_context, ioc, "LAST:RUN_UIDS")
    assert len(run_uids) == (0 if plan in STUBS else 1)
    assert ca_read_text(ca_context, ioc.pv("STATE")) == "IDLE"


def test_c_tools_submit_and_read_back(ioc, ca_context):
    """The issue's own commands: caput -S, then caget / caget -S."""
    proc = caput_text(ioc.pv("SUBMIT"), STANDARD_PLANS["scan"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Accepted"
    message = caget_str(ioc.pv("SUBMIT:MESSAGE"))
    task_id = message.removeprefix("accepted as task ")
    assert caget_str(ioc.pv("SUBMIT:TASK_ID")) == task_id
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    assert caget_str(ioc.pv("LAST:RESULT")) == "Success"
    (uid,) = json.loads(caget_str(ioc.pv("LAST:RUN_UIDS")))
    assert len(uid) == 36
    names = {plan["name"] for plan in json.loads(caget_str(ioc.pv("PLANS")))}
    assert set(STANDARD_PLANS) <= names


def test_pyepics_submits_and_reads(ioc, ca_context):
    import epics

    assert epics.caput(ioc.pv("SUBMIT"), request("count", detectors=["det1"]), wait=True, timeout=CA_TIMEOUT)
    assert pyepics_get_text(ioc.pv("SUBMIT:STATUS")) == "Accepted"
    task_id = pyepics_get_text(ioc.pv("SUBMIT:TASK_ID"))
    assert pyepics_get_text(ioc.pv("SUBMIT:MESSAGE")) == f"accepted as task {task_id}"
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    assert pyepics_get_text(ioc.pv("LAST:TASK_ID")) == task_id
    assert pyepics_get_text(ioc.pv("STATUS")).startswith("idle")


def test_run_start_carries_ids_and_metadata_into_the_history_of_runs(ioc, ca_context):
    text = json.dumps(
        {"name": "count", "params": {"detectors": ["det1"]}, "correlation_id": "beamtime-42",
         "metadata": {"sample": "Si"}}
    )
    task_id = submit(ca_context, ioc, text)
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    assert ca_read_text(ca_context, ioc.pv("LAST:CORRELATION_ID")) == "beamtime-42"
    plain = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert wait_finished(ca_context, ioc, plain) == "Success"
    assert ca_read_text(ca_context, ioc.pv("LAST:CORRELATION_ID")) == plain


def test_a_failing_plan_is_reported_and_the_next_task_runs(ioc, ca_context):
    errors_before = ca_read_value(ca_context, ioc.pv("ERROR:COUNT"))
    task_id = submit(ca_context, ioc, request("fail", message="the sample moved"))
    assert wait_finished(ca_context, ioc, task_id) == "Failed"
    assert ca_read_text(ca_context, ioc.pv("ERROR:MESSAGE")) == f"{task_id}: ValueError: the sample moved"
    assert caget_str(ioc.pv("ERROR:ACTIVE")) == "Yes"
    assert caget_str(ioc.pv("ERROR:ACTIVE.SEVR")) == "MAJOR"
    assert caget_str(ioc.pv("STATUS.SEVR")) == "MAJOR"
    assert "the sample moved" in caget_str(ioc.pv("STATUS"))
    assert ca_read_value(ca_context, ioc.pv("ERROR:COUNT")) == errors_before + 1

    next_id = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert wait_finished(ca_context, ioc, next_id) == "Success"
    assert caget_str(ioc.pv("ERROR:ACTIVE")) == "No"
    assert caget_str(ioc.pv("ERROR:ACTIVE.SEVR")) == "NO_ALARM"


def test_error_clear_acknowledges(ioc, ca_context):
    task_id = submit(ca_context, ioc, request("fail"))
    assert wait_finished(ca_context, ioc, task_id) == "Failed"
    assert caget_str(ioc.pv("ERROR:ACTIVE")) == "Yes"
    assert run_ca("caput", ioc.pv("ERROR:CLEAR"), "1").returncode == 0
    wait_for(lambda: caget_str(ioc.pv("ERROR:ACTIVE")) == "No")
    assert caget_str(ioc.pv("STATUS.SEVR")) == "NO_ALARM"


def test_queued_tasks_show_and_run_in_order(ioc, ca_context):
    finished: list[str] = []
    (last,) = ca_context.get_pvs(ioc.pv("LAST:CORRELATION_ID"))
    subscription = last.subscribe()

    def record(sub, response) -> None:  # caproto keeps only a weak reference: name it
        finished.append(response.data[0].decode())

    subscription.add_callback(record)
    try:
        blocker = json.dumps({"name": "sleep", "params": {"seconds": 1.0}, "correlation_id": "blocker"})
        submit(ca_context, ioc, blocker)
        wait_for(lambda: ca_read_text(ca_context, ioc.pv("STATE")) == "RUNNING")
        ids = [f"order-{n}" for n in range(3)]
        for correlation_id in ids:
            text = json.dumps({"name": "count", "params": {"detectors": ["det1"]}, "correlation_id": correlation_id})
            submit(ca_context, ioc, text)
        pending = json.loads(caget_str(ioc.pv("QUEUE"), env=DEFAULT_ARRAY_BYTES))
        assert [task["correlation_id"] for task in pending] == ids
        assert ca_read_value(ca_context, ioc.pv("QUEUE:COUNT")) == 3
        assert set(pending[0]) == {"task_id", "name", "params", "correlation_id", "submitted",
                                   "user", "host", "user_group"}
        wait_for(lambda: finished[-1:] == ids[-1:], message=f"finished {finished}")
        assert [cid for cid in finished if cid in ids + ["blocker"]] == ["blocker", *ids], finished
    finally:
        subscription.clear()


def test_text_pvs_read_at_default_max_array_bytes(ioc, ca_context):
    for name in ("SUBMIT:MESSAGE", "STATUS", "QUEUE", "ERROR:MESSAGE", "LAST:RUN_UIDS"):
        proc = run_ca("caget", "-S", ioc.pv(name), env=DEFAULT_ARRAY_BYTES)
        assert proc.returncode == 0, f"{name}: {proc.stdout}{proc.stderr}"


def test_a_15_kB_request_is_accepted(ioc, ca_context):
    points = [round(0.001 * n, 3) for n in range(2200)]
    text = request("list_scan", detectors=["det1"], motor="motor1", points=points)
    assert 14_000 < len(text) < 16_000
    proc = caput_text(ioc.pv("SUBMIT"), text)
    assert proc.returncode == 0, proc.stderr
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Accepted"
    task_id = caget_str(ioc.pv("SUBMIT:TASK_ID"))
    assert wait_finished(ca_context, ioc, task_id) == "Success"
