"""What an operator screen on pvAccess holds while the benchmarks run: 20 pvAccess
monitors (p4p, in the bench process) on distinct PVs of the IOC, counting updates; and
the round trip with ``RUN`` written over pvAccess (p4p put with completion) vs. over CA."""
from __future__ import annotations

import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

from bench import common  # first: loopback env before caproto/epics/p4p
from bench.common import Figure, TaskClient  # noqa: E402
from bench.roundtrip import COUNT1  # noqa: E402
from tests.integration import harness  # noqa: E402

#: 20 distinct PVs a Phoebus/PyDM operator screen shows.
MONITORED = ("STATE", "STATUS", "BUSY", "EVENT", "DOCUMENT", "CURRENT:PROGRESS",
             "CURRENT:PLAN", "CURRENT:TASK_ID", "CURRENT:ELAPSED", "CURRENT:SCAN_ID", "QUEUE",
             "QUEUE:COUNT", "HISTORY", "LAST:TASK_ID", "LAST:RESULT", "LAST:DURATION",
             "LAST:PLAN", "ERROR:ACTIVE", "ERROR:MESSAGE", "HEARTBEAT")


class PvaMonitors:
    """A p4p client context of its own monitoring MONITORED on `ioc` (the session's
    pvAccess ports, loopback), every update counted; waits until each has sent its first."""

    def __init__(self, ioc: harness.IocProcess) -> None:
        from p4p.client.thread import Context  # after the loopback env is in os.environ

        self.context = Context("pva")
        self._lock = threading.Condition()
        self.updates = dict.fromkeys(MONITORED, 0)
        self.errors: dict[str, str] = {}
        try:
            self.subscriptions = [self.context.monitor(ioc.pv(name), self._counter(name),
                                                       notify_disconnect=True)
                                  for name in MONITORED]
            self._wait_first()
        except BaseException:
            self.close()
            raise

    def _counter(self, name: str) -> Any:
        def count(value: Any) -> None:
            with self._lock:
                if isinstance(value, Exception):
                    self.errors[name] = repr(value)
                else:
                    self.updates[name] += 1
                    self.errors.pop(name, None)
                self._lock.notify_all()
        return count

    def _wait_first(self) -> None:
        deadline = time.monotonic() + common.TIMEOUT
        with self._lock:
            while missing := [n for n, k in self.updates.items() if k == 0]:
                if (remaining := deadline - time.monotonic()) <= 0:
                    raise TimeoutError(f"no pvAccess update within {common.TIMEOUT:g} s from "
                                       f"{missing} (errors: {self.errors})")
                self._lock.wait(remaining)

    def total(self) -> int:
        with self._lock:
            return sum(self.updates.values())

    def close(self) -> None:
        for subscription in getattr(self, "subscriptions", ()):
            subscription.close()
        self.context.close()


def pvput_round_trip(context: Any, client: TaskClient, n: int, warmup: int) -> Figure:
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
