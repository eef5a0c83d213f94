"""What an operator screen on pvAccess holds while the benchmarks run: 20 pvAccess
monitors (p4p, in a process of their own: `bench.pva_monitor_proc`) on distinct PVs of the
IOC, counting updates; and the round trip with ``RUN`` written over pvAccess (p4p put with
completion) vs. over CA."""
from __future__ import annotations

import statistics  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench import common  # first: loopback env before caproto/epics/p4p
from bench.common import Figure, TaskClient  # noqa: E402
from bench.roundtrip import COUNT1  # noqa: E402
from tests.integration import harness  # noqa: E402


class PvaMonitors:
    """`bench.pva_monitor_proc` in a child process: 20 pvAccess monitors on `ioc`, every
    update counted; waits until each has sent its first."""

    def __init__(self, ioc: harness.IocProcess, work: Any) -> None:
        self.proc, self.lines = common.start_child("bench.pva_monitor_proc", "--prefix",
                                                   ioc.prefix, work=work)
        try:
            self.lines.wait_for("ready", common.TIMEOUT * 2)
        except BaseException:
            common.end_child(self.proc)
            raise

    def total(self) -> int:
        """The updates the monitors have received so far."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("counts\n")
        self.proc.stdin.flush()
        return int(self.lines.wait_for("counts ", common.TIMEOUT)[1].split()[1])

    def close(self) -> None:
        common.end_child(self.proc)


def pvput_round_trip(client: TaskClient, n: int, warmup: int) -> Figure:
    """``RUN`` written over pvAccess (p4p put, waiting for the completion) vs. over CA, on
    the same IOC, alternating."""
    from p4p.client.thread import Context  # after the loopback env is in os.environ

    name = client.ioc.pv("RUN")
    context = Context("pva")

    def over_pva() -> float:
        t0 = time.perf_counter()
        context.put(name, {"value": COUNT1}, wait=True, timeout=common.TIMEOUT)
        return time.perf_counter() - t0

    def over_ca() -> float:
        return client.run(COUNT1)

    quiet = client.pids
    try:
        common.interleave([over_ca, over_pva], warmup, quiet=quiet)
        ca, pva_ = common.interleave([over_ca, over_pva], n, quiet=quiet)
    finally:
        context.close()
    return Figure("pva_roundtrip_pvput", "round trip RUN count: p4p put / CA put, same IOC", "ms",
                  statistics.median(pva_) * 1e3, statistics.median(ca) * 1e3, ("ratio<=", 1.3),
                  n=f"{n} pairs", extra={"pva_ms": common.summary(pva_, 1e3),
                                         "ca_ms": common.summary(ca, 1e3)})
