"""The worker process: nothing a plan does takes the IOC off the network.

Each test gets a fresh IOC (they kill workers and leave the queue on hold)."""

from __future__ import annotations

import os
import signal
import threading
import time

import event_model
import pytest

from ioc.service.runstore import read_run
from tests.integration.harness import SETTLE, caget_str, run_ca, scaled, wait_for
from tests.integration.ioc_client import (
    SAMPLE_PLANS,
    Camonitor,
    command,
    read_json,
    request,
    submit,
    wait_finished,
    wait_state,
)

LONG_COUNT = request("count", detectors=["det1"], num=400, delay=0.05)  # ~20 s


def restarts(ioc) -> int:
    return int(caget_str(ioc.pv("WORKER:RESTARTS")))


def new_worker(ioc, old_pid: int, timeout: float = SETTLE) -> int:
    """Wait until a worker other than `old_pid` is up; return its pid."""
    return wait_for(lambda: (pid := ioc.worker_pid()) not in (0, old_pid) and pid, timeout,
                    message="no new worker process")


def heartbeats_while(ioc, busy: threading.Event, timeout: float) -> list[tuple[float, int]]:
    """Read HEARTBEAT with the C caget about every 0.5 s while `busy` is set (bounded)."""
    seen: list[tuple[float, int]] = []
    deadline = time.monotonic() + timeout
    while busy.is_set() and time.monotonic() < deadline:
        proc = run_ca("caget", "-t", "-w", scaled(1), ioc.pv("HEARTBEAT"))
        assert proc.returncode == 0, f"HEARTBEAT did not answer: {proc.stdout}{proc.stderr}"
        seen.append((time.monotonic(), int(proc.stdout)))
        time.sleep(0.5)
    return seen


def test_a_plan_holding_the_interpreter_leaves_the_ioc_answering_and_halt_kills_it(
    ioc_factory, ca_context, tmp_path
):
    ioc = ioc_factory(*SAMPLE_PLANS, "--halt-timeout", "3", "--state-dir", tmp_path)
    old_pid = ioc.worker_pid()
    task_id = submit(ca_context, ioc, request("hold_interpreter", seconds=30))
    wait_state(ca_context, ioc, "RUNNING")
    busy = threading.Event()
    busy.set()
    beats: list[tuple[float, int]] = []
    reader = threading.Thread(target=lambda: beats.extend(heartbeats_while(ioc, busy, 8)))
    reader.start()
    time.sleep(4)  # the plan holds the worker; the IOC must keep answering meanwhile
    started = time.monotonic()
    halt = command(ioc, "HALT", wait=20)
    halted_after = time.monotonic() - started
    busy.clear()
    reader.join(10)
    assert halt.returncode == 0, halt.stdout + halt.stderr
    assert halted_after < scaled(10), f"HALT took {halted_after:.1f} s"
    assert wait_finished(ca_context, ioc, task_id) == "Halted"
    assert "the worker did not halt within 3 s and was restarted" in caget_str(ioc.pv("ERROR:MESSAGE"))
    assert len(beats) >= 4
    assert beats[-1][1] > beats[0][1], f"HEARTBEAT stood still: {beats}"
    gaps = [b[0] - a[0] for a, b in zip(beats, beats[1:])]
    assert max(gaps) < scaled(3), f"HEARTBEAT reads stalled: {gaps}"
    assert new_worker(ioc, old_pid)
    assert restarts(ioc) == 1
    # the new worker runs tasks (the queue is on hold after a halt: let it run)
    run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Run")
    task_id = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert wait_finished(ca_context, ioc, task_id) == "Success"


