"""caproto's sans-I/O circuit with a fast path for the commands a busy client repeats.

caproto 1.3's ``VirtualCircuit._process_command`` runs every command, in and out,
through a chain of ``isinstance`` tests, enum conversions and the channel's state
machine; ``send`` measures and formats each command for a debug log line even when
debug logging is off. For the hot commands (event add and cancel, read and write
notify, and their replies) on a channel that is connected both ways, the state machine
only ever goes from CONNECTED to CONNECTED: what is left is caproto's bookkeeping
(``event_add_commands``, ``event_cancel_commands``, ``_ioids``) and its checks
(known sid, subscription id, ioid; a subscription's data type, count and sid). Here
those are done directly. Anything else, or anything that fails a check, goes through
caproto's own path, which raises the protocol error it always did.
"""

from __future__ import annotations

import ctypes
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import caproto as ca
from caproto._commands import Commands, read_from_bytestream
from caproto._headers import MessageHeader
from caproto._state import COMMAND_TRIGGERED_CIRCUIT_TRANSITIONS as CIRCUIT_TRANSITIONS
from caproto._utils import CLIENT, CONNECTED, NEED_DATA, SERVER

HEADER_SIZE = ctypes.sizeof(MessageHeader)
EXTENDED = 0xFFFF  # a header's payload size that says an extended header follows

Handler = Callable[["FastCircuit", Any], bool]


def _connected(chan: Any) -> bool:
    """Whether `chan` is connected for both sides (hot commands leave it so)."""
    states = chan.states.states
    return states[CLIENT] is CONNECTED and states[SERVER] is CONNECTED


