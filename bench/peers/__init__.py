"""Peer comparison: the same plans on blueapi and bluesky-queueserver vs a bare RunEngine.

    python -m bench.peers [--quick] [--json PATH] [--peer blueapi|queueserver ...]

The peers are not project dependencies: each gets its own venv under
``~/.cache/bluesky-ioc-bench/`` (built on first use from PyPI; Redis from Debian), see
``envs.py``. Everything listens on 127.0.0.1 free ports; only processes started here are
stopped. ``run_peers(quick)`` returns the figures as a dict, ``format_table`` prints them.
"""
from .runner import PEERS, format_table, run_peers

__all__ = ["PEERS", "format_table", "run_peers"]
