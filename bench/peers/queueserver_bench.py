"""Peer driver: bluesky-queueserver. Runs inside the queueserver venv (see ``envs.py``);
started by ``bench.peers.runner`` as
``<venv>/bin/python queueserver_bench.py --json OUT --workdir DIR``.

Starts, on 127.0.0.1 and free ports: Debian's ``redis-server`` (no persistence), then
``start-re-manager`` with a startup dir whose ``startup.py`` defines
``RE = RunEngine(context_managers=[])``, ``det``/``motor`` from ``ophyd.sim`` and the
plans of ``peer_env/bench_peer_plans.py`` (bluesky's ``count`` and ``scan``), and a
permissions file that allows all plans/devices to the default group. Defaults
otherwise (plain Python worker, no IPython kernel).

The client is ``bluesky_queueserver_api.zmq.REManagerAPI``. RE Manager pushes nothing
about task completion (its info socket only carries console output), so the client
polls ``status`` (``reload=True``) every 10 ms until the history has grown and the
manager is idle. Paths:

* queue: ``item_add`` + ``queue_start`` (the ordinary way to run a plan);
* execute: ``item_execute`` (runs one item at once, without queueing it);
* back to back: N ``item_add`` calls, then one ``queue_start``, until N more items are
  in the history.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
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

TASK_TIMEOUT = 120.0
BATCH_TIMEOUT = 900.0

STARTUP = """\
from bluesky import RunEngine
from ophyd.sim import det, motor
from bench_peer_plans import count, scan

RE = RunEngine(context_managers=[])
"""

PERMISSIONS = """\
user_groups:
  root:
    allowed_plans: [null]
    forbidden_plans: [":^_"]
    allowed_devices: [null]
    forbidden_devices: [":^_:?.*"]
    allowed_functions: [null]
    forbidden_functions: [":^_"]
  primary:
    allowed_plans: [":.*"]
    forbidden_plans: [null]
    allowed_devices: [":?.*:depth=5"]
    forbidden_devices: [null]
    allowed_functions: [null]
    forbidden_functions: [null]
