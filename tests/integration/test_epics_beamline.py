"""The IOC on a beamline over Channel Access: `scripts/sim-beamline.sh` serves motor records,
a detector and a counter on a port of its own, the IOC drives them through
`db/devices-epics.yaml` with ophyd and with ophyd-async devices, end to end."""

from __future__ import annotations

import json
import math

import pytest

from ioc.service.runstore import read_run
from tests.integration.harness import (
    REPO_ROOT,
    IocProcess,
    ManagedProcess,
    caget_str,
    caput_text,
    epics_env,
    free_port,
    pv_answers,
    run_ca,
    scaled,
    search_also,
    session_ports,
    start_process,
    wait_for,
)
from tests.integration.ioc_client import request, submit, wait_finished

DEVICES = REPO_ROOT / "db" / "devices-epics.yaml"
PEAK, SIGMA = 1000.0, 0.5  # the simulated detector's defaults
COUNTS = 5000  # 0.1 s at 500 mA: 100 counts per mA and second

# The same beamline through either library: device names, and the counter's data key.
FLAVOURS = {
    "ophyd": {"m1": "m1", "m2": "m2", "det": "det", "counter": "counter", "counts": "counter_counts"},
    "ophyd-async": {"m1": "async_m1", "m2": "async_m2", "det": "async_det", "counter": "async_counter",
                    "counts": "async_counter-counts"},
}  # fmt: skip


