"""Who writes: each write to a writable PV carries its writer into the putter, and is
put in the put log, accepted or refused.

caproto hands a putter no identity; `ChannelData.auth_write` gets the circuit's client
user and host on every write. `capture_writers` wraps it on each writable PV: the write
is described in a context variable (each CA write runs as an asyncio task of its own,
so concurrent writes each see their own) that the putter reads with `writer()`. pvAccess
puts (`ioc.pva.puts`) call the same `auth_write`, each in a task of its own, with the
peer's account and address.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from caproto import AccessRights, ChannelData, ChannelType
from caproto._data import Forbidden
from caproto._dbr import native_type

from ..identity import NOBODY, Writer
from ..putlog import record_put
from .fields import RAW

AuthWrite = Callable[..., Awaitable[Any]]
NO_WRITE_ACCESS = "no write access (access security)"


@dataclass
class Write:
    """One write being handled: who, to which PV, what; logged once, when decided."""

    writer: Writer
    pv: str
    new: str
    old: str
    logged: bool = False

    def accepted(self) -> None:
        """Log the write as accepted (once)."""
        if not self.logged:
            self.logged = True
            record_put(self.writer, self.pv, self.new, old=self.old)

    def refused(self, reason: str) -> None:
        """Log the write as refused, for `reason` (once)."""
        if not self.logged:
            self.logged = True
            record_put(self.writer, self.pv, self.new, refused=reason)


_WRITE: contextvars.ContextVar[Write | None] = contextvars.ContextVar("write", default=None)


def writer() -> Writer:
    """The writer of the write being handled (`NOBODY` outside of a client's write)."""
    write = _WRITE.get()
    return write.writer if write is not None else NOBODY


def write_accepted() -> None:
    """The write being handled is accepted, whatever its completion then waits for (a
    put to `RUN` completes when its task ends): log it now.
    """
    write = _WRITE.get()
    if write is not None:
        write.accepted()


def capture_writers(pvdb: Mapping[str, ChannelData]) -> None:
    """Wrap `auth_write` of every writable PV of `pvdb` (call before access security is
    applied: a PV counts as writable if a client may ever write it).
    """
    for name, channel in pvdb.items():
        if writable(channel):
            channel.auth_write = _capturing(name, channel, channel.auth_write)


def writable(channel: ChannelData) -> bool:
    """Whether a client may ever write `channel` (before access security narrows it)."""
    return bool(channel.check_access("", "") & AccessRights.WRITE)


def _capturing(pv: str, channel: ChannelData, auth_write: AuthWrite) -> AuthWrite:
    async def capturing_auth_write(hostname: str, username: str, data: Any, data_type: ChannelType,
                                   metadata: Any, **options: Any) -> Any:
        write = Write(Writer.claimed(username, hostname), pv, as_text(channel, data, data_type),
                      value_text(channel, channel.value))
        token = _WRITE.set(write)
        try:
            status = await auth_write(hostname, username, data, data_type, metadata, **options)
        except Exception as error:
            write.refused(refusal(error))
            raise
        finally:
            _WRITE.reset(token)
        write.accepted()
        return status

    return capturing_auth_write


def refusal(error: Exception) -> str:
    """The reason a refused write gives in the put log."""
    if isinstance(error, Forbidden):  # access security said no
        return NO_WRITE_ACCESS
    return str(error) or type(error).__name__


def as_text(channel: ChannelData, data: Any, data_type: ChannelType) -> str:
    """The value a client wrote, as text: a char waveform's text up to its first NUL, an
    enum's state name (written as a name or an index), else the value(s).
    """
    if native_type(data_type) is ChannelType.CHAR:
        raw = _char_bytes(data)
        return raw.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    states = [str(state) for state in getattr(channel, "enum_strings", None) or ()]
    return " ".join(_item_text(item, states) for item in _items(data))


def _char_bytes(data: Any) -> bytes:
    """The bytes of a char array as caproto hands it over (numpy array, bytes, list)."""
    if isinstance(data, bytes):
        return data
    if hasattr(data, "astype"):  # a numpy array: no loop in Python over a 64 kB write
        return bytes(data.astype("uint8"))
    return bytes(bytearray(int(byte) & 0xFF for byte in _items(data)))


def _items(data: Any) -> list[Any]:
    """The elements of `data` (a scalar, a list, a numpy array, nested), flattened."""
    if hasattr(data, "tolist"):
        data = data.tolist()
    if isinstance(data, str | bytes) or not isinstance(data, Iterable):
        return [data]
    return [element for item in data for element in _items(item)]  # caproto's DbrStringArray too


def _item_text(item: Any, states: list[str]) -> str:
    """One element as text; for an enum, a state index as the state's name."""
    text = item.split(b"\0", 1)[0].decode("utf-8", errors="replace") if isinstance(item, bytes) else str(item)
    if states and text not in states:
        try:
            index = float(text)
        except ValueError:
            return text
        if index.is_integer() and 0 <= index < len(states):
            return states[int(index)]
    return text


def value_text(channel: ChannelData, value: Any) -> str:
    """A PV's current value as text (a char waveform's bytes as UTF-8)."""
    if isinstance(value, str) and getattr(channel, "string_encoding", None) == RAW:
        return value.encode(RAW).split(b"\0", 1)[0].decode("utf-8", errors="replace")
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8", errors="replace")
    return str(value)
