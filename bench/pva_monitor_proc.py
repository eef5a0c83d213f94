"""The pvAccess monitors of the benchmarks' pvAccess pass, in a process of their own (as an
operator screen would be): 20 p4p monitors on distinct PVs of the IOC, every update counted.

    python -m bench.pva_monitor_proc --prefix P:

Uses the EPICS environment it is given (the benchmark passes its loopback one); it does
not import ``bench.common``, which would pick new ports. Prints ``ready`` once every
monitor has sent its first value. On stdin, the line ``counts`` prints ``counts <n>``
(updates so far, all monitors); end of input exits. Exits by itself after
``--max-seconds`` in any case.
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any

from p4p.client.thread import Context

TIMEOUT = 30.0
#: 20 distinct PVs a Phoebus/PyDM operator screen shows.
MONITORED = ("STATE", "STATUS", "BUSY", "EVENT", "DOCUMENT", "CURRENT:PROGRESS",
             "CURRENT:PLAN", "CURRENT:TASK_ID", "CURRENT:ELAPSED", "CURRENT:SCAN_ID", "QUEUE",
             "QUEUE:COUNT", "HISTORY", "LAST:TASK_ID", "LAST:RESULT", "LAST:DURATION",
             "LAST:PLAN", "ERROR:ACTIVE", "ERROR:MESSAGE", "HEARTBEAT")


class Counts:
    """The updates of every monitor, and the errors they reported."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.updates = dict.fromkeys(MONITORED, 0)
        self.errors: dict[str, str] = {}

    def counter(self, name: str) -> Any:
        def count(value: Any) -> None:
            with self.lock:
                if isinstance(value, Exception):
                    self.errors[name] = repr(value)
                else:
                    self.updates[name] += 1
                    self.errors.pop(name, None)
                self.lock.notify_all()
        return count

    def wait_first(self) -> None:
        """Until each monitor has sent its first value (bounded)."""
        deadline = time.monotonic() + TIMEOUT
        with self.lock:
            while missing := [n for n, k in self.updates.items() if k == 0]:
                if (remaining := deadline - time.monotonic()) <= 0:
                    raise TimeoutError(f"no pvAccess update within {TIMEOUT:g} s from "
                                       f"{missing} (errors: {self.errors})")
                self.lock.wait(remaining)

    def total(self) -> int:
        with self.lock:
            return sum(self.updates.values())


def main(argv: list[str] | None = None) -> int | None:
    parser = argparse.ArgumentParser(prog="python -m bench.pva_monitor_proc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    args = parser.parse_args(argv)
    counts = Counts()
    context = Context("pva")
    subscriptions = [context.monitor(args.prefix + name, counts.counter(name), notify_disconnect=True)
                     for name in MONITORED]
    counts.wait_first()
    print("ready", flush=True)
    stop = threading.Event()

    def commands() -> None:
        for line in sys.stdin:
            if line.strip() == "counts":
                print(f"counts {counts.total()}", flush=True)
        stop.set()

    threading.Thread(target=commands, daemon=True).start()
    stop.wait(args.max_seconds)
    for subscription in subscriptions:
        subscription.close()
    sys.stdout.flush()
    os._exit(0)  # the kernel closes the connections, which the IOC sees


if __name__ == "__main__":
    raise SystemExit(main())
