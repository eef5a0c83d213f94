"""RELOAD re-imports plan modules (a new file appears) and keeps the old catalog on error."""

from __future__ import annotations

import os

from tests.integration.harness import caget_str, process_env
from tests.integration.ioc_client import command, request, submit, wait_finished

WAVE = '''
import bluesky.plan_stubs as bps


def wave(times: int = 1):
    """Say hello to the beamline."""
    for _ in range(times):
        yield from bps.null()
'''


def plan_names(ioc) -> list[str]:
    return caget_str(ioc.pv("PLANS:NAMES")).split()[1:]


def test_reload_picks_up_a_new_module_and_survives_a_broken_one(ioc_factory, ca_context, tmp_path):
    package = tmp_path / "site_plans"
    package.mkdir()
    (package / "__init__.py").write_text("")
    env = process_env({"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])})
    ioc = ioc_factory("--plans", "plans", "--plans", "site_plans", "--state-dir", tmp_path / "state", env=env)
    assert "wave" not in plan_names(ioc)

    (package / "greetings.py").write_text(WAVE)
    assert command(ioc, "RELOAD").returncode == 0
    assert "wave" in plan_names(ioc)
    assert "Say hello to the beamline." in caget_str(ioc.pv("PLANS"), env={"EPICS_CA_MAX_ARRAY_BYTES": "1000000"})
    task_id = submit(ca_context, ioc, request("wave", times=2))
    assert wait_finished(ca_context, ioc, task_id) == "Success"

    (package / "broken.py").write_text("def oops(:\n")
    before = caget_str(ioc.pv("PLANS"), env={"EPICS_CA_MAX_ARRAY_BYTES": "1000000"})
    proc = command(ioc, "RELOAD")
    assert proc.returncode == 1
    message = caget_str(ioc.pv("ERROR:MESSAGE"))
    assert message.startswith("RELOAD: CommandRefused: PlanLoadError: ")
    assert "site_plans.broken" in message and "SyntaxError" in message
    assert caget_str(ioc.pv("PLANS"), env={"EPICS_CA_MAX_ARRAY_BYTES": "1000000"}) == before
    task_id = submit(ca_context, ioc, request("wave"))
    assert wait_finished(ca_context, ioc, task_id) == "Success"
