"""What an operator reads in the log: one format for both processes, where the state is,
what was loaded, and that a device down at start needs a RELOAD once it is up.
"""

from __future__ import annotations

import json
import re

from tests.integration.harness import (
    caget_str,
    free_port,
    loopback_addr_list,
    session_ports,
    start_softioc,
)
from tests.integration.ioc_client import command

BIG = {"EPICS_CA_MAX_ARRAY_BYTES": "1000000"}
LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (ioc|worker)\[\d+\] (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")
RING_DB = 'record(ai, "$(P)RING") {\n    field(VAL, "250")\n}\n'


def devices(ioc) -> dict[str, dict]:
    return {device["name"]: device for device in json.loads(caget_str(ioc.pv("DEVICES"), env=BIG))}


def test_one_log_format_the_start_up_log_and_a_device_down_at_start(ioc_factory, tmp_path):
    ioc_port, repeater_port = session_ports()
    beam_port = free_port(exclude={ioc_port, repeater_port})
    beam_prefix = f"B{beam_port}:"
    device_file = tmp_path / "devices.yaml"
    device_file.write_text(
        "motor1:\n  class: ophyd.sim.SynAxis\n"
        f"ring:\n  class: ophyd.EpicsSignalRO\n  kwargs: {{read_pv: '{beam_prefix}RING'}}\n"
    )
    state = tmp_path / "state"
    ioc = ioc_factory("--devices", device_file, "--state-dir", state, "--connect-timeout", "1",
                      env={"EPICS_CA_ADDR_LIST": loopback_addr_list(ioc_port, beam_port)})
    ring = devices(ioc)["ring"]
    assert ring["available"] is False
    assert ring["error"].endswith("; once it is up, RELOAD connects it"), ring["error"]
    log = ioc.log_text()
    assert f"ioc: state directory {state}: 0 pending tasks" in log
    assert f"ioc: loading the devices of {device_file} and the plans of plans" in log
    assert re.search(r"worker process \d+ loaded \d+ plans, 2 devices \(1 unavailable: ring; "
                     r"RELOAD connects them once they are up\)", log), log
    assert "device 'ring': cannot connect" in log and "once it is up, RELOAD connects it" in log

    beam_db = tmp_path / "beam.db"
    beam_db.write_text(RING_DB)
    beam = start_softioc(beam_db, {"P": beam_prefix}, ready_pv=f"{beam_prefix}RING", log_dir=tmp_path,
                         env={"EPICS_CAS_SERVER_PORT": str(beam_port), "EPICS_CA_SERVER_PORT": str(beam_port)})
    try:
        assert command(ioc, "RELOAD").returncode == 0
        assert devices(ioc)["ring"]["available"] is True
    finally:
        beam.stop()
    assert re.search(r"worker process \d+ loaded \d+ plans, 2 devices\n", ioc.log_text())  # the RELOAD's
    ioc.stop()
    lines = ioc.log_text().splitlines()
    assert [line for line in lines if not LINE.match(line)] == [], "lines in another format"
    assert {LINE.match(line).group(1) for line in lines} == {"ioc", "worker"}
