"""pvAccess beside Channel Access: every PV of the contract under the same name with its
normative type, the five tables, and writes with the real C `pvput`, the same identity,
permissions and put log as CA writes.
"""

from __future__ import annotations

import getpass
import json
import re
import subprocess

import pytest
from caproto import ChannelType
from p4p.client.thread import Context

from tests.integration.harness import (
    ca_bin,
    ca_read,
    ca_read_text,
    ca_read_value,
    process_env,
    run_ca,
    wait_for,
)
from tests.integration.ioc_client import (
    SAMPLE_PLANS,
    Camonitor,
    Pvmonitor,
    pvput,
    pvput_request,
    request,
    wait_state,
)

TABLES = {
    "QUEUE": ["task_id", "name", "params", "correlation_id", "submitted", "user"],
    "HISTORY": ["task_id", "name", "result", "error", "correlation_id", "started", "finished",
                "duration", "run_uids", "user"],
    "PLANS": ["name", "description", "schema"],
    "DEVICES": ["name", "class", "protocols", "available"],
    "SUSPENDERS": ["name", "signal", "kind", "tripped"],
}
CHANGING = {"HEARTBEAT", "CURRENT:ELAPSED"}  # moving on their own: compared for type only


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    return module_ioc_factory(*SAMPLE_PLANS, "--list-pvs", "--continue-on-error",
                              "--state-dir", tmp_path_factory.mktemp("state"))


@pytest.fixture(scope="module")
def pva():
    context = Context("pva", nt=False)
    yield context
    context.close()


def served_pvs(ioc) -> list[str]:
    """The PV names the IOC logged with `--list-pvs` (its whole Channel Access face)."""
    log = wait_for(lambda: "PVs available:" in ioc.log_text() and ioc.log_text(), 30)
    listed = log.split("PVs available:", 1)[1].splitlines()[1:]
    names = []
    for line in listed:
        if not line.startswith(ioc.prefix):
            break
        names.append(line.strip())
    return names


def test_every_pv_has_its_normative_type_and_cas_value_at_rest(ioc, pva, ca_context):
    names = served_pvs(ioc)
    assert len(names) > 50 and ioc.pv("QUEUE") in names and ioc.pv("BUS:STATUS") in names
    for name in names:
        short = name.removeprefix(ioc.prefix)
        value = pva.get(name, timeout=5)
        native = _native(ca_context, name)
        if short in TABLES:
            assert value.getID() == "epics:nt/NTTable:1.0", name
            assert list(value.labels) == TABLES[short], name
            text = ca_read_text(ca_context, name)
            items = json.loads(text) if text else []
            first = TABLES[short][0]
            assert list(value.value[first]) == [item[first] for item in items], name
            continue
        if native == ChannelType.ENUM:
            assert value.getID() == "epics:nt/NTEnum:1.0", name
            ctrl = ca_read(ca_context, name, data_type=ChannelType.CTRL_ENUM).metadata
            choices = [choice.decode() for choice in ctrl.enum_strings]
            assert list(value.value.choices) == choices, name
            assert value.value.choices[value.value.index] == ca_read_text(ca_context, name), name
        elif native in (ChannelType.DOUBLE, ChannelType.LONG):
            assert value.getID() == "epics:nt/NTScalar:1.0", name
            assert value.type()["value"] == ("d" if native == ChannelType.DOUBLE else "i"), name
            ctrl_type = ChannelType.CTRL_DOUBLE if native == ChannelType.DOUBLE else ChannelType.CTRL_LONG
            meta = ca_read(ca_context, name, data_type=ctrl_type).metadata
            assert value.display.units == meta.units.decode(), name
            assert (value.display.limitLow, value.display.limitHigh) == (
                meta.lower_disp_limit, meta.upper_disp_limit), name
            assert (value.control.limitLow, value.control.limitHigh) == (
                meta.lower_ctrl_limit, meta.upper_ctrl_limit), name
            if native == ChannelType.DOUBLE:
                assert value.display.precision == meta.precision, name
            if short not in CHANGING:
                assert value.value == ca_read(ca_context, name).data[0], name
        elif short in ("QUEUE:NAMES", "PLANS:NAMES"):
            assert value.getID() == "epics:nt/NTScalarArray:1.0", name
            assert list(value.value) == [entry for entry in _strings(ca_context, name) if entry], name
        else:
            assert value.getID() == "epics:nt/NTScalar:1.0" and value.type()["value"] == "s", name
            assert value.value == ca_read_text(ca_context, name), name
        assert value.display.description, f"{name}: no description"


def _native(ca_context, name: str) -> ChannelType:
    from tests.integration.harness import _pv

    return _pv(ca_context, name, 5).channel.native_data_type


def _strings(ca_context, name: str) -> list[str]:
    return [entry.decode() for entry in ca_read(ca_context, name).data]


