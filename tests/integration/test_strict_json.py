"""JSON on every PV and in the run store is strict (RFC 8259), even when a detector reads NaN."""

from __future__ import annotations

import json

from ioc.service.runstore import read_run
from tests.integration.harness import caget_str, wait_for
from tests.integration.ioc_client import SAMPLE_PLANS, request, submit


def strict_json(text: str):
    """Parse `text` as RFC 8259 JSON: NaN/Infinity tokens are errors."""
    def refuse(token: str):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_a_reading_of_nan_is_strict_json_everywhere(ioc_factory, ca_context, tmp_path):
    ioc = ioc_factory(*SAMPLE_PLANS, "--state-dir", tmp_path)
    task_id = submit(ca_context, ioc, request("read_nan"))
    wait_for(lambda: caget_str(ioc.pv("LAST:TASK_ID")) == task_id)
    assert caget_str(ioc.pv("LAST:RESULT")) == "Success"
    (uid,) = strict_json(caget_str(ioc.pv("LAST:RUN_UIDS")))
    run_file = (tmp_path / "runs" / f"{uid}.jsonl").read_text()
    events = [doc for name, doc in map(strict_json, run_file.splitlines()) if name == "event"]
    assert events and events[0]["data"]["nan_signal"] is None
    strict_json(caget_str(ioc.pv("HISTORY")))
    assert read_run(tmp_path / "runs", uid)[0][0] == "start"
