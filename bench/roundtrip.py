"""Benchmarks 1 and 2: one ``count([det1], num=1)`` round trip, and queue throughput."""
from __future__ import annotations

import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

from bench import common  # first: loopback env before caproto/epics
from bench.common import Figure, Metered, TaskClient  # noqa: E402

COUNT1 = common.request("count", detectors=["det1"], num=1)
PROCESSES = ("ioc", "worker")  # the names of `TaskClient.pids()`


def warm_up(client: TaskClient, bare: common.Bare, n: int) -> None:
    """Untimed pairs of the one-point count, through SUBMIT and on the bare RunEngine."""
    common.interleave([lambda: client.submit_and_wait(COUNT1)[0], bare.count], n,
                      quiet=client.pids)


def roundtrip(client: TaskClient, pyepics: common.PyepicsRunClient, bare: common.Bare,
              n: int, warmup: int) -> list[Figure]:
    """``count([det1], num=1)`` three ways vs. the bare RunEngine, interleaved:
    RUN put-completion via pyepics (``put(wait=True)``), via caproto, and SUBMIT +
    LAST:TASK_ID monitor. Also, for information, pyepics ``put(callback=...)`` woken by
    a threading.Event instead of ``wait=True`` (which polls libca in a loop)."""
    durations: dict[str, list[float]] = {"pyepics": [], "pyepics_cb": [], "caproto": [],
                                         "submit": []}

    def via_pyepics() -> float:
        elapsed = pyepics.run(COUNT1)
        client.check_success("RUN via pyepics")  # untimed; pyepics ignores the put status
        durations["pyepics"].append(client.read_float("LAST:DURATION"))
        return elapsed

    done = threading.Event()

    def via_pyepics_callback() -> float:
        done.clear()
        t0 = time.perf_counter()
        pyepics.run_pv.put(COUNT1, callback=lambda **_: done.set())
        if not done.wait(common.TIMEOUT):
            raise TimeoutError("pyepics put callback did not come")
        elapsed = time.perf_counter() - t0
        client.check_success("RUN via pyepics (callback)")
        durations["pyepics_cb"].append(client.read_float("LAST:DURATION"))
        return elapsed

    def via_caproto() -> float:
        elapsed = client.run(COUNT1)  # raises on an error completion
        durations["caproto"].append(client.read_float("LAST:DURATION"))
        return elapsed

    def via_submit() -> float:
        elapsed, duration = client.submit_and_wait(COUNT1)
        durations["submit"].append(duration)
        return elapsed

    pid = client.pids()
    meters = {name: Metered(fn, pid) for name, fn in (
        ("pyepics", via_pyepics), ("pyepics_cb", via_pyepics_callback),
        ("caproto", via_caproto), ("submit", via_submit), ("bare", bare.count))}
    fns = [meters["pyepics"], meters["bare"], meters["caproto"], meters["bare"],
           meters["submit"], meters["bare"], meters["pyepics_cb"]]
    common.interleave(fns, warmup, quiet=lambda: pid)
    for xs in durations.values():
        xs.clear()
    for meter in meters.values():
        meter.reset()
    times = common.interleave(fns, n, quiet=lambda: pid)
    bare_times = times[1] + times[3] + times[5]
    bare_ms = statistics.median(bare_times) * 1e3
    bare_cpu = meters["bare"].per_call_ms()["this_process"]
    figures = []
    for key, kind, label, xs in (
        ("roundtrip_run_pyepics", "pyepics", "round trip: RUN put-wait, pyepics/libca", times[0]),
        ("roundtrip_run_caproto", "caproto", "round trip: RUN put-wait, caproto", times[2]),
        ("roundtrip_submit_monitor", "submit", "round trip: SUBMIT + LAST:TASK_ID monitor",
         times[4]),
    ):
        ours_ms = statistics.median(xs) * 1e3
        extra = {"overhead_ms": ours_ms - bare_ms,
                 "ours_ms": common.summary(xs, 1e3),
                 "bare_ms": common.summary(bare_times, 1e3),
                 "ioc_last_duration_ms": common.summary(durations[kind], 1e3),
                 "cpu_ms_per_task": {**meters[kind].per_call_ms(PROCESSES),
                                     "bare": bare_cpu}}
        if kind == "pyepics":
            extra["put_callback_event_ms"] = common.summary(times[6], 1e3)
            extra["put_callback_cpu_ms_per_task"] = meters["pyepics_cb"].per_call_ms(PROCESSES)
        target = 1.6 if kind == "pyepics" else 1.5  # issue 19
        figures.append(Figure(key, label, "ms", ours_ms, bare_ms, ("ratio<=", target),
                              n=f"{n} pairs", extra=extra))
    return figures


def throughput(client: TaskClient, bare: common.Bare, tasks: int, rounds: int) -> list[Figure]:
    """`tasks` requests submitted back to back until the last finished, vs. `tasks` bare
    RE calls; tasks/s, median of `rounds` interleaved rounds (after one warm-up round)."""
    pid = client.pids()
    ours_m = Metered(lambda: client.batch(COUNT1, tasks), pid, tail=True)
    bare_m = Metered(lambda: bare.batch(tasks))
    common.interleave([ours_m, bare_m], 1, quiet=lambda: pid)  # warm-up
    ours_m.reset()
    bare_m.reset()
    ours, bares = common.interleave([ours_m, bare_m], rounds, quiet=lambda: pid)
    ours_rate = statistics.median(tasks / t for t in ours)
    bare_rate = statistics.median(tasks / t for t in bares)
    cpu = {k: v / tasks for k, v in ours_m.per_call_ms(PROCESSES).items()}
    cpu["bare"] = bare_m.per_call_ms()["this_process"] / tasks
    return [Figure("throughput", f"throughput: {tasks} tasks via SUBMIT", "tasks/s",
                   ours_rate, bare_rate, ("ratio>=", 0.8), n=f"{rounds} rounds",
                   extra={"tasks": tasks, "ours_rounds_s": ours, "bare_rounds_s": bares,
                          "cpu_ms_per_task": cpu})]


def describe(figures: list[Figure]) -> list[str]:
    """Notes under the table: own overhead and CPU per task."""
    lines = []
    for f in figures:
        if f.key.startswith("roundtrip_"):
            d = f.extra["ioc_last_duration_ms"]["median"]
            cpu = f.extra["cpu_ms_per_task"]
            lines.append(f"{f.label}: {f.extra['overhead_ms']:+.2f} ms vs bare; "
                         f"LAST:DURATION {d:.2f} ms; CPU/task: IOC "
                         f"{cpu['ioc']:.1f} ms, worker {cpu['worker']:.1f} ms, "
                         f"client {cpu['this_process']:.1f} ms, "
                         f"bare {cpu['bare']:.1f} ms")
            if "put_callback_event_ms" in f.extra:
                cb = f.extra["put_callback_event_ms"]["median"]
                cb_cpu = f.extra["put_callback_cpu_ms_per_task"]["this_process"]
                lines.append(f"  (pyepics put(callback=) + Event instead of wait=True: "
                             f"{cb:.2f} ms, client CPU {cb_cpu:.1f} ms/task)")
        elif f.key == "throughput":
            cpu = f.extra["cpu_ms_per_task"]
            lines.append(f"{f.label}: CPU/task: IOC {cpu['ioc']:.1f} ms, worker "
                         f"{cpu['worker']:.1f} ms (incl. their tails), "
                         f"client {cpu['this_process']:.1f} ms, bare {cpu['bare']:.1f} ms")
    return lines
