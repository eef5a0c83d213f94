"""The bare counterpart of an IOC launch (benchmark 4): a fresh Python that imports
bluesky and ophyd, builds det1/motor1 as db/devices.yaml does (``imported``), runs
``count([det1], num=1)`` on a bare RunEngine (``ready``), prints its VmRSS and exits.

    python -m bench.bare_start

Imports nothing of CA.
"""
from __future__ import annotations


def main() -> int:
    from bluesky import RunEngine
    from ophyd.sim import SynAxis, SynGauss

    from plans.standard import count

    motor1 = SynAxis(name="motor1", delay=0)
    det1 = SynGauss("det1", motor1, "motor1", center=0, Imax=1, sigma=1)
    RE = RunEngine(context_managers=[])
    print("imported", flush=True)
    RE(count([det1], num=1))
    print("ready", flush=True)
    with open("/proc/self/status", encoding="ascii") as f:
        rss = next(line.split()[1] for line in f if line.startswith("VmRSS:"))
    print(f"rss_kb {rss}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
