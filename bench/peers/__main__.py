"""``python -m bench.peers [--quick] [--json PATH] [--peer NAME ...]``: see ``bench/peers/README.md``."""
from __future__ import annotations

import argparse
import json
import sys

from .runner import PEERS, format_table, run_peers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peers",
                                     description="blueapi and bluesky-queueserver vs a bare RunEngine")
    parser.add_argument("--quick", action="store_true", help="smoke run: n=5, 10 tasks, 1 scan")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument("--peer", action="append", choices=PEERS, help="only this peer (repeatable)")
    args = parser.parse_args(argv)
    result = run_peers(args.quick, tuple(args.peer or PEERS))
    print(format_table(result))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(result, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
