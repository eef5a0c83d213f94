"""The PV contract: every PV's type, access, .DESC and enum strings; refused writes and requests.

The IOC of this module is kept busy by a long `sleep` with one task pending behind it,
so a request that were wrongly queued would show on QUEUE.
"""

from __future__ import annotations

import json

import pytest
from caproto import AccessRights, ChannelType

from tests.integration.harness import (
    CA_TIMEOUT,
    ca_read,
    ca_read_text,
    ca_write,
    caget_str,
    caput_text,
    run_ca,
    wait_for,
)
from tests.integration.ioc_client import SAMPLE_PLANS, request, submit

STATE = ["IDLE", "RUNNING", "PAUSING", "PAUSED", "HALTING", "STOPPING", "ABORTING",
         "SUSPENDING", "PANICKED", "UNKNOWN"]
RESULT = ["None", "Success", "Failed", "Aborted", "Stopped", "Halted"]
CHAR, STRING, LONG, DOUBLE, ENUM = (ChannelType.CHAR, ChannelType.STRING, ChannelType.LONG,
                                    ChannelType.DOUBLE, ChannelType.ENUM)

# name: (native type, writable, enum strings or units)
CONTRACT = {
    "STATE": (ENUM, False, STATE),
    "BUSY": (ENUM, False, ["Idle", "Busy"]),
    "HEARTBEAT": (LONG, False, None),
    "VERSION": (STRING, False, None),
    "STATUS": (CHAR, False, None),
    "SUBMIT": (CHAR, True, None),
    "SUBMIT:STATUS": (ENUM, False, ["None", "Accepted", "Rejected"]),
    "SUBMIT:MESSAGE": (CHAR, False, None),
    "SUBMIT:TASK_ID": (STRING, False, None),
    "QUEUE": (CHAR, False, None),
    "QUEUE:COUNT": (LONG, False, None),
    "QUEUE:NAMES": (STRING, False, None),
    "CURRENT:TASK_ID": (STRING, False, None),
    "CURRENT:PLAN": (STRING, False, None),
    "CURRENT:PARAMS": (CHAR, False, None),
    "CURRENT:CORRELATION_ID": (STRING, False, None),
    "CURRENT:RUN_UID": (STRING, False, None),
    "CURRENT:SCAN_ID": (LONG, False, None),
    "CURRENT:PROGRESS": (DOUBLE, False, "%"),
    "CURRENT:ELAPSED": (DOUBLE, False, "s"),
    "LAST:TASK_ID": (STRING, False, None),
    "LAST:PLAN": (STRING, False, None),
    "LAST:CORRELATION_ID": (STRING, False, None),
    "LAST:RESULT": (ENUM, False, RESULT),
    "LAST:RUN_UIDS": (CHAR, False, None),
    "LAST:DURATION": (DOUBLE, False, "s"),
    "ERROR:MESSAGE": (CHAR, False, None),
    "ERROR:ACTIVE": (ENUM, False, ["No", "Yes"]),
    "ERROR:COUNT": (LONG, False, None),
    "ERROR:CLEAR": (ENUM, True, None),
    "PLANS": (CHAR, False, None),
    "PLANS:NAMES": (STRING, False, None),
    "DEVICES": (CHAR, False, None),
    "BUS:STATUS": (ENUM, False, ["Off", "Connected", "Disconnected"]),
    "BUS:DROPPED": (LONG, False, None),
}

