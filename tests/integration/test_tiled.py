"""--tiled-url: every run also goes to a real Tiled server; losing the server is reported, not fatal."""

from __future__ import annotations

import json
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("tiled.server")  # only skips if the test extra is not installed
pytest.importorskip("bluesky_tiled_plugins")

from tiled.client import from_uri  # noqa: E402

from ioc.service.runstore import read_run  # noqa: E402
from tests.integration.harness import (  # noqa: E402
    LOOPBACK,
    SETTLE,
    ManagedProcess,
    ca_read_text,
    free_port,
    scaled,
    start_process,
    wait_for,
)
from tests.integration.ioc_client import SAMPLE_PLANS, submit, wait_finished  # noqa: E402

API_KEY = secrets.token_hex(16)  # Tiled accepts alphanumeric keys only
SERVER_START = scaled(60)  # seconds; `tiled serve` usually answers within a few
# The IOC's Tiled client retries a refused connection for up to 45 s by default;
# keep that short here so the lost server is reported quickly.
FEW_RETRIES = {"TILED_RETRY_ATTEMPTS": "2", "TILED_RETRY_TIMEOUT": "2"}


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v1/", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_tiled(directory: Path) -> tuple[ManagedProcess, str]:
    """A writable Tiled catalog (SQLite + file and DuckDB tabular storage) in `directory`,
    served on loopback; waits until it answers HTTP."""
    port = free_port()
    (directory / "data").mkdir(parents=True)
    tiled = Path(sys.executable).parent / "tiled"
    server = start_process(
        [
            tiled, "serve", "catalog", directory / "catalog.db", "--init",
            "--write", directory / "data", "--write", f"duckdb:///{directory / 'data.duckdb'}",
            "--host", LOOPBACK, "--port", port, "--api-key", API_KEY,
        ],
        name="tiled",
        log_dir=directory,
    )
    url = f"http://{LOOPBACK}:{port}"
    try:
        wait_for(
            lambda: not server.is_running() or answers(url),
            SERVER_START,
            interval=0.1,
            message=f"tiled serve on {url}",
        )
        assert server.is_running(), f"tiled serve exited {server.returncode}:\n{server.log_tail()}"
    except BaseException:
        server.stop()
        raise
    return server, url


@pytest.fixture
def tiled_server(tmp_path):
    server, url = start_tiled(tmp_path / "tiled")
    yield server, url
    server.stop()


def count_request(correlation_id: str) -> str:
    return json.dumps(
        {"name": "count", "params": {"detectors": ["det1"], "num": 3}, "correlation_id": correlation_id}
    )


def test_runs_go_to_tiled_and_a_lost_server_is_reported(tiled_server, ioc_factory, ca_context, tmp_path):
    server, url = tiled_server
    state = tmp_path / "state"
    ioc = ioc_factory(
        *SAMPLE_PLANS, "--state-dir", state, "--tiled-url", url, "--tiled-api-key", API_KEY,
        env=FEW_RETRIES,
    )

    task_id = submit(ca_context, ioc, count_request("to-tiled"))
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    (uid,) = json.loads(ca_read_text(ca_context, ioc.pv("LAST:RUN_UIDS")))

    client = from_uri(url, api_key=API_KEY)
    run = wait_for(
        lambda: (node := client[uid]) and "stop" in node.metadata and node,
        SETTLE,
        interval=0.1,
        message=f"run {uid} complete in Tiled",
        ignore=(KeyError,),
    )
    start = run.metadata["start"]
    assert (start["task_id"], start["correlation_id"]) == (task_id, "to-tiled")
    assert run.metadata["stop"]["exit_status"] == "success"
    primary = run["primary"].read()
    assert len(primary["det1"]) == 3
    assert "run store" not in ca_read_text(ca_context, ioc.pv("ERROR:MESSAGE"))
    # The JSON Lines run file is kept as well.
    assert [name for name, _ in read_run(state / "runs", uid)].count("event") == 3

    server.stop()
    task_id = submit(ca_context, ioc, count_request("tiled-gone"))
    assert wait_finished(ca_context, ioc, task_id) == "Success"

    def run_store_error() -> str:
        text = ca_read_text(ca_context, ioc.pv("ERROR:MESSAGE"))
        return text if "run store" in text else ""

    message = wait_for(run_store_error, interval=0.1, message="run store error on ERROR:MESSAGE")
    assert "Tiled" in message, message
    assert ca_read_text(ca_context, ioc.pv("ERROR:ACTIVE")) == "Yes"
    (uid,) = json.loads(ca_read_text(ca_context, ioc.pv("LAST:RUN_UIDS")))
    wait_for(lambda: (state / "runs" / f"{uid}.jsonl").exists(), message="run file written")
