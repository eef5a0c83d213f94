"""Helpers that speak the IOC's contract over Channel Access (on top of harness)."""

from __future__ import annotations

import json
from typing import Any

from tests.integration.harness import (
    IocProcess,
    ca_read_text,
    ca_read_value,
    ca_write_text,
    wait_for,
)

SAMPLE_PLANS = ("--plans", "plans", "--plans", "tests.integration.sample_plans")


def request(name: str, **params: Any) -> str:
    """The JSON of a task request for plan `name`."""
    return json.dumps({"name": name, "params": params})


def submit(ctx, ioc: IocProcess, text: str) -> str:
    """Write `text` to SUBMIT with completion (caproto); return the accepted task id."""
    ca_write_text(ctx, ioc.pv("SUBMIT"), text)
    assert ca_read_value(ctx, ioc.pv("SUBMIT:STATUS")) == 1, ca_read_text(ctx, ioc.pv("SUBMIT:MESSAGE"))
    return ca_read_text(ctx, ioc.pv("SUBMIT:TASK_ID"))


def wait_finished(ctx, ioc: IocProcess, task_id: str, timeout: float = 30) -> str:
    """Wait until `task_id` is the last finished task; return `LAST:RESULT`."""
    wait_for(
        lambda: ca_read_text(ctx, ioc.pv("LAST:TASK_ID")) == task_id,
        timeout,
        message=f"task {task_id} did not finish",
    )
    return ca_read_text(ctx, ioc.pv("LAST:RESULT"))


def read_json(ctx, ioc: IocProcess, name: str) -> Any:
    """A JSON PV, parsed."""
    return json.loads(ca_read_text(ctx, ioc.pv(name)))
