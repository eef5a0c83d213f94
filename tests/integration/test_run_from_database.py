"""RUN driven from a real EPICS database: a softIoc record waits for our tasks.

`db/run_link.db` has an `lso` record (`$(P)REQ`, "Async Soft Channel", `OUT
"$(IOC)RUN CA"`): processing it puts the request to our `RUN` with
ca_put_callback (dbPutLinkAsync) and keeps the record PACT until our IOC
completes that put, i.e. until the task has ended.

What EPICS base 7.0.8 does with the *status* of that completion: nothing.
dbCa's putComplete() ignores ``event_handler_args.status`` and
dbLinkAsyncComplete() just processes the record again, so a task that failed,
was aborted, halted, removed or refused still leaves the record NO_ALARM and a
``caput -c`` to it exits 0. The tests assert exactly that, and that our IOC did
complete its put with an error (the same request straight to RUN fails) and
put the reason on ERROR:MESSAGE / SUBMIT:MESSAGE. A disconnected link does not
alarm either: devLsoSoftCallback skips the write and the record completes at once.

Ports: the softIoc serves on its own free port (EPICS_CAS_SERVER_PORT) while
its CA client searches the session port (EPICS_CA_SERVER_PORT) where our IOC
serves; the C tools reach the softIoc with EPICS_CA_SERVER_PORT=<its port>.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.harness import (
    SETTLE,
    ManagedProcess,
    ProcessStartupError,
    ca_bin,
    caget_str,
    caput_text,
    free_port,
    process_env,
    random_prefix,
    run_ca,
    session_ports,
    start_softioc,
    wait_for,
)
from tests.integration.ioc_client import SAMPLE_PLANS, request

DB = Path(__file__).parent / "db" / "run_link.db"
COUNT = request("count", detectors=["det1"])
PUT_WAIT = 30  # caput -w: bound on any completion here


@dataclass
class SoftIoc:
    """The softIoc running db/run_link.db and how the C tools reach it."""

    process: ManagedProcess
    prefix: str
    env: dict[str, str]  # EPICS_CA_SERVER_PORT of the softIoc, for the C tools

    def pv(self, name: str) -> str:
        return self.prefix + name

    def get(self, name: str) -> str:
        return caget_str(self.pv(name), env=self.env)

    def put(self, record: str, text: str) -> subprocess.CompletedProcess:
        """``caput -c -w 30 -S <record>.VAL$ <text>``: returns once the record completed."""
        return caput_text(self.pv(record + ".VAL$"), text, completion=True, wait=PUT_WAIT, env=self.env)

    def start_put(self, record: str, text: str) -> subprocess.Popen:
        """The same ``caput -c``, in the background."""
        return subprocess.Popen(
            [str(ca_bin("caput")), "-c", "-w", str(PUT_WAIT), "-S", self.pv(record + ".VAL$"),
             text.replace("\\", "\\\\")],
            env=process_env(self.env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    return module_ioc_factory(*SAMPLE_PLANS, "--continue-on-error", "--state-dir", state)


@pytest.fixture(scope="module")
def softioc(ioc, tmp_path_factory):
    ioc_port, repeater_port = session_ports()
    port = free_port(exclude={ioc_port, repeater_port})
    prefix = "D" + random_prefix()
    process = start_softioc(
        DB, {"P": prefix, "IOC": ioc.prefix},
        env={"EPICS_CA_SERVER_PORT": str(ioc_port), "EPICS_CAS_SERVER_PORT": str(port)},
        log_dir=tmp_path_factory.mktemp("softioc"),
    )
    db = SoftIoc(process, prefix, {"EPICS_CA_SERVER_PORT": str(port)})
    try:
        # Serving, and its CA client connected to our IOC (HEARTBEAT CP MS: NO_ALARM).
        wait_for(
            lambda: not process.is_running() or db.get("HEARTBEAT.SEVR") == "NO_ALARM",
            SETTLE, interval=0.2, message="softIoc not connected to the IOC", ignore=(Exception,),
        )
        if not process.is_running():
            raise ProcessStartupError(f"softIoc exited {process.returncode}:\n{process.log_tail()}")
        yield db
    finally:
        process.stop()


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    """Wait (bounded) for a background caput; return its exit code and output."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    return proc.returncode, out + err


def assert_record_completed_without_alarm(softioc: SoftIoc) -> None:
    assert softioc.get("REQ.PACT") == "0"
    assert softioc.get("REQ.SEVR") == "NO_ALARM"
    assert softioc.get("REQ.STAT") == "NO_ALARM"


def assert_run_fails_directly(ioc, text: str) -> None:
    """The control: our IOC completes this request's put to RUN with an error."""
    direct = caput_text(ioc.pv("RUN"), text, completion=True, wait=PUT_WAIT)
    assert direct.returncode == 1, direct.stdout + direct.stderr
    assert "Channel write request failed" in direct.stderr, direct.stderr


