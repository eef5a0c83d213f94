"""Peer driver: blueapi. Runs inside blueapi's venv (see ``envs.py``); started by
``bench.peers.runner`` as ``<venv>/bin/python blueapi_bench.py --json OUT --workdir DIR``.

Starts ``blueapi -c config.yaml serve`` on a free 127.0.0.1 port with one environment:
devices ``det``/``motor`` from ``ophyd.sim`` (``peer_env/bench_peer_devices.py``) and
the plans of ``peer_env/bench_peer_plans.py`` (bluesky's ``count`` and ``scan``).
No message broker (STOMP off: blueapi's default), no auth, default logging.

Two client paths, both with one long-lived HTTP session for REST:

* REST: ``POST /tasks`` then ``PUT /worker/task``, then ``GET /tasks/{id}`` every 10 ms
  until ``is_complete`` (REST has no push notification);
* websocket: ``/api/v2/run_plan`` (blueapi's own ``run_blocking`` client path): one
  connection per task, submit, read the pushed events until the ``WorkerEvent`` whose
  ``task_status.task_complete`` is true.

blueapi runs one task at a time (a ``PUT /worker/task`` while busy is a 409), so
"back to back" means: the next task is submitted as soon as the previous one is seen
finished.
"""
from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

from common import (
    PEER_ENV,
    POLL,
    SCAN_ARGS,
    SIZES,
    Bare,
    Proc,
    free_port,
    install_signal_handlers,
    log,
    memory,
    metric,
    round_trip_rows,
    run_sections,
    scan_row,
    throughput_row,
    versions,
    wait_until,
)

SESSION = "cm00000-1"  # blueapi requires an instrument_session on every task
COUNT = {"name": "count", "params": {"detectors": ["det"], "num": 1}}
SCAN = {"name": "scan", "params": {"detectors": ["det"], "motor": "motor", "start": SCAN_ARGS[0],
                                   "stop": SCAN_ARGS[1], "num": SCAN_ARGS[2]}}
TASK_TIMEOUT = 120.0


class Client:
    def __init__(self, port: int) -> None:
        import requests

        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/api/v2/run_plan"
        self.http = requests.Session()

    # -- REST, polled
    def rest(self, task: dict) -> float:
        t0 = time.perf_counter()
        r = self.http.post(f"{self.url}/tasks", json={**task, "instrument_session": SESSION}, timeout=30)
        r.raise_for_status()
        task_id = r.json()["task_id"]
        self.http.put(f"{self.url}/worker/task", json={"task_id": task_id}, timeout=30).raise_for_status()
        deadline = t0 + TASK_TIMEOUT
        while True:
            r = self.http.get(f"{self.url}/tasks/{task_id}", timeout=30)
            r.raise_for_status()
            state = r.json()
            if state["is_complete"]:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"task {task_id} not complete in {TASK_TIMEOUT} s")
            time.sleep(POLL)
        elapsed = time.perf_counter() - t0
        outcome = state.get("outcome") or {}
        if state.get("errors") or outcome.get("outcome") != "success":
            raise RuntimeError(f"task {task_id} failed: {state.get('errors')} {outcome}")
        return elapsed

    # -- websocket, pushed events
    def ws(self, task: dict) -> float:
        from websockets.sync.client import connect

        t0 = time.perf_counter()
        with connect(self.ws_url, open_timeout=30, close_timeout=5) as ws:
            ws.send(json.dumps({"kind": "submit", "task": {**task, "instrument_session": SESSION}}))
            while True:
                msg = json.loads(ws.recv(timeout=TASK_TIMEOUT))
                if msg.get("kind") != "update":
                    raise RuntimeError(f"run_plan refused the task: {msg}")
                status = (msg.get("data") or {}).get("task_status") or {}
                if "state" in msg["data"] and status.get("task_complete"):
                    break
            elapsed = time.perf_counter() - t0
        if status.get("task_failed"):
            raise RuntimeError(f"task failed: {msg}")
        return elapsed

    def batch(self, path: str, tasks: int) -> float:
        run = self.rest if path == "rest" else self.ws
        t0 = time.perf_counter()
        for _ in range(tasks):
            run(COUNT)
        return time.perf_counter() - t0


