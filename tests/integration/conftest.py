"""Fixtures for integration tests that drive real processes over loopback CA.

* ``ca_repeater`` (session, autouse) lives in tests/conftest.py.
* ``ca_context``  (session): caproto threading-client Context.
* ``ioc_factory`` (function): ``start_ioc``; stops every IOC it started.
* ``module_ioc_factory`` (module): same, for one IOC shared by a module.

Only one CA server may use the session port at a time: ``start_ioc`` raises
PortBusyError while another harness-started server is running -- stop the
shared IOC first (``ioc.stop()``) or put fresh-IOC tests in their own module.
"""
from __future__ import annotations

import pytest

from tests.integration import harness


@pytest.fixture(scope="session")
def ca_context(ca_repeater):
    """Session-wide caproto threading Context (see harness.ca_read/ca_write)."""
    ctx = harness.make_context()
    yield ctx
    ctx.disconnect()


class _IocFactory:
    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.started: list[harness.IocProcess] = []

    def __call__(self, *extra_args, **kwargs) -> harness.IocProcess:
        kwargs.setdefault("log_dir", self.log_dir)
        ioc = harness.IocProcess(*extra_args, **kwargs)
        self.started.append(ioc)  # registered before start: stopped even if start fails
        return ioc.start()

    def stop_all(self) -> None:
        errors = []
        for ioc in reversed(self.started):
            try:
                ioc.stop()
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture
def ioc_factory(ca_repeater, tmp_path):
    """``ioc_factory(*extra_args, prefix=None, env=None, ready_timeout=60, ...)``
    -> started, ready IocProcess. All of them are stopped at teardown."""
    factory = _IocFactory(tmp_path / "ioc-logs")
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def module_ioc_factory(ca_repeater, tmp_path_factory):
    """Module-scoped ``ioc_factory`` for a shared IOC fixture, e.g.::

        @pytest.fixture(scope="module")
        def ioc(module_ioc_factory):
            return module_ioc_factory("--some-option")
    """
    factory = _IocFactory(tmp_path_factory.mktemp("ioc-logs"))
    yield factory
    factory.stop_all()
