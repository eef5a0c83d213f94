"""Writes as a CA client makes them: a refused write is an error for the put and a message on
SUBMIT:*/ERROR:*, never an alarm of the PV written; deeply nested requests are refused at
once; an empty QUEUE:REMOVE takes nothing; a request queued on a held queue says so.

The IOC of this module keeps its queue on Hold (an operator's), so what is accepted waits.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.harness import (
    REPO_ROOT,
    caget_str,
    caput_text,
    process_env,
    run_ca,
    wait_for,
)
from tests.integration.ioc_client import SAMPLE_PLANS, request, submit

COUNT = request("count", detectors=["det1"])
WAIT = 20  # seconds a put with completion may take (-w): a refusal comes long before


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    ioc = module_ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path_factory.mktemp("state"))
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Hold").returncode == 0
    return ioc


def refused(proc: subprocess.CompletedProcess) -> bool:
    """The C `caput -c` saw the put complete with an error (not run out of -w)."""
    output = proc.stdout + proc.stderr
    return proc.returncode == 1 and "Channel write request failed" in output and "timed out" not in output


def no_alarm(ioc, name: str) -> bool:
    return (caget_str(ioc.pv(f"{name}.SEVR")), caget_str(ioc.pv(f"{name}.STAT"))) == ("NO_ALARM", "NO_ALARM")


def nested(levels: int) -> str:
    """A valid count request whose metadata nests `levels` objects deep."""
    return request("count", detectors=["det1"])[:-1] + ', "metadata": ' + '{"a": ' * levels + "1" + "}" * levels + "}"


@pytest.mark.parametrize("pv", ["SUBMIT", "RUN"])
@pytest.mark.parametrize("levels", [500, 3000])
def test_deeply_nested_json_is_refused_at_once_and_the_ioc_goes_on(ioc, ca_context, pv, levels):
    errors = int(caget_str(ioc.pv("ERROR:COUNT")))
    submit(ca_context, ioc, COUNT)  # SUBMIT:STATUS Accepted before
    proc = caput_text(ioc.pv(pv), nested(levels), completion=True, wait=WAIT)
    assert refused(proc), proc.stdout + proc.stderr
    expected = "metadata.a: nested too deep; a request may hold objects and arrays at most 32 levels deep"
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Rejected"
    assert caget_str(ioc.pv("SUBMIT:MESSAGE")) == expected
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == f"{pv}: RequestError: {expected}"
    assert int(caget_str(ioc.pv("ERROR:COUNT"))) == errors + 1
    assert no_alarm(ioc, pv)
    assert submit(ca_context, ioc, COUNT)  # the IOC takes the next request as ever


def test_every_refused_write_leaves_its_pv_without_alarm(ioc):
    writes = {
        "SUBMIT": ["-S", ioc.pv("SUBMIT"), request("nope")],
        "RUN": ["-S", ioc.pv("RUN"), request("count", detectors=["det9"])],
        "RESUME": [ioc.pv("RESUME"), "1"],  # nothing is paused
        "PAUSE": [ioc.pv("PAUSE"), "1"],  # nothing is running
        "QUEUE:REMOVE": [ioc.pv("QUEUE:REMOVE"), "no-such-task"],
    }
    for name, args in writes.items():
        proc = run_ca("caput", "-c", "-w", WAIT, *args, timeout=WAIT + 10)
        assert refused(proc), f"{name}: {proc.stdout}{proc.stderr}"
        assert no_alarm(ioc, name), name
    assert caget_str(ioc.pv("RESUME")) == caget_str(ioc.pv("PAUSE")) == "Done"
    assert caget_str(ioc.pv("QUEUE:REMOVE")) == "no-such-task"
    submit_text = caput_text(ioc.pv("SUBMIT"), COUNT, completion=True, wait=WAIT)
    assert submit_text.returncode == 0 and no_alarm(ioc, "SUBMIT")  # later good writes too


def new_readback(proc: subprocess.CompletedProcess) -> str:
    """The value after `New :` that `caput` prints (C escapes undone for JSON's quotes)."""
    line = next(line for line in proc.stdout.splitlines() if line.startswith("New :"))
    return line.split(" ", 3)[3].replace('\\"', '"')


def test_the_readback_of_a_request_pv_is_the_request_just_written(ioc):
    assert caput_text(ioc.pv("SUBMIT"), COUNT).returncode == 0
    bad = request("nope")
    proc = caput_text(ioc.pv("SUBMIT"), bad)  # a plain put: caput reads the value back
    assert new_readback(proc) == bad
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Rejected"
    good = request("count", detectors=["det2"])
    proc = caput_text(ioc.pv("RUN"), good)  # accepted; the task waits on the held queue
    assert new_readback(proc) == good
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Accepted"


def test_an_empty_id_removes_no_task(ioc, ca_context):
    run_ca("caput", ioc.pv("QUEUE:CLEAR"), "1")
    wait_for(lambda: caget_str(ioc.pv("QUEUE:COUNT")) == "0", 10)
    only = submit(ca_context, ioc, COUNT)
    for empty in ("", " "):
        proc = run_ca("caput", "-c", "-w", WAIT, ioc.pv("QUEUE:REMOVE"), empty, timeout=WAIT + 10)
        assert refused(proc), proc.stdout + proc.stderr
        assert caget_str(ioc.pv("ERROR:MESSAGE")) == (
            "QUEUE:REMOVE: NotPending: no task id given; write the id of a pending task (or its first 8 characters)"
        )
    assert [task["task_id"] for task in json.loads(caget_str(ioc.pv("QUEUE")))] == [only]


def test_a_request_accepted_on_hold_says_so_and_status_names_the_hold(ioc, ca_context):
    task_id = submit(ca_context, ioc, COUNT)
    assert caget_str(ioc.pv("SUBMIT:MESSAGE")) == f"accepted as task {task_id}; the queue is on Hold"
    assert caget_str(ioc.pv("STATUS")).endswith("; queue on Hold: set by an operator")


def scripts_caput(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(REPO_ROOT / "scripts" / "caput"), *args], env=process_env(), capture_output=True,
        text=True, timeout=WAIT + 30, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_scripts_caput_keeps_the_exit_status_of_epics_caput(ioc):
    bad = scripts_caput("-c", "-w", str(WAIT), "-S", ioc.pv("SUBMIT"), request("nope"))
    assert refused(bad), bad.stdout + bad.stderr
    good = scripts_caput("-c", "-w", str(WAIT), "-S", ioc.pv("SUBMIT"), COUNT)
    assert good.returncode == 0, good.stdout + good.stderr
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Accepted"