"""


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class Client:
    def __init__(self, control: str, info: str) -> None:
        from bluesky_queueserver_api.zmq import REManagerAPI

        self.RM = REManagerAPI(zmq_control_addr=control, zmq_info_addr=info)
        self.hist = 0  # items_in_history seen so far

    def status(self) -> dict:
        return self.RM.status(reload=True)

    def wait_history(self, target: int, timeout: float) -> None:
        """Poll status every 10 ms until `target` items are in the history, idle."""
        deadline = time.perf_counter() + timeout
        while True:
            s = self.status()
            if s["items_in_history"] >= target and s["manager_state"] == "idle":
                self.hist = s["items_in_history"]
                return
            if time.perf_counter() > deadline:
                raise TimeoutError(f"history {s['items_in_history']} < {target} after {timeout:.0f} s: {s}")
            time.sleep(POLL)

    def check(self, n: int) -> None:
        """The last `n` history items completed."""
        items = self.RM.history_get()["items"][-n:]
        bad = [i.get("result", {}) for i in items if i.get("result", {}).get("exit_status") != "completed"]
        if len(items) < n or bad:
            raise RuntimeError(f"plans did not complete: {bad[:2]}")

    def queue(self, plan) -> float:
        t0 = time.perf_counter()
        self.RM.item_add(plan)
        self.RM.queue_start()
        self.wait_history(self.hist + 1, TASK_TIMEOUT)
        elapsed = time.perf_counter() - t0
        self.check(1)
        return elapsed

    def execute(self, plan) -> float:
        t0 = time.perf_counter()
        self.RM.item_execute(plan)
        self.wait_history(self.hist + 1, TASK_TIMEOUT)
        elapsed = time.perf_counter() - t0
        self.check(1)
        return elapsed

    def batch(self, plan, tasks: int) -> float:
        t0 = time.perf_counter()
        for _ in range(tasks):
            self.RM.item_add(plan)
        self.RM.queue_start()
        self.wait_history(self.hist + tasks, BATCH_TIMEOUT)
        elapsed = time.perf_counter() - t0
        self.check(tasks)
        return elapsed


def main() -> int:
    from common import driver_args

    args = driver_args("queueserver_bench.py", __doc__)
    size = SIZES["quick" if args.quick else "full"]
    work = Path(args.workdir)
    Proc.pid_file = work / "pids.json"
    install_signal_handlers()
    result: dict = {"peer": "queueserver", "status": "ok", "rows": [],
                    "versions": versions("bluesky-queueserver", "bluesky-queueserver-api", "bluesky", "ophyd",
                                         "pyzmq", "redis"),
                    "client_rule": "poll REManagerAPI.status(reload=True) every 10 ms (no completion push)",
                    "bare": "RunEngine(context_managers=[]) in the driver process (queueserver's venv)"}
    rows = result["rows"]
    redis = manager = client = None
    try:
        redis_bin = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(redis_bin).exists():
            raise RuntimeError("redis-server not installed (Debian package redis-server)")
        rport = free_port()
        log(f"queueserver: redis-server on 127.0.0.1:{rport}")
        redis = Proc("redis", [redis_bin, "--port", str(rport), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no", "--daemonize", "no", "--dir", str(work)],
                     work / "redis.log", cwd=str(work))
        wait_until(lambda: redis_ping(rport), 30, "redis PING", proc=redis)
        redis_launch = time.perf_counter() - redis.t_launch
        result["versions"]["redis-server"] = (redis.tail(40).split("version=")[-1].split(",")[0]
                                              if "version=" in redis.tail(40) else "?")

        startup = work / "startup"
        startup.mkdir()
        (startup / "startup.py").write_text(STARTUP)
        (startup / "user_group_permissions.yaml").write_text(PERMISSIONS)
        control, info = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
        argv = [str(Path(sys.executable).parent / "start-re-manager"), "--startup-dir", str(startup),
                "--zmq-control-addr", control, "--zmq-info-addr", info,
                "--redis-addr", f"127.0.0.1:{rport}", "--redis-name-prefix", f"bench_{os.getpid()}"]
        env = dict(os.environ, PYTHONPATH=str(PEER_ENV))
        log(f"queueserver: start-re-manager, control {control}")
        manager = Proc("re-manager", argv, work / "re-manager.log", env=env, cwd=str(work))
        client = Client(control, info)

        def answers():
            try:
                return client.status()
            except Exception:
                return None

        wait_until(answers, 60, "RE Manager status", proc=manager)
        manager_up = time.perf_counter() - manager.t_launch
        client.RM.environment_open()
        st = wait_until(lambda: (s := client.status())["worker_environment_exists"]
                        and s["manager_state"] == "idle" and s, 120, "environment_open", proc=manager)
        launch = time.perf_counter() - manager.t_launch
        client.hist = st["items_in_history"]
        time.sleep(2.0)
        idle, idle_redis = memory(manager.pid), memory(redis.pid)
        rows.append(metric("launch -> ready", "s", launch, manager_answers_s=manager_up,
                           note="Popen start-re-manager to environment open (Redis already up)"))
        rows.append(metric("launch redis", "s", redis_launch, note="Popen to PING"))
        rows.append(metric("idle RSS (manager+worker)", "MB", idle["rss_mb"], pss_mb=idle["pss_mb"],
                           processes=idle["processes"]))
        rows.append(metric("idle RSS redis", "MB", idle_redis["rss_mb"], pss_mb=idle_redis["pss_mb"]))
        log(f"queueserver: ready in {launch:.2f} s, idle RSS {idle['rss_mb']:.0f} MB + redis "
            f"{idle_redis['rss_mb']:.0f} MB")

        from bluesky_queueserver_api import BPlan

        count = BPlan("count", ["det"], num=1)
        scan = BPlan("scan", ["det"], "motor", *SCAN_ARGS)
        bare = Bare()
        sections = [
            ("count RT queue", lambda: round_trip_rows("item_add+queue_start", lambda: client.queue(count), bare,
                                                     size, "poll status 10 ms")),
            ("count RT execute", lambda: round_trip_rows("item_execute", lambda: client.execute(count), bare,
                                                       size, "poll status 10 ms")),
            ("counts queue", lambda: throughput_row("queued", lambda n: client.batch(count, n), bare, size,
                                                  "N item_add, 1 queue_start, until N in history")),
            ("scan queue", lambda: scan_row("item_add+queue_start", lambda: client.queue(scan), bare, size,
                                          "scan([det], motor, -1, 1, 200)")),
        ]
        rows.extend(run_sections("queueserver", sections, manager))
        result["rss_after_mb"] = memory(manager.pid)["rss_mb"]
        try:
            client.RM.environment_close()
            wait_until(lambda: not client.status()["worker_environment_exists"], 30, "environment_close")
        except Exception as exc:
            result["close_error"] = repr(exc)
    except Exception as exc:
        result["status"] = "unavailable"
        result["reason"] = f"{type(exc).__name__}: {exc}"[:500]
        result["traceback"] = traceback.format_exc()
        log(f"queueserver: {result['reason']}")
    finally:
        if client is not None:
            try:
                client.RM.close()
            except Exception:
                pass
        if manager is not None:
            result["manager_log"] = str(manager.log_path)
            result["graceful_stop"] = manager.stop()
        if redis is not None:
            redis.stop()
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
