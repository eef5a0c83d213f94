"""Benchmark 5: what the message bus costs. Two IOCs side by side, one with ``--stomp`` to
a local ActiveMQ (one stomp-py subscriber on the topic, as a site's consumer) and one
without, each on a CA port of its own; the round trip (``count([det1], num=1)`` through
``RUN``) and the 200-point scan (``SUBMIT`` until ``LAST:TASK_ID``) alternate between them
(A B A B ...) after a warm-up, each run after both IOCs, their workers and the broker have
gone quiet. Both IOCs get CA ports of their own (the main session's IOC keeps its port). The ratio is with / without the bus."""
from __future__ import annotations

import os  # noqa: E402
import statistics  # noqa: E402
from typing import Any  # noqa: E402

from bench import common  # first: loopback env before caproto/epics
from bench.common import Figure, Metered, TaskClient  # noqa: E402
from bench.roundtrip import COUNT1  # noqa: E402
from tests.integration import harness  # noqa: E402
from tests.integration.broker import TOPIC, Broker, BrokerUnavailable, Listener  # noqa: E402


def bus(session: common.Session, *, n: int, warmup: int, scan_points: int,
        scan_pairs: int) -> tuple[list[Figure], list[str]]:
    """(figures, notes); no figures, and a note saying why, without an ActiveMQ here."""
    try:
        broker = Broker(work=session.work / "broker").start()
    except BrokerUnavailable as error:
        return [], [f"bus: unavailable: {error}"]
    server_port, repeater_port = harness.session_ports()
    plain_port = harness.free_port(exclude={server_port, repeater_port})
    bus_port = harness.free_port(exclude={server_port, repeater_port, plain_port})
    # The caproto clients of this process search every IOC's port (read at each search).
    os.environ["EPICS_CA_ADDR_LIST"] = harness.loopback_addr_list(server_port, plain_port, bus_port)
    listener = clients = None
    try:
        listener = Listener(broker, TOPIC)
        plain = session.start_ioc(env=harness.epics_env(plain_port, repeater_port))
        with_bus = session.start_ioc("--stomp", broker.url,
                                     env=harness.epics_env(bus_port, repeater_port))
        clients = TaskClient(plain), TaskClient(with_bus)
        figures, notes = _measure(clients, broker, listener, n, warmup, scan_points, scan_pairs)
        dropped = harness.run_ca("caget", "-t", with_bus.pv("BUS:DROPPED"), env=with_bus.env_overrides)
        notes.append(f"bus: BUS:DROPPED at the end: {dropped.stdout.strip() or dropped.stderr.strip()}")
        return figures, notes
    finally:
        for client in clients or ():
            client.close()
        if listener is not None:
            listener.close()
        broker.stop()


def _measure(clients: tuple[TaskClient, TaskClient], broker: Broker, listener: Listener,
             n: int, warmup: int, scan_points: int,
             scan_pairs: int) -> tuple[list[Figure], list[str]]:
    plain, with_bus = clients
    assert broker.popen is not None
    broker_pid = broker.popen.pid

    def quiet() -> list[int]:
        return [*plain.pids(), *with_bus.pids(), broker_pid]

    scan = common.request("scan", detectors=["det1"], motor="motor1", start=-1, stop=1,
                          num=scan_points)
    durations: dict[str, list[float]] = {"plain": [], "bus": []}

    def scan_on(client: TaskClient, key: str) -> Any:
        def run() -> float:
            wall, duration = client.submit_and_wait(scan, common.LONG_TIMEOUT)
            durations[key].append(duration)
            return wall
        return run

    round_trips = [lambda: plain.run(COUNT1), lambda: with_bus.run(COUNT1)]
    common.interleave(round_trips, warmup, quiet=quiet)
    scans = [Metered(scan_on(plain, "plain"), plain.pids(), tail=True),
             Metered(scan_on(with_bus, "bus"), [*with_bus.pids(), broker_pid], tail=True)]
    common.interleave(scans, 1, quiet=quiet)
    for xs in durations.values():
        xs.clear()
    for meter in scans:
        meter.reset()
    received = len(listener.snapshot())
    rt_plain, rt_bus = common.interleave(round_trips, n, quiet=quiet)
    before_scans = len(listener.snapshot())
    walls_plain, walls_bus = common.interleave(scans, scan_pairs, quiet=quiet)
    messages = len(listener.snapshot()) - received
    per_scan = (len(listener.snapshot()) - before_scans) / scan_pairs
    cpu_plain = scans[0].per_call_ms(["ioc", "worker"])
    cpu_bus = scans[1].per_call_ms(["ioc", "worker", "broker"])
    extra = {"messages_received": messages, "messages_per_scan": per_scan,
             "cpu_ms_per_scan": {"without": cpu_plain, "with": cpu_bus}}
    figures = [
        Figure("bus_roundtrip", "round trip RUN count: --stomp / without", "ms",
               statistics.median(rt_bus) * 1e3, statistics.median(rt_plain) * 1e3,
               ("ratio<=", 1.1), n=f"{n} pairs",
               extra={"with_ms": common.summary(rt_bus, 1e3),
                      "without_ms": common.summary(rt_plain, 1e3), **extra}),
        Figure("bus_scan_duration", f"scan {scan_points} pts: LAST:DURATION, --stomp / without",
               "s", statistics.median(durations["bus"]), statistics.median(durations["plain"]),
               ("ratio<=", 1.05), n=f"{scan_pairs} pairs",
               extra={"with_s": common.summary(durations["bus"]),
                      "without_s": common.summary(durations["plain"]), **extra}),
        Figure("bus_scan_wall", f"scan {scan_points} pts: client wall, --stomp / without", "s",
               statistics.median(walls_bus), statistics.median(walls_plain),
               ("ratio<=", 1.05), n=f"{scan_pairs} pairs",
               extra={"with_s": common.summary(walls_bus),
                      "without_s": common.summary(walls_plain), **extra}),
    ]
    notes = [f"bus: the 'bare' column is the same IOC without --stomp; {messages} bus messages "
             f"reached the subscriber during the timed runs ({per_scan:.0f} per scan)",
             "bus: CPU per scan (incl. leftover work): without: " + _cpu(cpu_plain)
             + "; with: " + _cpu(cpu_bus)]
    return figures, notes


def _cpu(ms: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.0f} ms" for name, value in ms.items())
