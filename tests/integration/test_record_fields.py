"""Record fields an EPICS engineer reads: units, precision, limits, NORD, exact arrays,
state strings of the control PVs."""

from __future__ import annotations

import pytest

from tests.integration.harness import caget_str, run_ca


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