def start_sim(env: dict[str, str], log_dir, *options) -> ManagedProcess:
    """scripts/sim-beamline.sh with `options`, once SIM:M1.RBV answers a client of `env`."""
    return start_process(
        [REPO_ROOT / "scripts" / "sim-beamline.sh", *options], name="sim-beamline", env=env,
        ca_server=True, ready_pv="SIM:M1.RBV", log_dir=log_dir,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sim(ca_repeater, tmp_path_factory):
    """The simulated beamline, on the free port EPICS_CAS_SERVER_PORT names, as any CA server."""
    port = free_port(exclude=session_ports())
    proc = start_sim(epics_env(port, session_ports()[1]), tmp_path_factory.mktemp("sim-logs"))
    yield proc
    proc.stop()


def test_the_sim_listens_where_the_environment_says_and_port_wins(sim, tmp_path):
    assert pv_answers("SIM:M1.RBV", env=sim.env_overrides)  # started with no --port
    env_port = free_port(exclude={*session_ports(), sim.port})
    port = free_port(exclude={*session_ports(), sim.port, env_port})
    env = {**epics_env(port, session_ports()[1]), "EPICS_CAS_SERVER_PORT": str(env_port)}
    other = start_sim(env, tmp_path, "--port", str(port))  # a client of `env` searches `port`
    other.stop()


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("state")


@pytest.fixture(scope="module")
def ioc(sim, state_dir):
    """The IOC on db/devices-epics.yaml; its CA client finds the sim's port and its own."""
    ioc = IocProcess("--devices", DEVICES, "--state-dir", state_dir, "--continue-on-error", log_dir=state_dir)
    search_also(ioc, sim.port)
    with ioc:
        ioc.start()
        yield ioc


@pytest.fixture(params=sorted(FLAVOURS))
def names(request) -> dict[str, str]:
    return FLAVOURS[request.param]


def sim_get(sim, pv: str) -> float:
    return float(caget_str("SIM:" + pv, env=sim.env_overrides))


def sim_put(sim, pv: str, value: float) -> None:
    assert run_ca("caput", "SIM:" + pv, value, env=sim.env_overrides).returncode == 0


def run_task(ctx, ioc, name: str, **params) -> str:
    """Run a task to its end; assert it succeeded; return its task id."""
    task_id = submit(ctx, ioc, request(name, **params))
    assert wait_finished(ctx, ioc, task_id, timeout=scaled(60)) == "Success", caget_str(ioc.pv("ERROR:MESSAGE"))
    return task_id


def events(ioc, state_dir) -> list[dict]:
    """The data of each event of the last task's one run, from its run file."""
    (uid,) = json.loads(caget_str(ioc.pv("LAST:RUN_UIDS")))
    runs = state_dir / "runs"
    wait_for(lambda: (runs / f"{uid}.jsonl").exists() and read_run(runs, uid)[-1][0] == "stop")
    return [doc["data"] for name, doc in read_run(runs, uid) if name == "event"]


def gaussian(position: float, center: float) -> float:
    return PEAK * math.exp(-((position - center) ** 2) / (2 * SIGMA**2))


def test_a_scan_reads_the_peak_where_the_motor_is(ioc, sim, ca_context, state_dir, names):
    center = 0.5 if names["m1"] == "m1" else -0.5  # each flavour finds its own peak
    sim_put(sim, "DET:CENTER", center)
    detectors = [names["det"], names["counter"]]
    run_task(ca_context, ioc, "scan", detectors=detectors, motor=names["m1"], start=-1.5, stop=1.5, num=7)
    assert sim_get(sim, "M1.RBV") == pytest.approx(1.5, abs=1e-6)
    data = events(ioc, state_dir)
    positions = [event[names["m1"]] for event in data]
    assert positions == pytest.approx([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], abs=1e-6)
    for event in data:  # each reading was taken where the motor had arrived
        assert event[names["det"]] == pytest.approx(gaussian(event[names["m1"]], center), rel=1e-6)
        assert event[names["counts"]] == COUNTS
    peak = max(data, key=lambda event: event[names["det"]])
    assert peak[names["m1"]] == pytest.approx(center, abs=1e-6)


def test_a_motor_reads_the_position_it_was_moved_to_at_every_point(ioc, sim, ca_context, state_dir, names):
    """A motor record posts the final RBV and DMOV before it completes the VAL put: a device
    that monitors RBV (ophyd-async's Motor in a scan) reads where the motor arrived.
    """
    run_task(ca_context, ioc, "scan", detectors=[names["det"]], motor=names["m1"], start=0, stop=1, num=11)
    positions = [event[names["m1"]] for event in events(ioc, state_dir)]
    assert positions == pytest.approx([point / 10 for point in range(11)], abs=1e-6)


def test_read_only_signals_are_not_offered_to_move_nor_moved(ioc, ca_context):
    """db/devices-epics.yaml's `det`, `ring_current` (ophyd EpicsSignalRO) and `async_det`
    (ophyd-async epics_signal_r) are readable, not movable."""
    plans = {plan["name"]: plan for plan in json.loads(caget_str(ioc.pv("PLANS"), env={"EPICS_CA_MAX_ARRAY_BYTES": "1000000"}))}
    movable = plans["mv"]["schema"]["properties"]["motor"]["enum"]
    assert {"m1", "m2", "async_m1", "async_m2"} <= set(movable)
    assert not {"det", "ring_current", "async_det"} & set(movable)
    assert {"det", "ring_current", "async_det"} <= set(plans["count"]["schema"]["properties"]["detectors"]["items"]["enum"])
    for name, kind in [("det", "EpicsSignalRO"), ("ring_current", "EpicsSignalRO"), ("async_det", "SignalR")]:
        proc = caput_text(ioc.pv("SUBMIT"), request("mv", motor=name, position=3), completion=True, wait=10)
        assert proc.returncode == 1 and "Channel write request failed" in proc.stdout + proc.stderr
        assert caget_str(ioc.pv("SUBMIT:STATUS")) == "Rejected"
        assert caget_str(ioc.pv("SUBMIT:MESSAGE")) == (
            f"params.motor: device {name!r} ({kind}) is not Movable; expected one of {', '.join(movable)}"
        )


def test_a_grid_scan_visits_every_point_and_ends_on_the_last(ioc, sim, ca_context, state_dir, names):
    sim_put(sim, "DET:CENTER", 0)
    axes = {"motor1": names["m1"], "start1": 0, "stop1": 1, "num1": 3,
            "motor2": names["m2"], "start2": -1, "stop2": 1, "num2": 2}  # fmt: skip
    run_task(ca_context, ioc, "grid_scan", detectors=[names["det"]], **axes)
    assert (sim_get(sim, "M1.RBV"), sim_get(sim, "M2.RBV")) == pytest.approx((1, 1), abs=1e-6)
    data = events(ioc, state_dir)
    points = [(round(event[names["m1"]], 6), round(event[names["m2"]], 6)) for event in data]
    assert points == [(0, -1), (0, 1), (0.5, -1), (0.5, 1), (1, -1), (1, 1)]
    for event in data:
        assert event[names["det"]] == pytest.approx(gaussian(event[names["m1"]], 0), rel=1e-6)


def test_mv_ends_when_the_motor_has_arrived(ioc, sim, ca_context, names):
    target = round(sim_get(sim, "M2.RBV") + 3.0, 3)  # 1.5 s at 2 mm/s: long enough to stop short
    run_task(ca_context, ioc, "mv", motor=names["m2"], position=target)
    assert sim_get(sim, "M2.RBV") == pytest.approx(target, abs=1e-6)
    assert sim_get(sim, "M2.DMOV") == 1
    run_task(ca_context, ioc, "mv", motor=names["m2"], position=0)
    assert sim_get(sim, "M2.RBV") == pytest.approx(0, abs=1e-6)


def test_a_beam_dump_suspends_a_count_until_the_beam_is_back(ioc, sim, ca_context, state_dir, names):
    """db/devices-epics.yaml declares a floor of 10 mA on the ring current."""
    sim_put(sim, "RING:CURRENT", 0)  # beam dump before the task starts: it waits
    try:
        task_id = submit(ca_context, ioc, request("count", detectors=[names["counter"]], num=2))
        wait_for(lambda: caget_str(ioc.pv("STATE")) == "SUSPENDING", message="SUSPENDING")
        assert caget_str(ioc.pv("SUSPEND:ACTIVE")) == "Yes"
        assert caget_str(ioc.pv("SUSPEND:REASON")).startswith("beam: ring_current 0")
    finally:
        sim_put(sim, "RING:CURRENT", 500)
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    assert caget_str(ioc.pv("SUSPEND:ACTIVE")) == "No"
    assert [event[names["counts"]] for event in events(ioc, state_dir)] == [COUNTS, COUNTS]
