"""The benchmark suite runs: `python -m bench --quick` writes every figure as a number.

No speed is asserted (the figures of a quick run on a shared machine mean little); the
benchmarks start their own caRepeater and IOCs on fresh loopback ports.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

#: Every figure of `python -m bench --quick` (bench/__main__.py KEYS but acctst's, which
#: --quick does not run, and the bus's, which --quick leaves out).
PASS_KEYS = ("roundtrip_run_pyepics", "roundtrip_run_caproto", "roundtrip_submit_monitor",
             "throughput", "streaming_scan_duration", "streaming_scan_wall",
             "streaming_count_duration", "streaming_count_wall")
KEYS = (*PASS_KEYS, *(f"pva_on_{key}" for key in PASS_KEYS), "pva_roundtrip_pvput",
        "catime_connect", "catime_sync_get", "catime_async_put", "idle_cpu_ioc",
        "idle_cpu_worker", "rss_idle_ioc", "rss_idle_worker", "rss_after_ioc",
        "rss_after_worker", "start_first_pv", "start_ready")
#: Figures with no bare counterpart (no ratio).
NO_BARE = {"idle_cpu_ioc", "idle_cpu_worker"}


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.timeout(330)
def test_bench_quick_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--json", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["errors"] == {}
    results = data["results"]
    assert set(KEYS) <= set(results), f"missing: {sorted(set(KEYS) - set(results))}"
    for key in KEYS:
        fig = results[key]
        assert _number(fig["ours"]), (key, fig)
        if key in NO_BARE:
            continue
        assert _number(fig["bare"]) and _number(fig["ratio"]), (key, fig)
    assert "benchmark" in proc.stdout and "ratio" in proc.stdout  # the table was printed
