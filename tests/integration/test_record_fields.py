"""Record fields an EPICS engineer reads: units, precision, limits, UDF, FTVL, NORD, exact
arrays, state strings of the control PVs."""

from __future__ import annotations

import pytest

from tests.integration.harness import ca_read, caget_str, caput_text, run_ca, wait_for
from tests.integration.ioc_client import request


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    return module_ioc_factory("--state-dir", tmp_path_factory.mktemp("state"))


@pytest.mark.parametrize(("pv", "units"), [("CURRENT:PROGRESS", "%"), ("CURRENT:ELAPSED", "s"),
                                           ("LAST:DURATION", "s")])
def test_every_double_has_its_units_and_precision(ioc, pv, units):
    assert caget_str(ioc.pv(f"{pv}.EGU")) == units
    assert caget_str(ioc.pv(f"{pv}.PREC")) == "3"


def test_progress_has_limits_0_to_100(ioc):
    assert caget_str(ioc.pv("CURRENT:PROGRESS.HOPR")) == "100"
    assert caget_str(ioc.pv("CURRENT:PROGRESS.LOPR")) == "0"
    ctrl = run_ca("caget", "-d", "DBR_CTRL_DOUBLE", ioc.pv("CURRENT:PROGRESS")).stdout
    assert "Hi disp limit:    100" in ctrl and "Hi ctrl limit:    100" in ctrl, ctrl


def test_nord_is_the_current_length_of_a_waveform(ioc):
    status = caget_str(ioc.pv("STATUS"))
    assert int(caget_str(ioc.pv("STATUS.NORD"))) == len(status.encode()) > 0


def test_plan_names_holds_exactly_the_plan_names(ioc):
    fields = run_ca("caget", ioc.pv("PLANS:NAMES")).stdout.split()
    count, names = int(fields[1]), fields[2:]
    assert count == len(names) and "count" in names and "" not in names


@pytest.mark.parametrize(("pv", "action"), [("PAUSE", "Pause"), ("STOP", "Stop"),
                                            ("ERROR:CLEAR", "Clear"), ("QUEUE:CLEAR", "Clear")])
def test_write_1_pvs_read_done_and_name_their_action(ioc, pv, action):
    info = run_ca("caget", "-d", "DBR_CTRL_ENUM", ioc.pv(pv)).stdout
    assert "[ 0] Done" in info and f"[ 1] {action}" in info, info
    assert caget_str(ioc.pv(pv)) == "Done"


@pytest.mark.parametrize("pv", ["STATE", "STATUS", "SUBMIT", "HEARTBEAT", "QUEUE:NAMES", "LAST:DURATION", "PAUSE"])
def test_udf_is_0_once_a_pv_holds_a_value(ioc, ca_context, pv):
    assert caget_str(ioc.pv(f"{pv}.UDF")) == "0"
    assert list(ca_read(ca_context, ioc.pv(f"{pv}.UDF")).data) == [0]  # one byte, as a record's


@pytest.mark.parametrize(("pv", "ftvl"), [("STATUS", "CHAR"), ("SUBMIT", "CHAR"), ("PLANS", "CHAR"),
                                          ("QUEUE:NAMES", "STRING"), ("PLANS:NAMES", "STRING")])
def test_ftvl_is_the_type_of_the_elements(ioc, pv, ftvl):
    assert caget_str(ioc.pv(f"{pv}.FTVL")) == ftvl


def test_plan_names_nord_is_the_number_of_plans(ioc):
    fields = run_ca("caget", ioc.pv("PLANS:NAMES")).stdout.split()
    assert int(caget_str(ioc.pv("PLANS:NAMES.NORD"))) == int(fields[1]) == len(fields) - 2 > 5


def test_queue_names_holds_exactly_the_pending_tasks(ioc):
    assert run_ca("caput", ioc.pv("QUEUE:ENABLE"), "Hold").returncode == 0
    assert caget_str(ioc.pv("QUEUE:NAMES.NORD")) == "0"
    for _ in range(3):
        assert caput_text(ioc.pv("SUBMIT"), request("count", detectors=["det1"])).returncode == 0
    wait_for(lambda: caget_str(ioc.pv("QUEUE:NAMES.NORD")) == "3", 10)
    fields = run_ca("caget", ioc.pv("QUEUE:NAMES")).stdout.split()
    assert fields[1] == "3" and fields[3::2] == ["count"] * 3, fields  # "<id8> count" each
    assert run_ca("caput", ioc.pv("QUEUE:CLEAR"), "1").returncode == 0
    wait_for(lambda: caget_str(ioc.pv("QUEUE:NAMES.NORD")) == "0", 10)
    assert run_ca("caget", ioc.pv("QUEUE:NAMES")).stdout.split()[1] == "2"  # never a scalar to a client