def test_pvput_run_completes_when_the_task_ends_and_fails_with_the_reason(ioc, pva, ca_context):
    done = pvput_request(ioc, "RUN", request("count", detectors=["det1"], num=2))
    assert done.returncode == 0, done.stdout + done.stderr
    assert ca_read_text(ca_context, ioc.pv("LAST:RESULT")) == "Success"  # set before completion

    failed = pvput_request(ioc, "RUN", request("fail", message="pvput boom"))
    assert failed.returncode != 0
    assert "ended Failed" in failed.stderr and "pvput boom" in failed.stderr

    refused = pvput_request(ioc, "RUN", request("count", detectors=["nope"]))
    assert refused.returncode != 0
    assert "params.detectors.0: unknown device 'nope'" in refused.stderr
    assert ca_read_text(ca_context, ioc.pv("SUBMIT:STATUS")) == "Rejected"

    history = pva.get(ioc.pv("HISTORY"), timeout=5).value
    assert list(history.result[:2]) == ["Failed", "Success"]
    assert list(history.user[:2]) == [getpass.getuser()] * 2
    assert history.duration[1] > 0
    assert json.loads(history.run_uids[1]) and "pvput boom" in history.error[0]


def test_pvput_submit_and_the_queue_table_with_its_submitter(ioc, pva, ca_context):
    assert pvput(ioc, "QUEUE:ENABLE", "Hold").returncode == 0
    try:
        ids = []
        for seconds in (1, 2):
            proc = pvput_request(ioc, "SUBMIT", request("sleep", seconds=seconds))
            assert proc.returncode == 0, proc.stderr
            ids.append(ca_read_text(ca_context, ioc.pv("SUBMIT:TASK_ID")))
        table = pva.get(ioc.pv("QUEUE"), timeout=5).value
        assert list(table.task_id) == ids and list(table.name) == ["sleep", "sleep"]
        assert [json.loads(params) for params in table.params] == [{"seconds": 1}, {"seconds": 2}]
        assert list(table.user) == [getpass.getuser()] * 2

        assert pvput(ioc, "QUEUE:REMOVE", ids[0]).returncode == 0
        missing = pvput(ioc, "QUEUE:REMOVE", "no-such-task")
        assert missing.returncode != 0 and "no-such-task" in missing.stderr
        assert list(pva.get(ioc.pv("QUEUE"), timeout=5).value.task_id) == ids[1:]
        assert pvput(ioc, "QUEUE:CLEAR", "1").returncode == 0
        assert len(pva.get(ioc.pv("QUEUE"), timeout=5).value.task_id) == 0
    finally:
        assert pvput(ioc, "QUEUE:ENABLE", "Run").returncode == 0
    assert ca_read_text(ca_context, ioc.pv("QUEUE:ENABLE")) == "Run"


