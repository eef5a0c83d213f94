"""Helpers that speak the IOC's contract over Channel Access (on top of harness)."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from typing import Any

from tests.integration.harness import (
    SETTLE,
    IocProcess,
    ca_bin,
    ca_read_text,
    ca_read_value,
    ca_write_text,
    process_env,
    run_ca,
    unescape_c,
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


def wait_finished(ctx, ioc: IocProcess, task_id: str, timeout: float = SETTLE) -> str:
    """Wait until `task_id` has finished; return its result (`LAST:RESULT` while it is the
    last finished task, else its `HISTORY` entry's: a task queued behind it may end
    between two reads). Bound by progress: the wait fails once the current task and its
    `CURRENT:PROGRESS` have stood still for `timeout` seconds, so a long scan on a busy
    machine may take as long as it moves."""
    seen, moved = None, time.monotonic()
    while ca_read_text(ctx, ioc.pv("LAST:TASK_ID")) != task_id:
        now = (ca_read_text(ctx, ioc.pv("CURRENT:TASK_ID")), ca_read_value(ctx, ioc.pv("CURRENT:PROGRESS")))
        if now != seen:
            seen, moved = now, time.monotonic()
        elif (result := _finished_result(ctx, ioc, task_id)) is not None:
            return result
        elif time.monotonic() - moved > timeout:
            raise TimeoutError(f"task {task_id} did not finish: (current task, progress) stood at {seen} "
                               f"for {timeout} s")
        time.sleep(0.05)
    return ca_read_text(ctx, ioc.pv("LAST:RESULT"))


def _finished_result(ctx, ioc: IocProcess, task_id: str) -> str | None:
    """The result `HISTORY` gives `task_id`, if it lists it."""
    entries = read_json(ctx, ioc, "HISTORY")
    return next((entry["result"] for entry in entries if entry["task_id"] == task_id), None)


def read_json(ctx, ioc: IocProcess, name: str) -> Any:
    """A JSON PV, parsed."""
    return json.loads(ca_read_text(ctx, ioc.pv(name)))


def command(ioc: IocProcess, name: str, wait: float = 30):
    """`caput -c -w <wait> $(P)<name> 1` with the real C tool; the CompletedProcess."""
    return run_ca("caput", "-c", "-w", wait, ioc.pv(name), 1, timeout=wait + 10)


def start_caput(ioc: IocProcess, name: str, text: str, wait: float = 60) -> subprocess.Popen:
    """`caput -c -S` of `text` in the background (e.g. a `RUN` that waits for its task)."""
    args = [str(ca_bin("caput")), "-c", "-w", str(wait), "-S", ioc.pv(name), text.replace("\\", "\\\\")]
    return subprocess.Popen(args, env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_state(ctx, ioc: IocProcess, state: str, timeout: float = SETTLE) -> None:
    """Wait until `STATE` reads `state`."""
    wait_for(lambda: ca_read_text(ctx, ioc.pv("STATE")) == state, timeout, message=f"STATE {state}")


class Camonitor:
    """The C `camonitor -S` of one PV, its output lines collected by a thread."""

    def __init__(self, pvname: str) -> None:
        args = [str(ca_bin("camonitor")), "-S", pvname]
        self._process = subprocess.Popen(
            args, env=process_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(lambda: self.lines, message=f"camonitor {pvname} connected")

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))

    def json_values(self) -> list[Any]:
        """Every value printed so far that is a JSON object (C escapes undone)."""
        found = (re.search(r"(\{.*\})\s*$", line) for line in list(self.lines))
        return [json.loads(unescape_c(match.group(1))) for match in found if match]

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._reader.join(10)


def pvput(ioc: IocProcess, name: str, *values: Any, wait: float = 30) -> subprocess.CompletedProcess:
    """The real C `pvput -w <wait>` (its exit status kept)."""
    return run_ca("pvput", "-w", wait, ioc.pv(name), *values, timeout=wait + 10)


def pvput_request(ioc: IocProcess, name: str, text: str, wait: float = 30) -> subprocess.CompletedProcess:
    """`pvput` of a JSON request: a leading space keeps pvput from parsing it as JSON itself."""
    return pvput(ioc, name, " " + text, wait=wait)


class Pvmonitor:
    """The C `pvmonitor` of some PVs, its output lines collected by a thread."""

    def __init__(self, *pvnames: str) -> None:
        self._process = subprocess.Popen([str(ca_bin("pvmonitor")), *pvnames], env=process_env(),
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(lambda: len(self.lines) >= len(pvnames), 10, message="pvmonitor connected")

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._reader.join(10)