@pytest.mark.parametrize("how", ["plan kills its process", "kill -9 of WORKER:PID"])
def test_a_worker_that_dies_is_recorded_like_a_crash_and_replaced(how, ioc_factory, ca_context, tmp_path):
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    old_pid = ioc.worker_pid()
    if how == "plan kills its process":
        task_id = submit(ca_context, ioc, request("kill_own_process"))
    else:
        task_id = submit(ca_context, ioc, LONG_COUNT)
        wait_state(ca_context, ioc, "RUNNING")
        os.kill(old_pid, signal.SIGKILL)
    assert wait_finished(ca_context, ioc, task_id) == "Failed"
    message = caget_str(ioc.pv("ERROR:MESSAGE"))
    assert f"{task_id}: interrupted: the worker process died (signal SIGKILL)" == message
    assert caget_str(ioc.pv("ERROR:ACTIVE")) == "Yes"
    assert caget_str(ioc.pv("QUEUE:ENABLE")) == "Hold"
    plan = "kill_own_process" if how == "plan kills its process" else "count"
    held = f"queue on Hold: task {task_id[:8]} ({plan}) was interrupted: the worker process died (signal SIGKILL)"
    assert held in caget_str(ioc.pv("STATUS"))
    queue = read_json(ca_context, ioc, "QUEUE")
    assert len(queue) == 1 and queue[0]["task_id"] != task_id  # a copy at the head
    assert new_worker(ioc, old_pid)
    assert restarts(ioc) == 1
    wait_state(ca_context, ioc, "IDLE")
    history = read_json(ca_context, ioc, "HISTORY")
    assert history[0]["task_id"] == task_id and history[0]["result"] == "Failed"


def test_the_runs_a_dead_worker_left_open_get_their_stop_document(ioc_factory, ca_context, tmp_path):
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    old_pid = ioc.worker_pid()
    task_id = submit(ca_context, ioc, LONG_COUNT)
    uid = wait_for(lambda: caget_str(ioc.pv("CURRENT:RUN_UID")), 15, message="the run opened")
    runs = tmp_path / "runs"
    wait_for(lambda: [name for name, _ in read_run(runs, uid)].count("event") >= 2, 30, message="two events written")
    os.kill(old_pid, signal.SIGKILL)
    assert wait_finished(ca_context, ioc, task_id) == "Failed"
    wait_for(lambda: read_run(runs, uid)[-1][0] == "stop", 10, message="the run file stopped")
    *documents, (_, stop) = read_run(runs, uid)
    event_model.schema_validators[event_model.DocumentNames.stop].validate(stop)
    assert (stop["run_start"], stop["exit_status"]) == (uid, "fail")
    assert stop["reason"] == "interrupted: the worker process died (signal SIGKILL)"
    assert stop["num_events"] == {"primary": [name for name, _ in documents].count("event")}
    assert read_json(ca_context, ioc, "HISTORY")[0]["run_uids"] == [uid]


def test_state_is_unknown_while_no_worker_is_up(ioc_factory, ca_context, tmp_path):
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    old_pid = ioc.worker_pid()
    state = Camonitor(ioc.pv("STATE"))
    try:
        os.kill(old_pid, signal.SIGKILL)
        assert new_worker(ioc, old_pid)
        wait_state(ca_context, ioc, "IDLE")
        wait_for(lambda: state.lines[-1].split()[-1] == "IDLE", message=f"camonitor saw IDLE: {state.lines}")
    finally:
        state.stop()
    shown = [line.split()[-1] for line in state.lines]
    assert shown[0] == "IDLE" and "UNKNOWN" in shown and shown[-1] == "IDLE", shown


def test_sigterm_aborts_the_running_task_and_requeues_it(ioc_factory, ca_context, tmp_path):
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    task_id = submit(ca_context, ioc, LONG_COUNT)
    wait_state(ca_context, ioc, "RUNNING")
    worker = ioc.worker_pid()
    os.kill(ioc.pid, signal.SIGTERM)
    wait_for(lambda: not ioc.is_running(), message="the IOC did not exit on SIGTERM")
    assert ioc.returncode == 0, ioc.log_tail()
    wait_for(lambda: not os.path.exists(f"/proc/{worker}"), message="the worker outlived the IOC")
    ioc.start()
    history = read_json(ca_context, ioc, "HISTORY")
    assert history[0]["task_id"] == task_id
    assert history[0]["result"] == "Aborted"
    assert "the IOC was shut down" in history[0]["error"]
    queue = read_json(ca_context, ioc, "QUEUE")
    assert [task["correlation_id"] for task in queue] == [history[0]["correlation_id"]]
    assert caget_str(ioc.pv("QUEUE:ENABLE")) == "Hold"
    assert caget_str(ioc.pv("LAST:RESULT")) == "Aborted"
    why = f"{task_id}: Aborted: the IOC was shut down"
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == why and caget_str(ioc.pv("ERROR:ACTIVE")) == "Yes"
    assert caget_str(ioc.pv("STATUS")) == (
        f"idle, 1 queued; queue on Hold: task {task_id[:8]} (count) was aborted by the shutdown of the IOC; "
        f"error: {why}"
    )