def test_control_pvs_over_pvput(ioc, ca_context):
    for name in ("PAUSE", "PAUSE:DEFER", "RESUME", "STOP", "ABORT", "HALT"):
        refused = pvput(ioc, name, "1")
        assert refused.returncode != 0 and "IDLE" in refused.stderr, (name, refused.stderr)
    assert pvput(ioc, "ERROR:CLEAR", "1").returncode == 0
    assert ca_read_text(ca_context, ioc.pv("ERROR:ACTIVE")) == "No"

    assert pvput(ioc, "PANIC", "1").returncode == 0
    assert ca_read_text(ca_context, ioc.pv("STATE")) == "PANICKED"
    assert pvput(ioc, "ALL_IS_WELL", "1").returncode == 0
    assert ca_read_text(ca_context, ioc.pv("STATE")) == "IDLE"
    assert pvput(ioc, "RELOAD", "1", wait=60).returncode == 0

    running = subprocess.Popen([str(ca_bin("pvput")), "-w", "60", ioc.pv("RUN"),
                                " " + request("sleep", seconds=20)],
                               env=process_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_state(ca_context, ioc, "RUNNING")
        assert pvput(ioc, "PAUSE", "1").returncode == 0
        assert ca_read_text(ca_context, ioc.pv("STATE")) == "PAUSED"
        assert pvput(ioc, "RESUME", "1").returncode == 0
        assert ca_read_text(ca_context, ioc.pv("STATE")) == "RUNNING"
        assert pvput(ioc, "ABORT", "1").returncode == 0
        _, err = running.communicate(timeout=30)
        assert running.returncode != 0 and "ended Aborted" in err
    finally:
        if running.poll() is None:
            running.kill()
            running.wait(10)
    assert ca_read_text(ca_context, ioc.pv("LAST:RESULT")) == "Aborted"


def test_pvinfo_and_pvget_show_the_queue_table(ioc):
    info = run_ca("pvinfo", ioc.pv("QUEUE"))
    assert info.returncode == 0 and "epics:nt/NTTable:1.0" in info.stdout
    assert "string[] task_id" in info.stdout and "string[] user" in info.stdout
    table = run_ca("pvget", ioc.pv("HISTORY"))
    assert table.returncode == 0
    header = next(line for line in table.stdout.splitlines() if "task_id" in line)
    assert header.split() == TABLES["HISTORY"]


def test_read_only_pvs_refuse_pvput(ioc):
    proc = pvput(ioc, "STATE", "1")
    assert proc.returncode != 0 and "read-only" in proc.stderr


def test_pvmonitor_sees_the_same_state_and_event_sequence_as_camonitor(ioc, ca_context):
    state_ca, event_ca = Camonitor(ioc.pv("STATE")), Camonitor(ioc.pv("EVENT"))
    monitor = Pvmonitor(ioc.pv("STATE"), ioc.pv("EVENT"))
    try:
        proc = pvput_request(ioc, "RUN", request("count", detectors=["det1"], num=5, delay=0.05))
        assert proc.returncode == 0, proc.stderr
        wait_for(lambda: any("task_finished" in line for line in monitor.lines), 10)
        wait_for(lambda: any('task_finished' in line for line in event_ca.lines), 10)
    finally:
        monitor.stop()
        state_ca.stop()
        event_ca.stop()
    states_ca = [line.split()[-1] for line in state_ca.lines]
    states_pva = [m.group(1) for m in (re.search(rf"^{re.escape(ioc.pv('STATE'))}\s.*\(\d+\)\s+(\S+)", line)
                                       for line in monitor.lines) if m]
    assert states_pva == states_ca and "RUNNING" in states_pva
    events_ca = [(event["type"], event["state"]) for event in event_ca.json_values()]
    events_pva = [(event["type"], event["state"]) for event in _json_objects(monitor.lines, ioc.pv("EVENT"))]
    assert events_pva == events_ca
    assert [kind for kind, _ in events_pva][-1] == "task_finished"


def _json_objects(lines: list[str], pvname: str) -> list[dict]:
    found = []
    for line in lines:
        if line.startswith(pvname + " "):
            match = re.search(r'("\{.*\}")\s*$', line) or re.search(r"(\{.*\})\s*$", line)
            if match:
                text = match.group(1)
                found.append(json.loads(json.loads(text) if text.startswith('"') else text))
    return found


def test_a_pv_changed_while_no_pvaccess_client_watched_reads_as_channel_access_shows_it(ioc, ca_context):
    """A PV is served over pvAccess only while a client is connected (it is then opened with
    what the channel holds): the changes made in between are not lost.
    """
    names = ("LAST:TASK_ID", "LAST:DURATION", "HISTORY", "LAST:RESULT")
    first = Context("pva", nt=False)
    before = first.get([ioc.pv(name) for name in names], timeout=5)
    first.close()  # the last client of these PVs goes
    done = run_ca("caput", "-c", "-w", "30", "-S", ioc.pv("RUN"),
                  request("count", detectors=["det1"], num=1), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    task_id = ca_read_text(ca_context, ioc.pv("LAST:TASK_ID"))
    second = Context("pva", nt=False)
    try:
        after = second.get([ioc.pv(name) for name in names], timeout=5)
    finally:
        second.close()
    assert before[0].value != task_id and after[0].value == task_id
    assert after[1].value == pytest.approx(ca_read_value(ca_context, ioc.pv("LAST:DURATION")))
    assert after[2].value.task_id[0] == task_id
    assert after[3].value.index == 1  # Success
    assert after[0].timeStamp.secondsPastEpoch >= before[0].timeStamp.secondsPastEpoch


def test_a_pvaccess_monitor_follows_the_alarm_and_the_history_rows_task_after_task(ioc):
    """Updates carry the alarm only when it changed (p4p keeps it otherwise), and the
    HISTORY table's rows are built from the outcomes the CA face listed, each once.
    """
    context = Context("pva", nt=False)
    seen: list = []
    monitor = context.monitor(ioc.pv("LAST:RESULT"), seen.append)
    try:
        wait_for(lambda: seen, 10, message="a first LAST:RESULT over pvAccess")
        results = []
        for plan in (request("fail", message="alarm me"), request("count", detectors=["det1"], num=1),
                     request("count", detectors=["det1"], num=1), request("fail", message="again")):
            before = len(seen)
            run_ca("caput", "-c", "-w", "30", "-S", ioc.pv("RUN"), plan, timeout=60)
            wait_for(lambda count=before: len(seen) > count, 10, message="a LAST:RESULT update")
            results.append((seen[-1].value.index, seen[-1].alarm.severity))
        history = context.get(ioc.pv("HISTORY"), timeout=5).value
    finally:
        monitor.close()
        context.close()
    assert results == [(2, 2), (1, 0), (1, 0), (2, 2)]  # Failed/MAJOR, Success/NO_ALARM, ...
    assert list(history.result[:4]) == ["Failed", "Success", "Success", "Failed"]
    assert "again" in history.error[0] and "alarm me" in history.error[3]
    assert len(set(history.task_id)) == len(history.task_id)
