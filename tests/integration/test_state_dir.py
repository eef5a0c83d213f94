"""One IOC at a time owns a state directory: a second one refuses to start and touches nothing."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.integration.harness import (
    REPO_ROOT,
    caget_str,
    free_port,
    process_env,
    random_prefix,
    session_ports,
)
from tests.integration.ioc_client import (
    SAMPLE_PLANS,
    command,
    request,
    submit,
    wait_finished,
    wait_state,
)

BIG = {"EPICS_CA_MAX_ARRAY_BYTES": "1000000"}


def test_a_second_ioc_on_the_state_dir_refuses_to_start_and_touches_nothing(ioc_factory, ca_context, tmp_path):
    first = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    task_id = submit(ca_context, first, request("sleep", seconds=60))
    wait_state(ca_context, first, "RUNNING")
    port = free_port(exclude=session_ports())
    second = subprocess.run(
        [sys.executable, "-m", "ioc", "--prefix", random_prefix(), *SAMPLE_PLANS, "--state-dir", str(tmp_path)],
        cwd=REPO_ROOT, env=process_env({"EPICS_CAS_SERVER_PORT": str(port)}),
        capture_output=True, text=True, timeout=60,
    )
    assert second.returncode == 1, second.stderr
    assert f"in use by another IOC (pid {first.pid}, " in second.stderr, second.stderr
    # The first one's task runs on, its own: not recorded interrupted, not queued again.
    assert caget_str(first.pv("CURRENT:TASK_ID")) == task_id
    assert caget_str(first.pv("STATE")) == "RUNNING"
    assert json.loads(caget_str(first.pv("HISTORY"), env=BIG)) == []
    assert caget_str(first.pv("QUEUE:COUNT")) == "0"
    assert command(first, "ABORT").returncode == 0
    assert wait_finished(ca_context, first, task_id) == "Aborted"
