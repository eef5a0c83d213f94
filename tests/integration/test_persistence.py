"""Nothing accepted is lost: queue and history survive kill -9; run files survive restarts."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime

import event_model
import pytest

from ioc.service.runstore import read_run
from ioc.service.store import INTERRUPTED, StateStore
from tests.integration.harness import caget_str, run_ca, scaled, wait_for
from tests.integration.ioc_client import SAMPLE_PLANS, request, submit, wait_finished, wait_state

BIG = {"EPICS_CA_MAX_ARRAY_BYTES": "1000000"}


def pending(ioc) -> list[dict]:
    return json.loads(caget_str(ioc.pv("QUEUE"), env=BIG))


def history(ioc) -> list[dict]:
    return json.loads(caget_str(ioc.pv("HISTORY"), env=BIG))


def named(correlation_id: str, **params) -> str:
    return json.dumps({"name": "count", "params": {"detectors": ["det1"], **params}, "correlation_id": correlation_id})


def test_queue_and_history_survive_kill_9(ioc_factory, ca_context, tmp_path):
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    done = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert wait_finished(ca_context, ioc, done) == "Success"
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Hold").returncode == 0
    ids = [submit(ca_context, ioc, named(f"keep-{n}")) for n in range(5)]
    queue_before, history_before = pending(ioc), history(ioc)
    assert [task["task_id"] for task in queue_before] == ids

    ioc.kill()
    ioc.start()
    assert pending(ioc) == queue_before
    assert history(ioc) == history_before
    assert caget_str(ioc.pv("QUEUE:ENABLE")) == "Hold"
    assert caget_str(ioc.pv("QUEUE:COUNT")) == "5"


def test_a_task_killed_mid_run_is_recorded_and_queued_again_on_hold(ioc_factory, ca_context, tmp_path):
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    text = json.dumps({"name": "sleep", "params": {"seconds": 60}, "correlation_id": "long-one"})
    killed = submit(ca_context, ioc, text)
    wait_state(ca_context, ioc, "RUNNING")

    ioc.kill()
    ioc.start()
    (entry, *_) = history(ioc)
    assert (entry["task_id"], entry["result"], entry["error"]) == (killed, "Failed", INTERRUPTED)
    (copy,) = pending(ioc)
    assert copy["task_id"] != killed and copy["correlation_id"] == "long-one"
    assert (copy["name"], copy["params"]) == ("sleep", {"seconds": 60})
    assert caget_str(ioc.pv("QUEUE:ENABLE")) == "Hold"
    assert caget_str(ioc.pv("ERROR:ACTIVE")) == "Yes"
    assert caget_str(ioc.pv("ERROR:MESSAGE")) == f"{killed}: {INTERRUPTED}"


def test_twenty_kills_of_a_running_queue_lose_nothing_and_run_nothing_twice(ioc_factory, ca_context, tmp_path):
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Hold").returncode == 0
    accepted = {f"task-{n}" for n in range(100)}
    for correlation_id in sorted(accepted):
        submit(ca_context, ioc, named(correlation_id, num=2, delay=0.02))
    chance = random.Random(20261122)
    for _ in range(20):
        assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Run").returncode == 0
        time.sleep(chance.uniform(0.0, 0.4))  # a random moment of the running queue
        ioc.kill()
        ioc.start()
        assert caget_str(ioc.pv("QUEUE:ENABLE")) == ("Hold" if caget_str(ioc.pv("QUEUE:COUNT")) != "0" else "Run")
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Run").returncode == 0
    wait_for(lambda: caget_str(ioc.pv("QUEUE:COUNT")) == "0" and caget_str(ioc.pv("BUSY")) == "Idle", scaled(120))
    ioc.stop()

    store = StateStore.in_directory(tmp_path)
    outcomes = store.history(limit=1000)
    store.close()
    succeeded = [o.task.correlation_id for o in outcomes if o.result == "Success"]
    assert sorted(succeeded) == sorted(accepted)  # every accepted task ran to success once
    others = [o for o in outcomes if o.result != "Success"]
    assert all(o.error == INTERRUPTED for o in others)


def test_run_files_read_back_across_a_restart(ioc_factory, ca_context, tmp_path):
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    task_id = submit(ca_context, ioc, request("count", detectors=["det1"], num=3))
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    (uid,) = json.loads(caget_str(ioc.pv("LAST:RUN_UIDS")))
    ioc.restart()
    documents = read_run(tmp_path / "runs", uid)
    assert [name for name, _ in documents] == ["start", "descriptor", "event", "event", "event", "stop"]
    assert documents[0][1]["task_id"] == task_id


def test_an_unwritable_run_store_is_reported_and_the_task_still_runs(ioc_factory, ca_context, tmp_path):
    (tmp_path / "runs").write_text("a file where the run directory should be")
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    task_id = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    wait_for(lambda: "run store" in caget_str(ioc.pv("ERROR:MESSAGE")))
    assert caget_str(ioc.pv("ERROR:ACTIVE")) == "Yes"


def test_after_a_kill_last_shows_the_interrupted_task_with_its_runs_and_scan_ids_go_on(
    ioc_factory, ca_context, tmp_path
):
    from datetime import datetime

    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    first = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert wait_finished(ca_context, ioc, first) == "Success"
    (first_run,) = json.loads(caget_str(ioc.pv("LAST:RUN_UIDS")))
    killed = submit(ca_context, ioc, request("count", detectors=["det1"], num=600, delay=0.05))
    wait_for(lambda: caget_str(ioc.pv("CURRENT:RUN_UID")), message="the run opened")
    open_run = caget_str(ioc.pv("CURRENT:RUN_UID"))
    time.sleep(1.5)  # the heartbeat in the state database is noted once a second
    ioc.kill()
    killed_at = time.time()
    time.sleep(2)  # so that a restart time could not pass for the kill time
    ioc.start()

    assert caget_str(ioc.pv("LAST:TASK_ID")) == killed
    assert caget_str(ioc.pv("LAST:RESULT")) == "Failed"
    assert json.loads(caget_str(ioc.pv("LAST:RUN_UIDS"))) == [open_run]
    (entry, *_) = history(ioc)
    assert entry["run_uids"] == [open_run]
    finished = datetime.fromisoformat(entry["finished"]).timestamp()
    assert killed_at - 2.5 <= finished <= killed_at + 0.5, (finished, killed_at)
    assert read_run(tmp_path / "runs", open_run)[0][0] == "start"

    assert run_ca("caput", ioc.pv("QUEUE:CLEAR"), 1).returncode == 0
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Run").returncode == 0
    after = submit(ca_context, ioc, request("count", detectors=["det1"]))
    assert wait_finished(ca_context, ioc, after) == "Success"
    (after_run,) = json.loads(caget_str(ioc.pv("LAST:RUN_UIDS")))
    scan_ids = [read_run(tmp_path / "runs", uid)[0][1]["scan_id"] for uid in (first_run, open_run, after_run)]
    assert scan_ids == [scan_ids[0], scan_ids[0] + 1, scan_ids[0] + 2], scan_ids


def test_a_run_the_crash_cut_short_gets_its_stop_document_at_the_next_start(ioc_factory, ca_context, tmp_path):
    """kill -9 of the IOC during a scan: at the next start the run file ends with the stop
    document bluesky would have written (valid per event-model), and the standard JSONL
    reader sees the run as ended."""
    from databroker._drivers.jsonl import BlueskyJSONLCatalog

    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    # smotor moves at 1 mm/s: 0.5 mm a point, the scan takes about 40 s
    killed = submit(ca_context, ioc, request("scan", detectors=["sdet"], motor="smotor", start=0, stop=20, num=41))
    uid = wait_for(lambda: caget_str(ioc.pv("CURRENT:RUN_UID")), 15, message="the run opened")
    runs = tmp_path / "runs"
    wait_for(lambda: [name for name, _ in read_run(runs, uid)].count("event") >= 2, 30, message="two events written")
    ioc.kill()
    before = read_run(runs, uid)
    assert before[-1][0] != "stop"
    ioc.start()

    *documents, (name, stop) = read_run(runs, uid)
    assert documents == before and name == "stop"
    event_model.schema_validators[event_model.DocumentNames.stop].validate(stop)
    assert (stop["run_start"], stop["exit_status"], stop["reason"]) == (uid, "fail", INTERRUPTED)
    assert stop["num_events"] == {"primary": [name for name, _ in documents].count("event")}
    (entry, *_) = history(ioc)
    assert entry["task_id"] == killed and entry["run_uids"] == [uid]
    assert stop["time"] == pytest.approx(datetime.fromisoformat(entry["finished"]).timestamp(), abs=1e-3)
    run = BlueskyJSONLCatalog(str(runs / "*.jsonl"))[uid]
    assert run.metadata["stop"] == stop