def write_config(work: Path, port: int) -> Path:
    cfg = work / "config.yaml"
    cfg.write_text(
        "env:\n"
        "  sources:\n"
        "    - kind: deviceManager\n"
        "      module: bench_peer_devices\n"
        "    - kind: planFunctions\n"
        "      module: bench_peer_plans\n"
        "api:\n"
        f"  url: http://127.0.0.1:{port}\n"
    )
    return cfg


def main() -> int:
    from common import driver_args

    args = driver_args("blueapi_bench.py", __doc__)
    size = SIZES["quick" if args.quick else "full"]
    work = Path(args.workdir)
    Proc.pid_file = work / "pids.json"
    install_signal_handlers()
    result: dict = {"peer": "blueapi", "status": "ok", "rows": [],
                    "versions": versions("blueapi", "bluesky", "ophyd", "ophyd-async", "fastapi", "uvicorn",
                                         "websockets"),
                    "client_rule": "REST: poll GET /tasks/{id} every 10 ms; websocket: pushed events",
                    "bare": "RunEngine(context_managers=[]) in the driver process (blueapi's venv)"}
    rows = result["rows"]
    server = None
    try:
        port = free_port()
        cfg = write_config(work, port)
        env = dict(os.environ, PYTHONPATH=str(PEER_ENV))
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        blueapi = str(Path(sys.executable).parent / "blueapi")
        client = Client(port)
        import requests

        def ready():
            try:
                r = client.http.get(f"{client.url}/environment", timeout=2)
            except requests.RequestException:
                return False
            if r.status_code != 200:
                return False
            body = r.json()
            if body.get("error_message"):
                raise RuntimeError(f"environment failed: {body['error_message']}")
            return body.get("initialized")

        log(f"blueapi: serve on 127.0.0.1:{port}")
        server = Proc("blueapi", [blueapi, "-c", str(cfg), "serve"], work / "blueapi.log", env=env, cwd=str(work))
        wait_until(ready, 120, "blueapi environment initialized", proc=server)
        launch = time.perf_counter() - server.t_launch
        time.sleep(2.0)
        idle = memory(server.pid)
        rows.append(metric("launch -> ready", "s", launch, note="Popen to GET /environment initialized"))
        rows.append(metric("idle RSS (server+worker)", "MB", idle["rss_mb"], pss_mb=idle["pss_mb"],
                           processes=idle["processes"]))
        log(f"blueapi: ready in {launch:.2f} s, idle RSS {idle['rss_mb']:.0f} MB")

        bare = Bare()
        sections = [
            ("count RT REST+poll", lambda: round_trip_rows("REST+poll", lambda: client.rest(COUNT), bare, size,
                                                         "POST /tasks + PUT /worker/task, poll 10 ms")),
            ("count RT websocket", lambda: round_trip_rows("websocket", lambda: client.ws(COUNT), bare, size,
                                                         "/api/v2/run_plan, pushed completion")),
            ("counts REST+poll", lambda: throughput_row("REST+poll", lambda n: client.batch("rest", n), bare, size,
                                                      "sequential: next submitted once previous seen finished")),
            ("counts websocket", lambda: throughput_row("websocket", lambda n: client.batch("ws", n), bare, size,
                                                      "sequential: next submitted once previous seen finished")),
            ("scan websocket", lambda: scan_row("websocket", lambda: client.ws(SCAN), bare, size,
                                              "scan([det], motor, -1, 1, 200)")),
            ("scan REST+poll", lambda: scan_row("REST+poll", lambda: client.rest(SCAN), bare, size,
                                              "scan([det], motor, -1, 1, 200)")),
        ]
        rows.extend(run_sections("blueapi", sections, server))
        after = memory(server.pid)
        result["rss_after_mb"] = after["rss_mb"]
        result["stomp"] = ("not measured: blueapi's STOMP event path needs a STOMP broker "
                           "(ActiveMQ/RabbitMQ), not set up here; the websocket path is the push path")
    except Exception as exc:
        result["status"] = "unavailable"
        result["reason"] = f"{type(exc).__name__}: {exc}"[:500]
        result["traceback"] = traceback.format_exc()
        log(f"blueapi: {result['reason']}")
    finally:
        if server is not None:
            result["server_log"] = str(server.log_path)
            result["graceful_stop"] = server.stop()
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
