"""Benchmark 5: what the message bus costs. Two IOCs side by side (``bench.side_by_side``),
one with ``--stomp`` to a local ActiveMQ (one stomp-py subscriber on the topic, as a site's
consumer) and one without, each on a CA port of its own (the main session's IOC keeps its
port); the broker is waited on and metered with its IOC. The ratio is with / without the
bus."""
from __future__ import annotations

import os  # noqa: E402

from bench import common, side_by_side  # first: loopback env before caproto/epics
from bench.common import Figure, TaskClient  # noqa: E402
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
    seen: dict[str, int] = {}

    def count_messages(phase: str) -> None:
        seen[phase] = len(listener.snapshot())

    comparison = side_by_side.compare(plain, with_bus, others=[broker.popen.pid],
                                      other_names=["broker"], n=n, warmup=warmup,
                                      scan_points=scan_points, scan_pairs=scan_pairs,
                                      on_timed=count_messages)
    messages = seen["end"] - seen["round trips"]
    per_scan = (seen["end"] - seen["scans"]) / scan_pairs
    figures = comparison.figures("bus", "--stomp", n=n, scan_points=scan_points,
                                 scan_pairs=scan_pairs, round_trip_target=1.1,
                                 extra={"messages_received": messages, "messages_per_scan": per_scan})
    notes = [f"bus: the 'bare' column is the same IOC without --stomp; {messages} bus messages "
             f"reached the subscriber during the timed runs ({per_scan:.0f} per scan)",
             comparison.cpu_note("bus")]
    return figures, notes
