"""Suspenders over real Channel Access: the ring current and the shutter served by a real
softIoc (db/beam.db), watched by ophyd EpicsSignals of a device file's suspenders.

Ports: the softIoc serves on a free port of its own; our IOC serves on the session port
and its worker searches both (EPICS_CA_ADDR_LIST="127.0.0.1:<ioc> 127.0.0.1:<softIoc>");
the C tools reach the softIoc with EPICS_CA_SERVER_PORT=<its port>.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ioc.service.runstore import read_run
from tests.integration.harness import (
    SETTLE,
    IocProcess,
    ManagedProcess,
    caget_str,
    free_port,
    loopback_addr_list,
    random_prefix,
    run_ca,
    session_ports,
    start_softioc,
    wait_for,
)
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

DB = Path(__file__).parent / "db" / "beam.db"
RESUME_AFTER = 1.0  # the ring current's resume_after
DEVICES = """
motor1:
  class: ophyd.sim.SynAxis
  kwargs: {{delay: 0}}
det1:
  class: ophyd.sim.SynGauss
  kwargs: {{motor: !device motor1, motor_field: motor1, center: 0, Imax: 1, sigma: 1}}
ring_current:
  class: ophyd.EpicsSignalRO
  kwargs: {{read_pv: "{p}RING:CURRENT"}}
shutter:
  class: ophyd.EpicsSignal
  kwargs: {{read_pv: "{p}SHUTTER"}}

suspenders:
  beam:
    kind: floor
    signal: ring_current
    threshold: 10.0
    resume_after: {resume_after}
  shutter:
    kind: bool_low
    signal: shutter
    resume_after: 0.5
    tripped_message: the shutter is closed
"""
COUNT_50 = request("count", detectors=["det1"], num=50, delay=0.1)


@dataclass
class Beam:
    """The softIoc serving RING:CURRENT and SHUTTER, and how the C tools reach it."""

    process: ManagedProcess
    prefix: str
    env: dict[str, str]

    def put(self, name: str, value: object) -> None:
        done = run_ca("caput", "-c", "-w", 5, self.prefix + name, value, env=self.env)
        assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def beam(tmp_path_factory) -> Beam:
    port = free_port(exclude=set(session_ports()))
    prefix = "B" + random_prefix()
    env = {"EPICS_CA_SERVER_PORT": str(port), "EPICS_CAS_SERVER_PORT": str(port)}
    process = start_softioc(
        DB, {"P": prefix}, env=env, ready_pv=prefix + "SHUTTER", ready_timeout=30,
        log_dir=tmp_path_factory.mktemp("softioc"),
    )  # fmt: skip
    try:
        yield Beam(process, prefix, {"EPICS_CA_SERVER_PORT": str(port)})
    finally:
        process.stop()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, beam, tmp_path_factory, state_dir) -> IocProcess:
    devices = tmp_path_factory.mktemp("devices") / "devices.yaml"
    devices.write_text(DEVICES.format(p=beam.prefix, resume_after=RESUME_AFTER))
    addr_list = loopback_addr_list(session_ports()[0], int(beam.env["EPICS_CA_SERVER_PORT"]))
    return module_ioc_factory(
        *SAMPLE_PLANS, "--devices", devices, "--state-dir", state_dir, "--continue-on-error",
        env={"EPICS_CA_ADDR_LIST": addr_list},
    )  # fmt: skip


@pytest.fixture(autouse=True)
def good_beam(beam, ioc, ca_context):
    """Every test starts (and ends) with the beam good and nothing held."""
    yield
    beam.put("RING:CURRENT", 100)
    beam.put("SHUTTER", "Open")
    if caget_str(ioc.pv("BUSY")) == "Busy":
        command(ioc, "ABORT")
    wait_for(lambda: caget_str(ioc.pv("SUSPEND:ACTIVE")) == "No" and caget_str(ioc.pv("STATE")) == "IDLE")


def tripped(ctx, ioc) -> dict[str, bool]:
    return {entry["name"]: entry["tripped"] for entry in read_json(ctx, ioc, "SUSPENDERS")}


def progress(ioc) -> float:
    return float(caget_str(ioc.pv("CURRENT:PROGRESS")))


def stays(predicate, seconds: float) -> bool:
    """True if `predicate` holds throughout `seconds` (a bounded check)."""
    try:
        wait_for(lambda: not predicate(), seconds, interval=0.1)
    except TimeoutError:
        return True
    return False


def seq_nums(state_dir: Path, ioc) -> list[int]:
    """The event seq_nums of the last task's run, once its run file has its stop document."""
    (uid,) = json.loads(caget_str(ioc.pv("LAST:RUN_UIDS")))
    documents = wait_for(
        lambda: (docs := read_run(state_dir / "runs", uid)) and docs[-1][0] == "stop" and docs,
        SETTLE, message="run file with its stop document", ignore=(OSError, ValueError),
    )  # fmt: skip
    return [doc["seq_num"] for name, doc in documents if name == "event"]