class FastCircuit(ca.VirtualCircuit):
    """``caproto.VirtualCircuit`` whose hot commands skip the generic dispatch."""

    _data: bytearray  # caproto's: received bytes not parsed yet

    def recv(self, *buffers: Any) -> tuple[deque[Any], int]:
        """As caproto's ``recv``: the commands in the bytes received so far, and how many
        more bytes the next one needs. Plain headers of known commands are read at their
        offsets in one buffer (caproto slices off each command, copying the rest, and
        reads every header through its size checks); the rest is left to caproto.
        """
        received = b"".join(buffers)
        if not received:
            return super().recv(*buffers)  # the client went away
        data = self._data + received
        view = memoryview(data)
        classes = Commands[self.their_role]
        commands: deque[Any] = deque()
        offset, end = 0, len(data)
        while end - offset >= HEADER_SIZE:
            header = MessageHeader.from_buffer_copy(data, offset)
            size = HEADER_SIZE + header.payload_size
            cls = classes.get(header.command)
            if cls is None or header.payload_size == EXTENDED or end - offset < size:
                break  # unknown (caproto refuses it), extended, or not all here yet
            commands.append(cls.from_wire(header, view[offset + HEADER_SIZE:offset + size]))
            offset += size
        self._data = bytearray(view[offset:])
        while True:
            self._data, command, needed = read_from_bytestream(self._data, self.their_role)
            if command is NEED_DATA:
                return commands, needed
            commands.append(command)

    def send(self, *commands: ca.Message, extra: dict[str, Any] | None = None) -> list[Any]:
        """As caproto's ``send``, with the per-command debug line only when debug is on."""
        if self.log.isEnabledFor(logging.DEBUG):
            return super().send(*commands, extra=extra)
        buffers: list[Any] = []
        for command in commands:
            self._process_command(self.our_role, command)
            buffers.append(memoryview(command.header))
            buffers.extend(command.buffers)
        return buffers

    def _process_command(self, role: Any, command: Any) -> None:
        kind = type(command)
        handler = _HANDLERS.get((role, kind))
        if handler is not None:
            if handler(self, command):
                return
        elif kind in _CIRCUIT_COMMANDS and self._circuit_stays_connected(kind):
            return
        super()._process_command(role, command)

    def _circuit_stays_connected(self, kind: type) -> bool:
        """Whether a command of the circuit as a whole (an error reply, an echo, the
        client's names, events on or off) leaves the connected circuit connected: then
        caproto's pass over every channel of the circuit (which only acts on a
        disconnect) has nothing to do. An error reply to each of 1,000 channels' writes
        cost 1,000 channel updates each.
        """
        role = self.our_role  # caproto runs the circuit's machine for our role only
        state = self.states.states[role]
        return state is CONNECTED and CIRCUIT_TRANSITIONS[role][state].get(kind) is CONNECTED

    # Each handler returns False, having changed nothing, when caproto must decide.

    def _event_add(self, command: ca.EventAddRequest) -> bool:
        chan = self.channels_sid.get(command.header.parameter1)
        if chan is None or not _connected(chan):
            return False
        self.event_add_commands[command.header.parameter2] = command
        return True

    def _io_request(self, command: ca.ReadNotifyRequest | ca.WriteNotifyRequest) -> bool:
        chan = self.channels_sid.get(command.header.parameter1)
        if chan is None or not _connected(chan):
            return False
        self._ioids[command.header.parameter2] = chan
        return True

    def _write(self, command: ca.WriteRequest) -> bool:
        chan = self.channels_sid.get(command.header.parameter1)
        return chan is not None and _connected(chan)

    def _event_cancel(self, command: ca.EventCancelRequest) -> bool:
        header = command.header
        event_add = self.event_add_commands.get(header.parameter2)
        if event_add is None or not _same_subscription(event_add.header, header):
            return False
        chan = self.channels_sid.get(header.parameter1)
        if chan is None or not _connected(chan):
            return False
        self.event_cancel_commands[header.parameter2] = event_add
        return True

    def _event_update(self, command: ca.EventAddResponse) -> bool:
        """An update, or (empty, after a cancel request) the cancel's reply."""
        header = command.header
        subscriptionid = header.parameter2
        event_add = self.event_add_commands.get(subscriptionid)
        if event_add is None or event_add.header.data_type != header.data_type:
            return False
        cancelling = header.payload_size == 0 and subscriptionid in self.event_cancel_commands
        count = event_add.header.data_count
        if not cancelling and count > 0 and count != header.data_count:
            return False
        chan = self.channels_sid.get(event_add.header.parameter1)
        if chan is None or not _connected(chan):
            return False
        if cancelling:
            del self.event_add_commands[subscriptionid]
            del self.event_cancel_commands[subscriptionid]
        return True

    def _event_cancelled(self, command: ca.EventCancelResponse) -> bool:
        """The reply to a cancel request: the subscription is forgotten."""
        header = command.header
        subscriptionid = header.parameter2
        event_add = self.event_add_commands.get(subscriptionid)
        if (event_add is None or subscriptionid not in self.event_cancel_commands
                or not _same_subscription(event_add.header, header)):
            return False
        chan = self.channels_sid.get(header.parameter1)
        if chan is None or not _connected(chan):
            return False
        del self.event_add_commands[subscriptionid]
        del self.event_cancel_commands[subscriptionid]
        return True

    def _io_reply(self, command: ca.ReadNotifyResponse | ca.WriteNotifyResponse) -> bool:
        ioid = command.header.parameter2
        chan = self._ioids.get(ioid)
        if chan is None or not _connected(chan):
            return False
        del self._ioids[ioid]
        return True


def _same_subscription(added: Any, cancelled: Any) -> bool:
    """Whether a cancel's header names the data type and sid of the add it cancels."""
    return added.data_type == cancelled.data_type and added.parameter1 == cancelled.parameter1


_CIRCUIT_COMMANDS = frozenset({
    ca.ErrorResponse, ca.EchoRequest, ca.EchoResponse, ca.EventsOnRequest, ca.EventsOffRequest,
    ca.HostNameRequest, ca.ClientNameRequest,
})

_HANDLERS: dict[tuple[Any, type], Handler] = {
    (CLIENT, ca.EventAddRequest): FastCircuit._event_add,
    (CLIENT, ca.EventCancelRequest): FastCircuit._event_cancel,
    (CLIENT, ca.ReadNotifyRequest): FastCircuit._io_request,
    (CLIENT, ca.WriteNotifyRequest): FastCircuit._io_request,
    (CLIENT, ca.WriteRequest): FastCircuit._write,
    (SERVER, ca.EventAddResponse): FastCircuit._event_update,
    (SERVER, ca.EventCancelResponse): FastCircuit._event_cancelled,
    (SERVER, ca.ReadNotifyResponse): FastCircuit._io_reply,
    (SERVER, ca.WriteNotifyResponse): FastCircuit._io_reply,
}
