"""Fixtures for integration tests that drive real processes over loopback CA.

* ``ca_repeater`` (session, autouse) lives in tests/conftest.py.
* ``ca_context``  (function): the session's shared caproto threading-client Context
  (``ca_contexts``, session: replaced when caproto's search thread has died).
* ``ioc_factory`` (function): ``start_ioc``; stops every IOC it started.
* ``module_ioc_factory`` (module): same, for one IOC shared by a module.

Only one CA server may use the session port at a time: ``start_ioc`` raises
PortBusyError while another harness-started server is running -- stop the
shared IOC first (``ioc.stop()``) or put fresh-IOC tests in their own module.
"""
from __future__ import annotations

import pytest

from tests.integration import harness


class SharedContexts:
    """The caproto threading Context the tests share, replaced when it can no longer
    connect anything: caproto's search-results thread dies when a server that answered a
    search cannot be connected within 2 s (one a test has just killed, say), and every
    later search of that Context then goes unanswered.
    """

    def __init__(self) -> None:
        self._contexts = [harness.make_context()]

    def current(self):
        """The shared Context, a new one if caproto's search thread of the last has died."""
        if not self._contexts[-1]._process_search_results_thread.is_alive():
            self._contexts.append(harness.make_context())
        return self._contexts[-1]

    def close(self) -> None:
        for ctx in self._contexts:
            ctx.disconnect()


@pytest.fixture(scope="session")
def ca_contexts(ca_repeater):
    """The session's shared caproto threading Contexts (`SharedContexts`)."""
    contexts = SharedContexts()
    yield contexts
    contexts.close()


@pytest.fixture
def ca_context(ca_contexts):
    """A caproto threading Context (see harness.ca_read/ca_write), shared by the tests."""
    return ca_contexts.current()


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
