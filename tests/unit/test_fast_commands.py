"""The fast path of the sans-I/O circuit: the same bookkeeping and the same protocol
errors as caproto's own, without caproto's state machine for the hot commands."""
from __future__ import annotations

import caproto as ca
import pytest
from caproto._state import ChannelState

from ioc.pvs.fast_commands import FastCircuit

ADDRESS = ("127.0.0.1", 5064)
CID, SID = 7, 3
FLOAT = ca.ChannelType.GR_FLOAT


def connected(cls: type[ca.VirtualCircuit]) -> ca.VirtualCircuit:
    """A server circuit of `cls` with one channel connected, as after a client's connect."""
    circuit = cls(ca.SERVER, ADDRESS, None)
    for command in [ca.VersionRequest(priority=0, version=13),
                    ca.CreateChanRequest(name="X", cid=CID, version=13)]:
        circuit.process_command(command)
    circuit.send(ca.VersionResponse(13), ca.AccessRightsResponse(cid=CID, access_rights=3),
                 ca.CreateChanResponse(data_type=ca.ChannelType.DOUBLE, data_count=1, cid=CID,
                                       sid=SID))
    return circuit


def traffic() -> list[tuple[str, ca.Message]]:
    """Hot commands in both directions: a subscription, its update, its cancel and the
    cancel's reply; a read and a write with notification and their replies."""
    return [
        ("in", ca.EventAddRequest(FLOAT, 1, SID, 11, 0, 0, 0, 1)),
        ("out", ca.EventAddResponse([1.5], FLOAT, 1, 1, 11, metadata=None)),
        ("in", ca.ReadNotifyRequest(ca.ChannelType.DOUBLE, 1, SID, 21)),
        ("in", ca.WriteNotifyRequest([2.0], ca.ChannelType.DOUBLE, 1, SID, 22)),
        ("in", ca.WriteRequest([3.0], ca.ChannelType.DOUBLE, 1, SID, 23)),
        ("in", ca.EventCancelRequest(FLOAT, SID, 11)),
        ("out", ca.ReadNotifyResponse([2.0], ca.ChannelType.DOUBLE, 1, 1, 21)),
        ("out", ca.WriteNotifyResponse(ca.ChannelType.DOUBLE, 1, 1, 22)),
        ("out", ca.EventAddResponse([], FLOAT, 0, 1, 11, metadata=None)),  # the cancel's reply
    ]


def bookkeeping(circuit: ca.VirtualCircuit) -> tuple:
    chan = circuit.channels_sid[SID]
    return (dict(chan.states.states), dict(circuit.states.states), sorted(circuit._ioids),
            sorted(circuit.event_add_commands), sorted(circuit.event_cancel_commands))


def feed(circuit: ca.VirtualCircuit, steps: list[tuple[str, ca.Message]]) -> list[tuple]:
    states = []
    for direction, command in steps:
        if direction == "in":
            circuit.process_command(command)
        else:
            circuit.send(command)
        states.append(bookkeeping(circuit))
    return states


def test_the_hot_commands_keep_the_books_as_caproto_does():
    assert feed(connected(FastCircuit), traffic()) == feed(connected(ca.VirtualCircuit), traffic())


def test_the_hot_commands_skip_caprotos_state_machine(monkeypatch):
    circuit = connected(FastCircuit)

    def refuse(*args):
        raise AssertionError("caproto's channel state machine ran")

    monkeypatch.setattr(ChannelState, "process_command_type", refuse)
    feed(circuit, traffic())


def test_the_books_stay_as_caprotos_when_the_channel_is_cleared():
    steps = [("in", ca.EventAddRequest(FLOAT, 1, SID, 11, 0, 0, 0, 1)),
             ("in", ca.ClearChannelRequest(SID, CID)),
             ("out", ca.EventAddResponse([1.5], FLOAT, 1, 1, 11, metadata=None))]
    assert feed(connected(FastCircuit), steps) == feed(connected(ca.VirtualCircuit), steps)


@pytest.mark.parametrize("direction, command", [
    ("in", ca.EventAddRequest(FLOAT, 1, SID + 1, 11, 0, 0, 0, 1)),  # unknown sid
    ("in", ca.ReadNotifyRequest(ca.ChannelType.DOUBLE, 1, SID + 1, 21)),
    ("in", ca.EventCancelRequest(FLOAT, SID, 12)),  # unknown subscription
    ("in", ca.EventCancelRequest(ca.ChannelType.GR_DOUBLE, SID, 11)),  # not its data type
    ("out", ca.EventAddResponse([1.5, 2.5], FLOAT, 2, 1, 11, metadata=None)),  # not its count
    ("out", ca.ReadNotifyResponse([2.0], ca.ChannelType.DOUBLE, 1, 1, 99)),  # unknown ioid
])
def test_what_caproto_refuses_is_still_refused(direction, command):
    circuit = connected(FastCircuit)
    circuit.process_command(ca.EventAddRequest(FLOAT, 1, SID, 11, 0, 0, 0, 1))
    with pytest.raises(ca.CaprotoError):
        feed(circuit, [(direction, command)])
