"""Every PV the operator screens name exists on the running IOC, with a type its widget
can show (or write)."""

from __future__ import annotations

import pytest
from caproto import AccessRights, ChannelType
from p4p.client.thread import Context

from tests.integration.harness import CA_TIMEOUT, ca_read, random_prefix
from tests.screens import ScreenPV, screen_pvs

PREFIX = random_prefix()
NUMBERS = {ChannelType.DOUBLE, ChannelType.FLOAT, ChannelType.LONG, ChannelType.INT}


def cases() -> list:
    def case(pv: ScreenPV):
        return pytest.param(pv, id=f"{pv.name.removeprefix(PREFIX)}-{pv.role}")

    return [case(pv) for pv in sorted(screen_pvs(PREFIX))]


@pytest.fixture(scope="module")
def ioc(module_ioc_factory, tmp_path_factory):
    return module_ioc_factory("--state-dir", tmp_path_factory.mktemp("state"), prefix=PREFIX)


@pytest.mark.parametrize("pv", cases())
def test_the_pv_serves_what_its_widget_needs(ioc, ca_context, pv):
    if pv.role == "nttable":  # a pvAccess table: its columns come from the labels
        context = Context("pva", nt=False)
        try:
            value = context.get(pv.name, timeout=CA_TIMEOUT)
        finally:
            context.close()
        assert value.getID() == "epics:nt/NTTable:1.0" and len(value.labels) > 1
        return
    (channel,) = ca_context.get_pvs(pv.name, timeout=CA_TIMEOUT)
    channel.wait_for_connection(timeout=CA_TIMEOUT)
    native = channel.channel.native_data_type
    count = channel.channel.native_data_count
    writable = bool(channel.channel.access_rights & AccessRights.WRITE)
    if pv.role == "number":
        assert native in NUMBERS and count == 1
    elif pv.role == "list":
        assert native == ChannelType.STRING and count > 1
    elif pv.role in ("colour", "choose"):
        strings = ca_read(ca_context, pv.name, data_type=ChannelType.CTRL_ENUM).metadata.enum_strings
        states = {s.decode() for s in strings}
        assert native == ChannelType.ENUM and (pv.role == "choose" or set(pv.values) == states)
        assert writable == (pv.role == "choose")
    elif pv.role == "press":
        assert writable and (native == ChannelType.ENUM or native in NUMBERS)
    elif pv.role == "type":
        assert writable and native == ChannelType.CHAR and count >= 16384
    else:  # shown as text: anything readable
        assert pv.role == "show" and ca_read(ca_context, pv.name) is not None