BAD_REQUESTS = {
    "bad JSON": ('{"name": "count",', "request: not valid JSON"),
    "not an object": ("[1, 2]", "request: expected a JSON object, got list"),
    "no name": ('{"params": {}}', "name: Field required"),
    "unknown key": ('{"name": "count", "priority": 1}', "priority: Extra inputs are not permitted"),
    "long correlation id": (json.dumps({"name": "sleep", "params": {"seconds": 1}, "correlation_id": "x" * 40}),
                            "correlation_id: 40 characters (bytes of UTF-8); a DBR_STRING holds at most 39"),
    "deep nesting": (request("count", detectors=["det1"])[:-1] + ', "metadata": ' + "[" * 40 + "]" * 40 + "}",
                     "metadata: nested too deep; a request may hold objects and arrays at most 32 levels deep"),
    "unknown plan": (request("nope"), "name: unknown plan 'nope'; expected one of count,"),
    "unknown parameter": (request("count", detectors=["det1"], bogus=1),
                          "params.bogus: Extra inputs are not permitted"),
    "missing parameter": (request("scan", detectors=["det1"], motor="motor1", start=0, num=3),
                          "params.stop: Field required"),
    "wrong type": (request("count", detectors=["det1"], num="three"),
                   "params.num: Input should be a valid integer"),
    "unknown device": (request("count", detectors=["det1", "det9"]),
                       "params.detectors.1: unknown device 'det9'; expected one of"),
    "detector as motor": (request("scan", detectors=["det1"], motor="det1", start=0, stop=1, num=2),
                          "params.motor: device 'det1' (SynGauss) is not Movable; expected one of motor1, motor2"),
    "motor as detector": (request("read_peak", detector="motor1"),
                          "params.detector: device 'motor1' (SynAxis) is not SynGauss; expected one of det1, det2"),
    # strict JSON: no NaN/Infinity, no number that overflows to one
    "NaN": ('{"name": "mv", "params": {"motor": "motor1", "position": NaN}}',
            "params.position: NaN is not a finite number"),
    "Infinity": ('{"name": "mv", "params": {"motor": "motor1", "position": -Infinity}}',
                 "params.position: -Infinity is not a finite number"),
    "overflow": ('{"name": "scan", "params": {"detectors": ["det1"], "motor": "motor1", "start": 1e400,'
                 ' "stop": 1, "num": 2}}', "params.start: 1e400 is not a finite number"),
    "NaN in metadata": ('{"name": "count", "params": {"detectors": ["det1"]}, "metadata": {"t": NaN}}',
                        "metadata.t: NaN is not a finite number"),
    # the standard plans' bounds
    "huge count": ('{"name": "count", "params": {"detectors": ["det1"], "num": 99999999999999999999999}}',
                   "params.num: Input should be less than or equal to 100000"),
    "negative count": (request("count", detectors=["det1"], num=-5),
                       "params.num: Input should be greater than or equal to 1"),
    "zero count": (request("count", detectors=["det1"], num=0),
                   "params.num: Input should be greater than or equal to 1"),
    "negative delay": (request("count", detectors=["det1"], delay=-1),
                       "params.delay: Input should be greater than or equal to 0"),
    "no detectors": (request("count", detectors=[]), "params.detectors: Value should have at least 1 item"),
    "empty": ("", "request: "),
}


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory, ca_contexts):
    ca_context = ca_contexts.current()
    ioc = module_ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path_factory.mktemp("state"))
    submit(ca_context, ioc, request("sleep", seconds=600))
    wait_for(lambda: ca_read_text(ca_context, ioc.pv("STATE")) == "RUNNING")
    submit(ca_context, ioc, request("count", detectors=["det1"]))
    return ioc


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_pv_type_access_desc_and_enums(ioc, ca_context, name):
    native, writable, extra = CONTRACT[name]
    (pv,) = ca_context.get_pvs(ioc.pv(name))
    pv.wait_for_connection(timeout=CA_TIMEOUT)
    assert pv.channel.native_data_type == native
    assert bool(pv.channel.access_rights & AccessRights.WRITE) == writable
    assert ca_read_text(ca_context, ioc.pv(name) + ".DESC").strip()
    if native == ENUM and extra:
        strings = ca_read(ca_context, ioc.pv(name), data_type=ChannelType.CTRL_ENUM).metadata.enum_strings
        assert [s.decode() for s in strings] == extra
    if native == DOUBLE:
        units = ca_read(ca_context, ioc.pv(name), data_type=ChannelType.CTRL_DOUBLE).metadata.units
        assert units.decode() == extra


def test_the_bus_is_off_without_stomp(ioc, ca_context):
    status = ca_read(ca_context, ioc.pv("BUS:STATUS"), data_type=ChannelType.STS_STRING)
    assert (status.data[0], status.metadata.severity) == (b"Off", 0)
    assert ca_read(ca_context, ioc.pv("BUS:DROPPED")).data[0] == 0


@pytest.mark.parametrize("name", sorted(n for n, spec in CONTRACT.items() if not spec[1]))
def test_read_only_pvs_refuse_writes(ioc, name):
    native = CONTRACT[name][0]
    args = ["-S", ioc.pv(name), "x"] if native == CHAR else [ioc.pv(name), "1"]
    proc = run_ca("caput", *args)
    assert proc.returncode == 1
    assert "Write access denied" in proc.stdout + proc.stderr


def pending(ioc) -> list:
    return json.loads(caget_str(ioc.pv("QUEUE")))


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_rejected_with_the_field_named_and_never_queued(ioc, case):
    text, expected = BAD_REQUESTS[case]
    before = pending(ioc)
    proc = caput_text(ioc.pv("SUBMIT"), text, completion=True, wait=5)
    assert proc.returncode == 1 and "Channel write request failed" in proc.stdout + proc.stderr
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Rejected"
    message = caget_str(ioc.pv("SUBMIT:MESSAGE"))
    assert expected in message
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == f"SUBMIT: RequestError: {message}"
    assert pending(ioc) == before and len(before) == 1
    assert caget_str(ioc.pv("STATE")) == "RUNNING"
    assert int(caget_str(ioc.pv("HEARTBEAT"))) > 0


def test_raw_bytes_are_cut_at_nul_and_must_be_utf8(ioc, ca_context):
    name = ioc.pv("SUBMIT")
    before = pending(ioc)
    ca_write(ca_context, name, list(b"\xff\xfe{}") + [0], data_type=CHAR, wait=False)
    wait_for(lambda: "not valid UTF-8" in ca_read_text(ca_context, ioc.pv("SUBMIT:MESSAGE")))
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Rejected"
    padded = request("count", detectors=["det2"]).encode() + b"\0\xff garbage after the NUL"
    ca_write(ca_context, name, list(padded), data_type=CHAR)
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Accepted"
    after = pending(ioc)
    assert after[:-1] == before and after[-1]["params"]["detectors"] == ["det2"]


def test_queue_names_show_each_pending_task_as_id_and_plan_in_run_order(ioc, ca_context):
    ca_write(ca_context, ioc.pv("SUBMIT"), list(request("sleep", seconds=1).encode()) + [0], data_type=CHAR)
    queue = pending(ioc)
    names = [name.decode() for name in ca_read(ca_context, ioc.pv("QUEUE:NAMES")).data]
    assert len(queue) >= 2 and names[-1].endswith(" sleep")
    assert names == [f"{task['task_id'][:8]} {task['name']}" for task in queue]


def test_a_write_that_is_no_request_is_rejected_not_left_accepted(ioc, ca_context):
    submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Accepted"
    proc = run_ca("caput", "-c", ioc.pv("SUBMIT"), "12")  # numbers, without caput -S
    assert proc.returncode == 1
    assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Rejected"
    assert "write the JSON request as a string, e.g. caput -S" in caget_str(ioc.pv("SUBMIT:MESSAGE"))