def test_a_successful_task_completes_the_record_without_alarm(ioc, softioc):
    started = time.monotonic()
    proc = softioc.put("REQ", COUNT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - started < PUT_WAIT
    assert softioc.get("REQ.VAL$") == COUNT
    assert_record_completed_without_alarm(softioc)
    # The task ran to its end before the record completed.
    task_id = caget_str(ioc.pv("SUBMIT:TASK_ID"))
    assert caget_str(ioc.pv("SUBMIT:MESSAGE")) == f"accepted as task {task_id}"
    assert caget_str(ioc.pv("LAST:TASK_ID")) == task_id
    assert caget_str(ioc.pv("LAST:RESULT")) == "Success"
    assert caget_str(ioc.pv("LAST:PLAN")) == "count"


def test_the_forward_linked_record_reads_the_result_of_its_own_task(ioc, softioc):
    for text, result in [(request("fail", message="first"), "Failed"), (COUNT, "Success"),
                         (request("fail", message="again"), "Failed"), (COUNT, "Success")]:
        proc = softioc.put("REQ", text)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert softioc.get("RESULT") == result, f"the record read the previous task's result ({text})"
        assert caget_str(ioc.pv("LAST:RESULT")) == result


def test_the_record_stays_busy_while_the_task_runs(ioc, softioc):
    started = time.monotonic()
    proc = softioc.start_put("REQ", request("sleep", seconds=2))
    try:
        wait_for(lambda: caget_str(ioc.pv("STATE")) == "RUNNING", message="task not running")
        task_id = caget_str(ioc.pv("SUBMIT:TASK_ID"))
        assert caget_str(ioc.pv("CURRENT:TASK_ID")) == task_id
        assert softioc.get("REQ.PACT") == "1"
        assert proc.poll() is None, "caput -c returned while the task runs"
        code, output = finish(proc, PUT_WAIT + 10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert code == 0, output
    assert time.monotonic() - started >= 1.9
    assert_record_completed_without_alarm(softioc)
    assert caget_str(ioc.pv("LAST:TASK_ID")) == task_id
    assert caget_str(ioc.pv("LAST:RESULT")) == "Success"


def test_a_failed_task_completes_the_record_and_epics_drops_the_error(ioc, softioc):
    text = request("fail", message="the sample moved")
    proc = softioc.put("REQ", text)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # EPICS ignores the put status
    assert_record_completed_without_alarm(softioc)
    task_id = caget_str(ioc.pv("SUBMIT:TASK_ID"))
    assert caget_str(ioc.pv("LAST:TASK_ID")) == task_id
    assert caget_str(ioc.pv("LAST:RESULT")) == "Failed"
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == f"{task_id}: ValueError: the sample moved"
    assert_run_fails_directly(ioc, text)


@pytest.mark.parametrize(("command", "result"), [("ABORT", "Aborted"), ("HALT", "Halted")])
def test_an_ended_task_completes_the_record_and_epics_drops_the_error(ioc, softioc, command, result):
    text = request("sleep", seconds=30)
    proc = softioc.start_put("REQ", text)
    try:
        wait_for(lambda: caget_str(ioc.pv("STATE")) == "RUNNING", message="task not running")
        task_id = caget_str(ioc.pv("SUBMIT:TASK_ID"))
        assert softioc.get("REQ.PACT") == "1"
        assert proc.poll() is None
        ended = time.monotonic()
        assert run_ca("caput", ioc.pv(command), "1").returncode == 0
        code, output = finish(proc, 20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert code == 0, output  # EPICS ignores the put status
    assert time.monotonic() - ended < 15, "completed by the end of the task, not by a timeout"
    assert_record_completed_without_alarm(softioc)
    assert caget_str(ioc.pv("LAST:TASK_ID")) == task_id
    assert caget_str(ioc.pv("LAST:RESULT")) == result
    message = caget_str(ioc.pv("ERROR:MESSAGE"))
    assert message.startswith(f"{task_id}: "), message
    assert f"{result.lower()} by " in message, message  # e.g. "Aborted: aborted by alice@ws3"


def test_a_refused_request_completes_the_record_and_epics_drops_the_error(ioc, softioc):
    last = caget_str(ioc.pv("LAST:TASK_ID"))
    text = json.dumps({"name": "nope"})
    proc = softioc.put("REQ", text)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # EPICS ignores the put status
    assert_record_completed_without_alarm(softioc)
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Rejected"
    reason = "name: unknown plan 'nope'"
    assert caget_str(ioc.pv("SUBMIT:MESSAGE")).startswith(reason)
    assert caget_str(ioc.pv("ERROR:MESSAGE")).startswith(f"RUN: RequestError: {reason}")
    assert caget_str(ioc.pv("LAST:TASK_ID")) == last  # nothing ran
    assert_run_fails_directly(ioc, text)


def test_a_removed_task_completes_the_record_and_epics_drops_the_error(ioc, softioc):
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Hold").returncode == 0
    proc = None
    try:
        before = caget_str(ioc.pv("SUBMIT:TASK_ID"))
        proc = softioc.start_put("REQ", COUNT)
        task_id = wait_for(
            lambda: (tid := caget_str(ioc.pv("SUBMIT:TASK_ID"))) != before and tid, SETTLE,
            message="request not queued",
        )
        assert caget_str(ioc.pv("QUEUE:COUNT")) == "1"
        assert softioc.get("REQ.PACT") == "1"
        assert proc.poll() is None
        assert run_ca("caput", ioc.pv("QUEUE:REMOVE"), task_id).returncode == 0
        code, output = finish(proc, 20)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
        run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Run")
    assert code == 0, output  # EPICS ignores the put status
    assert_record_completed_without_alarm(softioc)
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == f"{task_id}: Removed: taken off the queue before it ran"
    assert caget_str(ioc.pv("LAST:TASK_ID")) != task_id


def test_a_disconnected_link_is_skipped_without_alarm(ioc, softioc):
    """The Async Soft Channel lso skips the write while its link is not connected
    (dbGetLinkDBFtype < 0): no alarm, no put, immediate completion."""
    submitted = caget_str(ioc.pv("SUBMIT:TASK_ID"))
    proc = softioc.put("REQ:NOWHERE", COUNT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert softioc.get("REQ:NOWHERE.PACT") == "0"
    assert softioc.get("REQ:NOWHERE.SEVR") == "NO_ALARM"
    assert softioc.get("REQ:NOWHERE.STAT") == "NO_ALARM"
    assert caget_str(ioc.pv("SUBMIT:TASK_ID")) == submitted
