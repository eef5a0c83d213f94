"""Overhead of running a plan through the IOC vs. on a bare RunEngine (the round-trip
and throughput benchmarks of ``python -m bench``, with this script's old options).

Run from the repository root::

    .venv/bin/python -m bench.overhead [--n 20] [--tasks 100] [--rounds 10] [--quick]
                                       [--json PATH]

Same as ``python -m bench --only roundtrip throughput`` (see bench/README.md); the
figures go to ``--json`` (default bench/results/overhead.json).
"""
from __future__ import annotations

import argparse  # noqa: E402
from pathlib import Path  # noqa: E402

from bench import common  # noqa: F401 -- first: loopback env before caproto/epics
from bench.__main__ import main as bench_main  # noqa: E402

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "overhead.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, help="timed round trips of each kind (20)")
    parser.add_argument("--tasks", type=int, help="tasks per throughput round (100)")
    parser.add_argument("--rounds", type=int, help="throughput rounds of each kind (10)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny counts")
    parser.add_argument("--json", metavar="PATH", default=str(DEFAULT_JSON),
                        help=f"where to write the figures (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    forward = ["--only", "roundtrip", "throughput", "--json", args.json]
    if args.quick:
        forward.append("--quick")
    for name in ("n", "tasks", "rounds"):
        if getattr(args, name) is not None:
            forward += [f"--{name}", str(getattr(args, name))]
    return bench_main(forward)


if __name__ == "__main__":
    raise SystemExit(main())
