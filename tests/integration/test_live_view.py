"""Live view: EVENT and DOCUMENT monitors, progress while a scan runs, HISTORY, run files."""

from __future__ import annotations

import json
import threading

import pytest

from ioc.service.runstore import read_run
from tests.integration.harness import CA_TIMEOUT, caget_str, wait_for
from tests.integration.ioc_client import (
    SAMPLE_PLANS,
    Camonitor,
    read_json,
    request,
    submit,
    wait_finished,
)

BIG = {"EPICS_CA_MAX_ARRAY_BYTES": "1000000"}


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, state_dir):
    return module_ioc_factory(*SAMPLE_PLANS, "--continue-on-error", "--state-dir", state_dir)


class Monitor:
    """Values of a char-waveform PV seen by a caproto subscription, as text."""

    def __init__(self, ctx, name: str) -> None:
        from caproto import ChannelType

        (self.pv,) = ctx.get_pvs(name)
        self.values: list[str] = []
        self._lock = threading.Lock()
        self.subscription = self.pv.subscribe(data_type=ChannelType.CHAR)
        self.subscription.add_callback(self.record)

    def record(self, sub, response) -> None:
        with self._lock:
            self.values.append(bytes(response.data).split(b"\0", 1)[0].decode())

    def texts(self) -> list[str]:
        with self._lock:
            return list(self.values)

    def close(self) -> None:
        self.subscription.clear()


def test_camonitor_prints_the_events_of_a_task(ioc, ca_context):
    camonitor = Camonitor(ioc.pv("EVENT"))
    try:
        task_id = submit(ca_context, ioc, request("count", detectors=["det1"], num=3))
        assert wait_finished(ca_context, ioc, task_id) == "Success"
        wait_for(lambda: any(e["type"] == "task_finished" for e in camonitor.json_values()))
    finally:
        camonitor.stop()
    events = camonitor.json_values()
    mine = [event["type"] for event in events if event["task_id"] == task_id]
    assert mine == ["task_submitted", "task_started", "task_finished"]
    states = [event["state"] for event in events if event["type"] == "state_changed"]
    assert "RUNNING" in states and states[-1] == "IDLE"
    assert all(event["correlation_id"] == task_id for event in events if event["task_id"] == task_id)


def test_pyepics_monitors_see_the_start_document_and_failure_events(ioc, ca_context):
    import epics

    documents: list[dict] = []
    events: list[dict] = []

    def collect(into):
        def callback(char_value=None, **kwargs):
            if char_value:
                into.append(json.loads(char_value))
        return callback

    document_pv = epics.PV(ioc.pv("DOCUMENT"), callback=collect(documents), auto_monitor=True)
    event_pv = epics.PV(ioc.pv("EVENT"), callback=collect(events), auto_monitor=True)
    try:
        assert document_pv.wait_for_connection(CA_TIMEOUT) and event_pv.wait_for_connection(CA_TIMEOUT)
        text = json.dumps({"name": "count", "params": {"detectors": ["det2"]}, "correlation_id": "cid-7"})
        task_id = submit(ca_context, ioc, text)
        failed = submit(ca_context, ioc, request("fail", message="sample lost"))
        assert wait_finished(ca_context, ioc, failed) == "Failed"
        wait_for(lambda: any(e["type"] == "task_failed" for e in events))
    finally:
        document_pv.disconnect()
        event_pv.disconnect()
    (start,) = [d for d in documents if d["name"] == "start" and d["task_id"] == task_id]
    assert start["correlation_id"] == "cid-7"
    assert start["doc"]["task_id"] == task_id and start["doc"]["correlation_id"] == "cid-7"
    assert any(d["name"] == "stop" and d["task_id"] == task_id for d in documents)
    (failure,) = [e for e in events if e["type"] == "task_failed"]
    assert failure["task_id"] == failed and failure["error"] == "ValueError: sample lost"


def test_progress_moves_while_a_scan_runs(ioc, ca_context):
    progress = Monitor(ca_context, ioc.pv("PROGRESS"))
    (percent_pv,) = ca_context.get_pvs(ioc.pv("CURRENT:PROGRESS"))
    percents: list[float] = []

    def record(sub, response) -> None:
        percents.append(float(response.data[0]))

    percent_sub = percent_pv.subscribe()
    percent_sub.add_callback(record)
    try:
        task_id = submit(ca_context, ioc, request("scan", detectors=["det1"], motor="smotor", start=0, stop=1, num=3))
        wait_for(lambda: caget_str(ioc.pv("CURRENT:RUN_UID")) != "")
        assert caget_str(ioc.pv("CURRENT:SCAN_ID")) != "0"
        assert float(caget_str(ioc.pv("CURRENT:ELAPSED"))) >= 0
        assert wait_finished(ca_context, ioc, task_id) == "Success"
        wait_for(lambda: 100 in percents, message=f"CURRENT:PROGRESS reached 100: {percents}")
        wait_for(lambda: any('"done":true' in text for text in progress.texts()))
    finally:
        progress.close()
        percent_sub.clear()
    rising = [p for p in percents if p > 0]
    assert rising == sorted(rising) and 0 < rising[0] < 100 and rising[-1] == 100
    views = [json.loads(text).get("smotor") for text in progress.texts() if text]
    moving = [view for view in views if view and not view["done"] and 0 < (view["percentage"] or 0) < 100]
    assert moving, f"no view of smotor under way among {views}"
    assert {"current", "initial", "target", "unit", "precision", "percentage", "done"} <= set(moving[0])
    assert moving[0]["unit"] == "mm"


def test_history_lists_finished_tasks_newest_first(ioc, ca_context):
    ids = [submit(ca_context, ioc, request("count", detectors=["det1"])) for _ in range(2)]
    assert wait_finished(ca_context, ioc, ids[-1]) == "Success"
    history = json.loads(caget_str(ioc.pv("HISTORY"), env=BIG))
    assert [entry["task_id"] for entry in history[:2]] == ids[::-1]
    entry = history[0]
    assert entry["result"] == "Success" and entry["error"] is None and len(entry["run_uids"]) == 1
    assert entry["started"] <= entry["finished"]


def test_every_document_is_in_the_run_file(ioc, ca_context, state_dir):
    task_id = submit(ca_context, ioc, request("scan", detectors=["det1", "det2"], motor="motor1", start=0, stop=1, num=4))
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    (uid,) = read_json(ca_context, ioc, "LAST:RUN_UIDS")
    run_file = state_dir / "runs" / f"{uid}.jsonl"
    wait_for(lambda: run_file.exists() and read_run(state_dir / "runs", uid)[-1][0] == "stop")
    documents = read_run(state_dir / "runs", uid)
    names = [name for name, _ in documents]
    assert names[0] == "start" and names[-1] == "stop" and names.count("event") == 4
    assert documents[0][1]["task_id"] == task_id
    assert [doc["seq_num"] for name, doc in documents if name == "event"] == [1, 2, 3, 4]
