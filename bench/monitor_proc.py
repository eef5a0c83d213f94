"""The second process of the streaming benchmark: holds monitors on the IOC, counts updates.

    python -m bench.monitor_proc --prefix P: DOCUMENT=13 EVENT=13 STATUS=12 CURRENT:PROGRESS=12

Uses the EPICS environment it is given (the benchmark passes its loopback one); it
does not import ``bench.common``, which would pick new ports. caproto's threading
client shares one subscription among identical ``subscribe()`` calls of one PV, so
the k-th monitor of each PV lives in its own ``Context`` (its own TCP circuit, as k
separate screens would be): as many contexts as the largest count.

Prints ``ready <n>`` once every monitor is in place. On stdin, the line
``counts`` prints ``counts <json>`` (updates per PV so far, summed over its monitors,
and bytes received); ``stop`` or end of input prints the final ``counts`` and exits.
Exits by itself after ``--max-seconds`` in any case.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from typing import Any

from caproto.threading.client import Context

TIMEOUT = 30.0


class Counter:
    """Monitor callback of one PV (all its subscriptions): counts updates and bytes."""

    def __init__(self, name: str, subscriptions: int) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.updates = 0
        self.bytes = 0
        self.expected = subscriptions

    def __call__(self, sub: Any, response: Any) -> None:
        with self.lock:
            self.updates += 1
            self.bytes += response.data.nbytes if hasattr(response.data, "nbytes") else 0


def main(argv: list[str] | None = None) -> int | None:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor_proc", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument("spec", nargs="+", metavar="PV=N", help="monitors per PV suffix")
    args = parser.parse_args(argv)
    spec = {name: int(n) for name, n in (item.split("=", 1) for item in args.spec)}
    counters = {name: Counter(name, n) for name, n in spec.items()}
    contexts: list[Context] = []
    subs: list[Any] = []  # keep every subscription alive
    try:
        for k in range(max(spec.values())):
            names = [name for name, n in spec.items() if n > k]
            ctx = Context(timeout=TIMEOUT)
            contexts.append(ctx)
            pvs = ctx.get_pvs(*(args.prefix + name for name in names), timeout=TIMEOUT)
            for name, pv in zip(names, pvs):
                pv.wait_for_connection(timeout=TIMEOUT)
                sub = pv.subscribe()
                sub.add_callback(counters[name])
                subs.append(sub)
        # A read through each circuit after its subscriptions: the server has handled
        # them by the time it answers (an empty waveform gets no first update in caproto).
        for sub in subs:
            sub.pv.read(timeout=TIMEOUT)
        print(f"ready {len(subs)}", flush=True)

        def snapshot() -> str:
            out = {}
            for name, c in counters.items():
                with c.lock:
                    out[name] = {"monitors": c.expected, "updates": c.updates, "bytes": c.bytes}
            return "counts " + json.dumps(out)

        stop = threading.Event()

        def commands() -> None:
            for line in sys.stdin:
                if line.strip() == "counts":
                    print(snapshot(), flush=True)
                elif line.strip() == "stop":
                    break
            stop.set()

        threading.Thread(target=commands, daemon=True).start()
        stop.wait(args.max_seconds)
        print(snapshot(), flush=True)
    except BaseException:
        for ctx in contexts:
            ctx.disconnect()
        raise
    # Context.disconnect joins several threads per context (seconds for 13 of them):
    # exit at once instead; the kernel closes every circuit, which the IOC sees.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    raise SystemExit(main())