def test_suspenders_are_listed(ioc, ca_context):
    assert read_json(ca_context, ioc, "SUSPENDERS") == [
        {"name": "beam", "signal": "ring_current", "kind": "floor", "tripped": False,
         "available": True, "error": None},
        {"name": "shutter", "signal": "shutter", "kind": "bool_low", "tripped": False,
         "available": True, "error": None},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("pv", "bad", "good", "name", "reason", "resume_after"),
    [
        ("RING:CURRENT", 3.2, 50, "beam", "beam: ring_current 3.2 < 10.0", RESUME_AFTER),
        ("SHUTTER", "Closed", "Open", "shutter", "shutter: shutter is low (0) (the shutter is closed)", 0.5),
    ],
    ids=["ring_current", "shutter"],
)
def test_trip_half_way_suspends_and_resumes(
    ioc, beam, ca_context, state_dir, pv, bad, good, name, reason, resume_after
):
    events = Camonitor(ioc.pv("EVENT"))
    try:
        task_id = submit(ca_context, ioc, COUNT_50)
        wait_for(lambda: caget_str(ioc.pv("STATE")) == "RUNNING" and progress(ioc) >= 50)
        beam.put(pv, bad)
        wait_state(ca_context, ioc, "SUSPENDING")
        assert caget_str(ioc.pv("SUSPEND:ACTIVE")) == "Yes"
        assert caget_str(ioc.pv("SUSPEND:REASON")) == reason
        assert tripped(ca_context, ioc)[name] is True
        held_at = progress(ioc)
        assert stays(
            lambda: caget_str(ioc.pv("STATE")) == "SUSPENDING" and progress(ioc) == held_at, 1.5
        ), "the task went on while the signal was bad"
        beam.put(pv, good)
        cleared = time.monotonic()
        wait_for(lambda: not tripped(ca_context, ioc)[name])
        wait_state(ca_context, ioc, "RUNNING")
        assert time.monotonic() - cleared >= 0.8 * resume_after  # it waited resume_after
        assert caget_str(ioc.pv("SUSPEND:ACTIVE")) == "No"
        assert caget_str(ioc.pv("SUSPEND:REASON")) == ""
        assert wait_finished(ca_context, ioc, task_id) == "Success"
        assert seq_nums(state_dir, ioc) == list(range(1, 51))
        changes = [e["state"] for e in events.json_values() if e["type"] == "state_changed"]
        assert changes[changes.index("SUSPENDING") + 1] == "RUNNING"
        log = ioc.log_text()  # bluesky's "hit Ctrl-C twice to pause" is no advice for an IOC
        assert "Ctrl-C" not in log and "see SUSPEND:REASON; it resumes by itself" in log, log
    finally:
        events.stop()


def test_abort_while_suspended(ioc, beam, ca_context):
    task_id = submit(ca_context, ioc, COUNT_50)
    wait_for(lambda: progress(ioc) >= 20)
    beam.put("RING:CURRENT", 1)
    wait_state(ca_context, ioc, "SUSPENDING")
    assert command(ioc, "ABORT").returncode == 0
    assert wait_finished(ca_context, ioc, task_id) == "Aborted"
    assert caget_str(ioc.pv("SUSPEND:ACTIVE")) == "No"
    assert caget_str(ioc.pv("STATE")) == "IDLE"
    assert tripped(ca_context, ioc)["beam"] is True  # still tripped, holding nothing


def test_pause_while_suspended(ioc, beam, ca_context):
    task_id = submit(ca_context, ioc, request("count", detectors=["det1"], num=10, delay=0.1))
    wait_for(lambda: progress(ioc) >= 20)
    beam.put("SHUTTER", "Closed")
    wait_state(ca_context, ioc, "SUSPENDING")
    assert command(ioc, "PAUSE").returncode == 0
    assert caget_str(ioc.pv("STATE")) == "PAUSED"
    beam.put("SHUTTER", "Open")
    assert command(ioc, "RESUME").returncode == 0
    assert wait_finished(ca_context, ioc, task_id) == "Success"


def test_task_started_while_tripped_waits(ioc, beam, ca_context, state_dir):
    beam.put("SHUTTER", "Closed")
    wait_for(lambda: tripped(ca_context, ioc)["shutter"])
    task_id = submit(ca_context, ioc, request("count", detectors=["det1"], num=5))
    wait_state(ca_context, ioc, "SUSPENDING")
    assert caget_str(ioc.pv("SUSPEND:ACTIVE")) == "Yes"
    assert caget_str(ioc.pv("SUSPEND:REASON")).startswith("shutter: shutter is low (0)")
    assert stays(lambda: caget_str(ioc.pv("STATE")) == "SUSPENDING", 1.0)
    beam.put("SHUTTER", "Open")
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    assert seq_nums(state_dir, ioc) == [1, 2, 3, 4, 5]


def test_panic_while_suspended(ioc, beam, ca_context):
    task_id = submit(ca_context, ioc, COUNT_50)
    wait_for(lambda: progress(ioc) >= 20)
    beam.put("RING:CURRENT", 1)
    wait_state(ca_context, ioc, "SUSPENDING")
    assert command(ioc, "PANIC").returncode == 0
    assert wait_finished(ca_context, ioc, task_id) == "Aborted"
    assert caget_str(ioc.pv("STATE")) == "PANICKED"
    assert caget_str(ioc.pv("SUSPEND:ACTIVE")) == "No"
    assert command(ioc, "ALL_IS_WELL").returncode == 0
    wait_state(ca_context, ioc, "IDLE")
