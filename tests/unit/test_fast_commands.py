"""The fast path of the sans-I/O circuit: the same bookkeeping and the same protocol
errors as caproto's own, without caproto's state machine for the hot commands."""
from __future__ import annotations

import caproto as ca
import pytest
from caproto._state import ChannelState

from ioc.pvs import fast_commands
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
        ("out", ca.EventAddResponse([], FLOAT, 0, 1, 11, metadata=None)),  # a cancel's reply
        ("in", ca.EventAddRequest(FLOAT, 0, SID, 12, 0, 0, 0, 1)),
        ("in", ca.EventCancelRequest(FLOAT, SID, 12)),
        ("out", ca.EventCancelResponse(FLOAT, SID, 12, 0)),  # caproto's server sends this
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


def wire() -> bytes:
    """Requests as a client sends them: plain ones, and a write big enough to need the
    extended header."""
    requests = [ca.EventAddRequest(FLOAT, 1, SID, 11, 0, 0, 0, 1),
                ca.ReadNotifyRequest(ca.ChannelType.DOUBLE, 1, SID, 21),
                ca.WriteNotifyRequest([0.5] * 10_000, ca.ChannelType.DOUBLE, 10_000, SID, 22),
                ca.EventCancelRequest(FLOAT, SID, 11),
                ca.EchoRequest()]
    return b"".join(bytes(request) for request in requests)


def parsed(cls: type[ca.VirtualCircuit], pieces: list[bytes]) -> list[tuple[str, bytes]]:
    circuit = cls(ca.SERVER, ADDRESS, None)
    found = []
    for piece in pieces:
        commands, _ = circuit.recv(piece)
        found += [(type(command).__name__, bytes(command)) for command in commands]
    return found


@pytest.mark.parametrize("cut", [1, 7, 16, 31, 500, 4096])
def test_commands_are_read_as_caproto_reads_them_however_the_bytes_arrive(cut):
    data = wire()
    pieces = [data[i:i + cut] for i in range(0, len(data), cut)]
    assert parsed(FastCircuit, pieces) == parsed(ca.VirtualCircuit, pieces)
    assert [name for name, _ in parsed(FastCircuit, pieces)] == [
        "EventAddRequest", "ReadNotifyRequest", "WriteNotifyRequest", "EventCancelRequest",
        "EchoRequest"]


def test_plain_commands_are_read_without_caprotos_reader(monkeypatch):
    calls = []
    read = fast_commands.read_from_bytestream
    monkeypatch.setattr(fast_commands, "read_from_bytestream",
                        lambda *args: calls.append(1) or read(*args))
    commands, needed = FastCircuit(ca.SERVER, ADDRESS, None).recv(
        bytes(ca.EventAddRequest(FLOAT, 1, SID, 11, 0, 0, 0, 1)) * 100)
    assert (len(commands), needed, len(calls)) == (100, 16, 1)  # only to say what is missing


def test_an_unknown_command_is_refused_as_caproto_refuses_it():
    with pytest.raises(ca.RemoteProtocolError, match="bad command ID"):
        FastCircuit(ca.SERVER, ADDRESS, None).recv(bytes(ca.EchoRequest()) + b"\x00\x99" + bytes(14))


def test_a_circuit_command_passes_over_no_channel_while_connected(monkeypatch):
    circuit = connected(FastCircuit)
    write = ca.WriteNotifyRequest([2.0], ca.ChannelType.DOUBLE, 1, SID, 22)
    circuit.process_command(write)

    def refuse(self):
        raise AssertionError("caproto updated every channel of the circuit")

    monkeypatch.setattr(ChannelState, "update", refuse)
    circuit.send(ca.ErrorResponse(write, CID, status=ca.CAStatus.ECA_PUTFAIL, error_message="no"))
    circuit.process_command(ca.EchoRequest())
    circuit.process_command(ca.HostNameRequest("host"))
    assert circuit.states.states == {ca.CLIENT: ca.CONNECTED, ca.SERVER: ca.CONNECTED}


def test_a_disconnect_still_reaches_every_channel():
    circuit = connected(FastCircuit)
    circuit.process_command(ca.DISCONNECTED)
    assert circuit.channels_sid[SID].states.states == {ca.CLIENT: ca.CLOSED, ca.SERVER: ca.CLOSED}
