"""Control over CA: RUN with completion, pause/resume/stop/abort/halt, queue management.

The IOC runs with --continue-on-error so that one test's failure does not hold the queue.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import time

import pytest

from tests.integration.harness import SETTLE, caget_str, caput_text, run_ca, scaled, wait_for
from tests.integration.ioc_client import (
    SAMPLE_PLANS,
    command,
    read_json,
    request,
    start_caput,
    submit,
    wait_finished,
    wait_state,
)

LONG_COUNT = request("count", detectors=["det1"], num=200, delay=0.05)  # ~10 s, a checkpoint per point
STEP_SCAN = request("scan", detectors=["det1"], motor="smotor", start=0, stop=1.0, num=6)
ME = f"{pwd.getpwuid(os.getuid()).pw_name}@{socket.gethostname()}"  # who the C tools say writes
COMMANDS = ["PAUSE", "PAUSE:DEFER", "RESUME", "STOP", "ABORT", "HALT", "ALL_IS_WELL"]


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    return module_ioc_factory(*SAMPLE_PLANS, "--continue-on-error", "--state-dir", state)


def test_run_with_caput_c_completes_when_the_task_succeeded(ioc, ca_context):
    proc = caput_text(ioc.pv("RUN"), request("sleep", seconds=0.5), completion=True, wait=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the completion came after the task ended: the outcome is already there
    assert caget_str(ioc.pv("LAST:TASK_ID")) == caget_str(ioc.pv("SUBMIT:TASK_ID"))
    assert caget_str(ioc.pv("LAST:RESULT")) == "Success"


def test_run_from_pyepics_waits_for_the_task(ioc, ca_context):
    import epics

    assert epics.caput(ioc.pv("RUN"), request("count", detectors=["det1"], num=5, delay=0.1), wait=True, timeout=SETTLE)
    assert caget_str(ioc.pv("LAST:TASK_ID")) == caget_str(ioc.pv("SUBMIT:TASK_ID"))
    assert caget_str(ioc.pv("LAST:RESULT")) == "Success"


@pytest.mark.parametrize(
    ("text", "reason_pv", "reason"),
    [
        (request("fail", message="no beam"), "ERROR:MESSAGE", "ValueError: no beam"),
        (request("nope"), "SUBMIT:MESSAGE", "name: unknown plan 'nope'"),
    ],
)
def test_run_completes_with_an_error_for_a_failed_or_refused_task(ioc, text, reason_pv, reason):
    proc = caput_text(ioc.pv("RUN"), text, completion=True, wait=30)
    assert proc.returncode == 1 and "Channel write request failed" in proc.stdout + proc.stderr
    assert reason in caget_str(ioc.pv(reason_pv))


def test_run_of_an_aborted_task_completes_with_an_error(ioc, ca_context):
    waiting = start_caput(ioc, "RUN", LONG_COUNT)
    try:
        wait_state(ca_context, ioc, "RUNNING")
        assert command(ioc, "ABORT").returncode == 0
        assert waiting.wait(30) == 1
    finally:
        waiting.kill()
    assert caget_str(ioc.pv("LAST:RESULT")) == "Aborted"
    assert caget_str(ioc.pv("ERROR:MESSAGE")).endswith(f"Aborted: aborted by {ME}")


def test_run_of_a_removed_task_completes_with_an_error(ioc, ca_context):
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Hold").returncode == 0
    waiting = start_caput(ioc, "RUN", request("count", detectors=["det1"]))
    try:
        wait_for(lambda: caget_str(ioc.pv("QUEUE:COUNT")) == "1")
        (task,) = json.loads(caget_str(ioc.pv("QUEUE")))
        assert run_ca("caput", "-c", ioc.pv("QUEUE:REMOVE"), task["task_id"]).returncode == 0
        assert waiting.wait(30) == 1
    finally:
        waiting.kill()
        run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Run")
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == f"{task['task_id']}: Removed: taken off the queue before it ran"


@pytest.mark.parametrize("pause", ["PAUSE", "PAUSE:DEFER"])
def test_pause_then_resume_a_step_scan(ioc, ca_context, pause):
    task_id = submit(ca_context, ioc, STEP_SCAN)
    wait_for(lambda: float(caget_str(ioc.pv("CURRENT:PROGRESS"))) > 0)
    assert command(ioc, pause).returncode == 0
    assert caget_str(ioc.pv("STATE")) == "PAUSED"  # the completion came once it was paused
    assert caget_str(ioc.pv("BUSY")) == "Busy"
    assert command(ioc, "RESUME").returncode == 0
    assert caget_str(ioc.pv("STATE")) in ("RUNNING", "IDLE")
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    assert len(read_json(ca_context, ioc, "LAST:RUN_UIDS")) == 1


@pytest.mark.parametrize(("end", "result"), [("STOP", "Stopped"), ("ABORT", "Aborted")])
def test_stop_and_abort_end_the_task(ioc, ca_context, end, result):
    task_id = submit(ca_context, ioc, LONG_COUNT)
    wait_state(ca_context, ioc, "RUNNING")
    assert command(ioc, end).returncode == 0
    assert caget_str(ioc.pv("BUSY")) == "Idle"
    assert wait_finished(ca_context, ioc, task_id) == result
    kind = "task_finished" if end == "STOP" else "task_failed"  # a stop is no failure
    wait_for(lambda: json.loads(caget_str(ioc.pv("EVENT")))["type"] == kind)
    assert json.loads(caget_str(ioc.pv("EVENT")))["task_id"] == task_id
    message = caget_str(ioc.pv("ERROR:MESSAGE"))
    if end == "STOP":  # a stop is no error: nothing about it on ERROR:MESSAGE
        assert task_id not in message
    else:
        assert message == f"{task_id}: Aborted: aborted by {ME}"


def test_status_shows_the_active_failure_not_a_later_refusal(ioc, ca_context):
    task_id = submit(ca_context, ioc, LONG_COUNT)
    wait_state(ca_context, ioc, "RUNNING")
    assert command(ioc, "ABORT").returncode == 0
    assert wait_finished(ca_context, ioc, task_id) == "Aborted"
    assert command(ioc, "RESUME").returncode == 1  # refused: nothing is paused
    assert caget_str(ioc.pv("ERROR:MESSAGE")).startswith("RESUME: CommandRefused: ")
    assert caget_str(ioc.pv("ERROR:ACTIVE")) == "Yes"
    status = caget_str(ioc.pv("STATUS"))
    assert status.endswith(f"; error: {task_id}: Aborted: aborted by {ME}"), status
    assert run_ca("caput", ioc.pv("ERROR:CLEAR"), 1).returncode == 0
    assert "error" not in caget_str(ioc.pv("STATUS"))


def test_progress_is_cleared_when_the_task_ends(ioc, ca_context):
    task_id = submit(ca_context, ioc, STEP_SCAN)
    wait_for(lambda: "smotor" in caget_str(ioc.pv("PROGRESS")), message="PROGRESS shows smotor")
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    wait_for(lambda: caget_str(ioc.pv("PROGRESS")) == "{}", message="PROGRESS cleared")


def test_stop_a_paused_task(ioc, ca_context):
    task_id = submit(ca_context, ioc, LONG_COUNT)
    wait_state(ca_context, ioc, "RUNNING")
    assert command(ioc, "PAUSE").returncode == 0
    assert command(ioc, "STOP").returncode == 0
    assert wait_finished(ca_context, ioc, task_id) == "Stopped"


@pytest.mark.parametrize("name", COMMANDS)
def test_a_command_that_does_not_apply_completes_with_an_error(ioc, ca_context, name):
    wait_state(ca_context, ioc, "IDLE")
    proc = command(ioc, name)
    assert proc.returncode == 1 and "Channel write request failed" in proc.stdout + proc.stderr
    assert caget_str(ioc.pv("ERROR:MESSAGE")).startswith(f"{name}: CommandRefused: ")


def test_queue_hold_remove_clear(ioc, ca_context):
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Hold").returncode == 0
    ids = [submit(ca_context, ioc, request("count", detectors=["det1"])) for _ in range(3)]
    assert [task["task_id"] for task in read_json(ca_context, ioc, "QUEUE")] == ids
    assert caget_str(ioc.pv("BUSY")) == "Idle"
    errors = caget_str(ioc.pv("ERROR:COUNT"))
    assert run_ca("caput", "-c", ioc.pv("QUEUE:REMOVE"), ids[1]).returncode == 0
    assert [task["task_id"] for task in read_json(ca_context, ioc, "QUEUE")] == [ids[0], ids[2]]
    assert caget_str(ioc.pv("ERROR:COUNT")) == errors  # removing a SUBMITted task is no error
    proc = run_ca("caput", "-c", ioc.pv("QUEUE:REMOVE"), ids[1])
    assert proc.returncode == 1
    expected = f"QUEUE:REMOVE: NotPending: no pending task has an id starting with '{ids[1]}'"
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == expected
    # the 8 characters STATUS and QUEUE:NAMES show are enough to name a pending task
    assert run_ca("caput", "-c", ioc.pv("QUEUE:REMOVE"), ids[2][:8]).returncode == 0
    assert [task["task_id"] for task in read_json(ca_context, ioc, "QUEUE")] == [ids[0]]
    assert run_ca("caput", "-c", ioc.pv("QUEUE:CLEAR"), 1).returncode == 0
    assert caget_str(ioc.pv("QUEUE:COUNT")) == "0"
    last = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert "queue on Hold: " in caget_str(ioc.pv("STATUS"))
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Run").returncode == 0
    assert wait_finished(ca_context, ioc, last) == "Success"


def test_reload_is_refused_at_once_while_a_task_runs_and_never_done_later(ioc, ca_context):
    task_id = submit(ca_context, ioc, LONG_COUNT)
    wait_state(ca_context, ioc, "RUNNING")
    worker, restarts = ioc.worker_pid(), caget_str(ioc.pv("WORKER:RESTARTS"))
    began = time.monotonic()
    proc = command(ioc, "RELOAD")
    assert proc.returncode == 1 and time.monotonic() - began < 5.0  # refused, not waited on
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == (
        f"RELOAD: CommandRefused: RELOAD is refused unless idle: task {task_id[:8]} (count) is running;"
        " write RELOAD again once it has ended"
    )
    assert command(ioc, "ABORT").returncode == 0
    assert wait_finished(ca_context, ioc, task_id) == "Aborted"
    assert caget_str(ioc.pv("STATE")) == "IDLE"
    # Nothing was deferred: the worker that ran the task is still the one up.
    assert (ioc.worker_pid(), caget_str(ioc.pv("WORKER:RESTARTS"))) == (worker, restarts)


def test_halt_frees_a_plan_stuck_on_a_device_that_never_arrives(ioc, ca_context):
    """Last in this module: the halted motor is left moving (halt skips the cleanup)."""
    task_id = submit(ca_context, ioc, request("mv", motor="smotor", position=100_000))
    wait_state(ca_context, ioc, "RUNNING")
    began = time.monotonic()
    assert command(ioc, "HALT").returncode == 0
    assert time.monotonic() - began < scaled(10.0)  # quiet: well under a second; stuck: never
    assert wait_finished(ca_context, ioc, task_id) == "Halted"
    assert caget_str(ioc.pv("STATE")) == "IDLE"
