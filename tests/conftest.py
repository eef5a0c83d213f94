"""Top-level test configuration.

At import time (before anything imports ``epics`` or ``caproto``, which read
the environment once per process) this puts the loopback-only EPICS variables
into ``os.environ``: a free CA server port for the session (TCP+UDP bindable on
127.0.0.1) and a separate free port for the caRepeater / server beacons.
Every CA process the tests start inherits these (see tests/integration/harness.py).
"""
import os

import pytest

from tests.integration.harness import install_session_env, start_repeater

SESSION_EPICS_ENV = install_session_env()
SESSION_PORT = int(SESSION_EPICS_ENV["EPICS_CA_SERVER_PORT"])
SESSION_REPEATER_PORT = int(SESSION_EPICS_ENV["EPICS_CA_REPEATER_PORT"])


def pytest_report_header(config):
    return (f"EPICS loopback: server port {SESSION_PORT}, "
            f"repeater/beacon port {SESSION_REPEATER_PORT}")


@pytest.fixture(scope="session", autouse=True)
def ca_repeater(tmp_path_factory):
    """One real caRepeater per session on SESSION_REPEATER_PORT (servers send
    beacons there; clients register there -- and libca/caproto then need not
    spawn their own). Started before any test, terminated at the end."""
    assert os.environ["EPICS_CA_REPEATER_PORT"] == str(SESSION_REPEATER_PORT)
    proc = start_repeater(SESSION_REPEATER_PORT,
                          log_dir=tmp_path_factory.mktemp("carepeater"))
    yield proc
    proc.stop()
