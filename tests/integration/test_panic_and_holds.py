"""PANIC latches the worker until ALL_IS_WELL; failures hold the queue (default rules)."""

from __future__ import annotations

import pytest

from tests.integration.harness import caget_str, run_ca, wait_for
from tests.integration.ioc_client import (
    SAMPLE_PLANS,
    command,
    request,
    submit,
    wait_finished,
    wait_state,
)

LONG_COUNT = request("count", detectors=["det1"], num=200, delay=0.05)


@pytest.fixture
def ioc(ioc_factory, tmp_path):
    return ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path / "state")


def stays_idle(ioc, seconds: float = 0.5) -> bool:
    """True if BUSY stays Idle for `seconds` (a bounded check that nothing starts)."""
    try:
        wait_for(lambda: caget_str(ioc.pv("BUSY")) == "Busy", seconds)
    except TimeoutError:
        return True
    return False


def test_panic_while_running_aborts_and_latches(ioc, ca_context):
    task_id = submit(ca_context, ioc, LONG_COUNT)
    wait_state(ca_context, ioc, "RUNNING")
    assert command(ioc, "PANIC").returncode == 0
    assert wait_finished(ca_context, ioc, task_id) == "Aborted"
    assert caget_str(ioc.pv("STATE")) == "PANICKED"
    pending = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert caget_str(ioc.pv("QUEUE:COUNT")) == "1"
    assert stays_idle(ioc)
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Run").returncode == 0
    assert stays_idle(ioc)  # the panic latch holds even an enabled queue
    assert command(ioc, "ALL_IS_WELL").returncode == 0
    assert wait_finished(ca_context, ioc, pending) == "Success"
    assert caget_str(ioc.pv("STATE")) == "IDLE"


def test_panic_while_paused_stays_paused_and_refuses_resume(ioc, ca_context):
    task_id = submit(ca_context, ioc, LONG_COUNT)
    wait_state(ca_context, ioc, "RUNNING")
    assert command(ioc, "PAUSE").returncode == 0
    assert command(ioc, "PANIC").returncode == 0
    assert caget_str(ioc.pv("STATE")) == "PANICKED"
    assert caget_str(ioc.pv("BUSY")) == "Busy"
    proc = command(ioc, "RESUME")
    assert proc.returncode == 1
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == "RESUME: CommandRefused: the worker is panicked: write ALL_IS_WELL first"
    assert command(ioc, "ALL_IS_WELL").returncode == 0
    assert caget_str(ioc.pv("STATE")) == "PAUSED"
    assert command(ioc, "RESUME").returncode == 0
    assert command(ioc, "STOP").returncode == 0
    assert wait_finished(ca_context, ioc, task_id) == "Stopped"


def test_a_failure_holds_the_queue_until_the_operator_says_run(ioc, ca_context):
    assert caget_str(ioc.pv("QUEUE:ENABLE")) == "Run"
    failed = submit(ca_context, ioc, request("fail"))
    assert wait_finished(ca_context, ioc, failed) == "Failed"
    assert caget_str(ioc.pv("QUEUE:ENABLE")) == "Hold"
    pending = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert caget_str(ioc.pv("SUBMIT:MESSAGE")) == f"accepted as task {pending}; the queue is on Hold"
    held = f"idle, 1 queued; queue on Hold: task {failed[:8]} (fail) ended Failed"
    assert caget_str(ioc.pv("STATUS")).startswith(held + "; error: ")
    assert run_ca("caput", ioc.pv("ERROR:CLEAR"), "1").returncode == 0
    wait_for(lambda: caget_str(ioc.pv("STATUS")) == held, 5)  # acknowledged, still held
    assert stays_idle(ioc)
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Run").returncode == 0
    assert wait_finished(ca_context, ioc, pending) == "Success"
    assert "Hold" not in caget_str(ioc.pv("STATUS"))
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Hold").returncode == 0
    wait_for(lambda: caget_str(ioc.pv("STATUS")) == "idle, 0 queued; queue on Hold: set by an operator", 5)
