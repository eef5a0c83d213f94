"""Benchmark 6: what pvAccess costs. Two IOCs side by side (``bench.side_by_side``): one
serving pvAccess (the default) with a pvAccess client monitoring what an operator screen
shows (``STATE``, ``STATUS``, ``EVENT``, ``DOCUMENT``, ``CURRENT:PROGRESS``, ``QUEUE``,
``HISTORY``), one with ``--no-pva``, each on ports of its own. Also the round trip with
``RUN`` written by a pvAccess client (p4p, put with completion) on the first IOC."""
from __future__ import annotations

import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench import common, side_by_side  # first: loopback env before caproto/epics
from bench.common import Figure, TaskClient  # noqa: E402
from bench.roundtrip import COUNT1  # noqa: E402
from tests.integration import harness  # noqa: E402

MONITORED = ("STATE", "STATUS", "EVENT", "DOCUMENT", "CURRENT:PROGRESS", "QUEUE", "HISTORY")


def pva(session: common.Session, *, n: int, warmup: int, scan_points: int,
        scan_pairs: int) -> tuple[list[Figure], list[str]]:
    """(figures, notes)."""
    from p4p.client.thread import Context  # after the loopback environment is in place

    server_port, repeater_port = harness.session_ports()
    plain_port = harness.free_port(exclude={server_port, repeater_port})
    pva_ca_port = harness.free_port(exclude={server_port, repeater_port, plain_port})
    pva_ports = (harness.free_port(exclude={server_port, repeater_port, plain_port, pva_ca_port}),)
    pva_ports += (harness.free_port(exclude={server_port, repeater_port, plain_port, pva_ca_port,
                                             *pva_ports}),)
    pva_env = harness.pva_env(*pva_ports)
    # The caproto clients of this process search every IOC's port (read at each search).
    os.environ["EPICS_CA_ADDR_LIST"] = harness.loopback_addr_list(server_port, plain_port, pva_ca_port)
    clients: tuple[TaskClient, TaskClient] | None = None
    context = None
    subscriptions: list[Any] = []
    try:
        plain = session.start_ioc("--no-pva", env=harness.epics_env(plain_port, repeater_port))
        with_pva = session.start_ioc(env={**harness.epics_env(pva_ca_port, repeater_port), **pva_env})
        clients = TaskClient(plain), TaskClient(with_pva)
        conf = {"EPICS_PVA_ADDR_LIST": harness.LOOPBACK, "EPICS_PVA_AUTO_ADDR_LIST": "NO",
                "EPICS_PVA_SERVER_PORT": pva_env["EPICS_PVA_SERVER_PORT"],
                "EPICS_PVA_BROADCAST_PORT": pva_env["EPICS_PVA_BROADCAST_PORT"]}
        context = Context("pva", conf=conf, useenv=False)
        updates = [0]

        def count(value: Any) -> None:
            updates[0] += 1

        subscriptions = [context.monitor(with_pva.pv(name), count) for name in MONITORED]
        seen: dict[str, int] = {}
        comparison = side_by_side.compare(
            *clients, n=n, warmup=warmup, scan_points=scan_points, scan_pairs=scan_pairs,
            on_timed=lambda phase: seen.__setitem__(phase, updates[0]))
        per_scan = (seen["end"] - seen["scans"]) / scan_pairs
        figures = comparison.figures("pva", "pvAccess", n=n, scan_points=scan_points,
                                     scan_pairs=scan_pairs, round_trip_target=1.1,
                                     extra={"pva_updates_per_scan": per_scan})
        figures.append(_pvput_round_trip(context, clients[1], n, warmup))
        notes = [f"pva: the 'bare' column is the same IOC with --no-pva; {len(MONITORED)} pvAccess "
                 f"monitors received {per_scan:.0f} updates per scan",
                 comparison.cpu_note("pva")]
        return figures, notes
    finally:
        for subscription in subscriptions:
            subscription.close()
        if context is not None:
            context.close()
        for client in clients or ():
            client.close()


def _pvput_round_trip(context: Any, client: TaskClient, n: int, warmup: int) -> Figure:
    """``RUN`` written over pvAccess (p4p put, waiting for the completion) vs. over CA, on
    the same IOC, alternating."""
    name = client.ioc.pv("RUN")

    def over_pva() -> float:
        t0 = time.perf_counter()
        context.put(name, {"value": COUNT1}, wait=True, timeout=common.TIMEOUT)
        return time.perf_counter() - t0

    def over_ca() -> float:
        return client.run(COUNT1)

    quiet = client.pids
    common.interleave([over_ca, over_pva], warmup, quiet=quiet)
    ca, pva_ = common.interleave([over_ca, over_pva], n, quiet=quiet)
    return Figure("pva_roundtrip_pvput", "round trip RUN count: p4p put / CA put, same IOC", "ms",
                  statistics.median(pva_) * 1e3, statistics.median(ca) * 1e3, ("ratio<=", 1.3),
                  n=f"{n} pairs", extra={"pva_ms": common.summary(pva_, 1e3),
                                         "ca_ms": common.summary(ca, 1e3)})
