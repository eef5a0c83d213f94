"""Small factories for the record-like PVs of the contract, and text helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from contextvars import ContextVar
from enum import StrEnum
from typing import Any

from caproto import (
    AlarmSeverity,
    AlarmStatus,
    ChannelChar,
    ChannelData,
    ChannelDouble,
    ChannelType,
)
from caproto._backend import convert_values
from caproto._constants import MAX_SUBSCRIPTION_BACKLOG
from caproto._dbr import native_type
from caproto._utils import ConversionDirection
from caproto.server import pvproperty
from caproto.server.server import (
    PvpropertyChar,
    PvpropertyEnum,
    PvpropertyString,
    PvpropertyStringRO,
)

from ..errors import RequestError
from ..models import Summarized, json_list
from .posting import show

# Char waveforms carry UTF-8 text. caproto is told latin-1 so that every byte maps to
# one character: lengths are checked in bytes and incoming bytes reach us unaltered.
RAW = "latin-1"
LINE_BYTES = 4096  # one-line text: STATUS, messages
JSON_BYTES = 1_000_000  # JSON that may outgrow 16 kB: QUEUE, HISTORY, PLANS, DEVICES
# Updates queued per slow monitor of a waveform: fewer for larger ones (older ones are dropped).
BACKLOG_BYTES = 4_000_000
MIN_BACKLOG = 10


NOT_TEXT = "\0not text"  # what a writable text PV's putter gets for a write that is no text
DONE = "Done"  # state 0 of every write-1-to-act PV: what it reads once the action is over


class Refused(ValueError):
    """A write a putter refused, with the reason it already recorded on a status PV."""


# The refusals of the CA write in progress (each CA write runs as an asyncio task of its own,
# so each sees its own list); None outside a write from a client.
_refusals: ContextVar[list[Refused] | None] = ContextVar("refusals", default=None)


class RefusalsRaiseNoAlarm:
    """Mixin for the data class of a writable PV: a write its putter refuses (`Refused`)
    still completes with an error, but puts no alarm on the PV (caproto would leave it in
    WRITE/MAJOR for good) and leaves the value written as its readback: the refusal is
    reported on `SUBMIT:*` / `ERROR:*`, as the contract says.
    """

    def readback_of(self, value: Any) -> Any:
        """What the PV reads back after a write of `value` (refused, or still being handled)."""
        return value

    async def verify_value(self, value: Any) -> Any:
        """Run the putter; keep a refusal for `write_from_dbr` to raise once stored."""
        refusals = _refusals.get()
        try:
            return await super().verify_value(value)  # type: ignore[misc]
        except Refused as refusal:
            if refusals is None:  # a write from the IOC itself, not from a client
                raise
            refusals.append(refusal)
            return self.readback_of(value)

    async def write_from_dbr(self, data: Any, data_type: ChannelType, metadata: Any, *, flags: int = 0) -> None:
        """Write as a client does; raise the putter's refusal (the put's error) afterwards."""
        await raising_refusals(super().write_from_dbr(data, data_type, metadata, flags=flags))  # type: ignore[misc]


async def raising_refusals(write: Awaitable[None]) -> None:
    """Await a client's `write`, during which `RefusalsRaiseNoAlarm` PVs keep what their
    putters refuse; then raise the refusal, if any.
    """
    refusals: list[Refused] = []
    token = _refusals.set(refusals)
    try:
        await write
    finally:
        _refusals.reset(token)
    if refusals:
        raise refusals[0]


class WritableString(RefusalsRaiseNoAlarm, PvpropertyString):
    """A writable DBR_STRING (`QUEUE:REMOVE`)."""


class WritableEnum(RefusalsRaiseNoAlarm, PvpropertyEnum):
    """A writable DBR_ENUM (`QUEUE:ENABLE`)."""


class TriggerEnum(WritableEnum):
    """A write-1-to-act enum: it reads `Done` after its action, carried out or refused."""

    def readback_of(self, value: Any) -> Any:
        """`Done`: a refused action is over too."""
        return DONE


class TextChannel(RefusalsRaiseNoAlarm, PvpropertyChar):
    """A writable char waveform whose putter sees every write: a write that is no text
    (a number or DBR_STRING, as `caput` without `-S` sends, or bytes caproto cannot
    convert) reaches it as `NOT_TEXT` instead of failing inside caproto (1.3) with a
    conversion error the writer never learns the reason of.
    """

    async def write_from_dbr(self, data: Any, data_type: ChannelType, metadata: Any, *, flags: int = 0) -> None:
        """Write `data`; hand a write that is no char data to the putter as `NOT_TEXT`."""
        if native_type(data_type) is ChannelType.CHAR and self._converts(data):
            await super().write_from_dbr(data, data_type, metadata, flags=flags)
        else:
            await raising_refusals(self.write(NOT_TEXT.encode(RAW), flags=flags))

    def readback_of(self, value: Any) -> Any:
        """The text written; nothing for a write that was no text."""
        return "" if value == NOT_TEXT else value

    def _converts(self, data: Any) -> bool:
        """Whether caproto can take `data` as the bytes of this waveform."""
        try:
            convert_values(
                values=data, from_dtype=ChannelType.CHAR, to_dtype=self.data_type,
                string_encoding=self.string_encoding, direction=ConversionDirection.FROM_WIRE,
            )  # fmt: skip
        except (ValueError, TypeError):  # caproto's CaprotoConversionError is a ValueError
            return False
        return True


def text(name: str, doc: str, *, max_bytes: int = LINE_BYTES, read_only: bool = True) -> pvproperty:
    """A char waveform holding UTF-8 text (read with `caget -S`)."""
    return pvproperty(
        name=name,
        alarm_group=name,  # its own alarm: one PV's severity never touches another
        value=b"",
        dtype=ChannelType.CHAR if read_only else TextChannel,
        max_length=max_bytes,
        string_encoding=RAW,
        record="waveform",
        read_only=read_only,
        doc=doc,
        max_subscription_backlog=max(MIN_BACKLOG, min(MAX_SUBSCRIPTION_BACKLOG, BACKLOG_BYTES // max_bytes)),
    )


def string(name: str, doc: str, *, value: str = "", read_only: bool = True) -> pvproperty:
    """A DBR_STRING (at most 39 bytes and a NUL)."""
    return pvproperty(
        name=name,
        alarm_group=name,
        value=value,
        dtype=ChannelType.STRING if read_only else WritableString,
        record="stringin" if read_only else "stringout",
        read_only=read_only,
        doc=doc,
    )


def strings(name: str, doc: str, *, max_items: int = 256) -> pvproperty:
    """A read-only array of at most `max_items` DBR_STRINGs whose element count is its
    current length (see `StringArray`); `[""]` when it holds none.
    """
    return pvproperty(
        name=name,
        alarm_group=name,
        value=[""],
        dtype=StringArray,
        max_length=max_items,
        record="waveform",
        read_only=True,
        doc=doc,
    )


def long(name: str, doc: str) -> pvproperty:
    """A read-only DBR_LONG."""
    return pvproperty(
        name=name,
        alarm_group=name,
        value=0,
        dtype=ChannelType.LONG,
        record="longin",
        read_only=True,
        doc=doc,
    )


def double(name: str, doc: str, units: str, *, limits: tuple[float, float] | None = None) -> pvproperty:
    """A read-only DBR_DOUBLE with engineering units (`.EGU`), `.PREC` 3 and, if given,
    display and control `limits` (`.LOPR`/`.HOPR`).
    """
    low, high = limits or (0.0, 0.0)
    return pvproperty(
        name=name,
        alarm_group=name,
        value=0.0,
        units=units,
        precision=3,
        lower_disp_limit=low,
        upper_disp_limit=high,
        lower_ctrl_limit=low,
        upper_ctrl_limit=high,
        record="ai",
        read_only=True,
        doc=doc,
    )


class StringArray(PvpropertyStringRO):
    """A read-only DBR_STRING array whose element count is its current length, but at
    least 2: `caget` asks for the element count (libca pads what is missing with blanks),
    so it prints exactly the items; a count of 1 would make pyepics (so PyDM) and other
    clients take the array for a scalar string for as long as they stay connected.
    Monitors that ask for the current length (count 0: `camonitor`, pyepics) follow it as
    it grows and shrinks; a client that reads with a fixed count gets at most the count it
    connected with.
    """

    @property
    def max_length(self) -> int:
        """The current number of items, at least 2."""
        return max(len(self.value), 2)


async def fill_record_fields(pvdb: dict[str, ChannelData]) -> None:
    """Give each PV the fields of a real record: `.UDF` 0 once it holds a value (1 while
    its alarm says `UDF`), `.EGU` and `.PREC` of every double, `.FTVL` `CHAR` of every
    char waveform and `.NORD` (the entries it holds now) of every waveform.
    """
    for channel in pvdb.values():
        fields = getattr(channel, "field_inst", None)
        if fields is None:
            continue
        fields.undefined.strip_null_terminator = False  # 0 is a value here, not a string's end
        fields.undefined.getter = _undefined_of(channel)
        if isinstance(channel, ChannelDouble):
            await fields.engineering_units.write(channel.units)
            await fields.display_precision.write(channel.precision)
        if isinstance(channel, ChannelChar) and hasattr(fields, "field_type_of_value"):
            await fields.field_type_of_value.write("CHAR")
        if hasattr(fields, "number_elements_read"):
            fields.number_elements_read.getter = _entries_of(channel)


def _undefined_of(channel: ChannelData) -> Any:
    async def undefined(instance: ChannelData) -> bytes:
        return b"\1" if channel.alarm.status == AlarmStatus.UDF else b"\0"

    return undefined


def _entries_of(channel: ChannelData) -> Any:
    async def entries(instance: ChannelData) -> int:
        value = channel.value
        return 0 if isinstance(value, list) and value == [""] else len(value)  # [""]: none

    return entries


def enum(
    name: str,
    doc: str,
    states: type[StrEnum],
    value: StrEnum,
    *,
    read_only: bool = True,
    dtype: type[WritableEnum] = WritableEnum,
    **options: Any,
) -> pvproperty:
    """A DBR_ENUM whose strings are exactly the members of `states`; writable ones of data
    class `dtype` (`options` go to `pvproperty`, e.g. `put=`).
    """
    two_state = len(states) == 2
    record = ("bi" if two_state else "mbbi") if read_only else ("bo" if two_state else "mbbo")
    return pvproperty(
        name=name,
        alarm_group=name,
        value=str(value),
        enum_strings=[str(state) for state in states],
        dtype=ChannelType.ENUM if read_only else dtype,
        record=record,
        read_only=read_only,
        doc=doc,
        **options,
    )


def trigger(name: str, doc: str, act: str, **options: Any) -> pvproperty:
    """A `bo` (ZNAM `Done`, ONAM `act`) that acts when 1 is written and reads back 0."""
    states = StrEnum(f"{act}States", {"DONE": DONE, "ACT": act})  # type: ignore[misc]
    return enum(name, doc, states, states(DONE), read_only=False, dtype=TriggerEnum, **options)


def acts(value: str) -> bool:
    """Whether a write to a `trigger` PV asks for its action (1, not 0)."""
    return value != DONE


def encode(text_value: str, max_bytes: int) -> bytes:
    """UTF-8 bytes of `text_value`, shortened with an ellipsis to fit `max_bytes`."""
    data = text_value.encode("utf-8")
    if len(data) <= max_bytes:
        return data
    cut = data[: max_bytes - 3].decode("utf-8", errors="ignore")
    return (cut + "...").encode("utf-8")


def decode_write(value: str) -> str:
    """The text of a char-waveform write: cut at the first NUL, checked to be UTF-8."""
    if value == NOT_TEXT:
        raise RequestError("request: not text; write the JSON request as a string, e.g. caput -S <PV> '<JSON>'")
    data = value.encode(RAW).split(b"\0", 1)[0]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(f"request: not valid UTF-8 text (byte {error.start})") from None


async def write_text(channel: ChannelData, text_value: str, **alarm: Any) -> None:
    """Write `text_value` (and alarm keywords) to a char waveform made by `text`."""
    await show(channel, encode(text_value, channel.max_length), **alarm)


async def update(channel: ChannelData, value: object) -> None:
    """Write `value` unless the PV holds it already: no post, no work for an unchanged value."""
    if channel.value != value:
        await show(channel, value)


async def update_text(channel: ChannelData, text_value: str) -> None:
    """`write_text` unless the char waveform holds that text already."""
    data = encode(text_value, channel.max_length)
    if channel.value != data.decode(RAW):
        await show(channel, data)


async def update_list(channel: ChannelData, items: Sequence[Summarized]) -> None:
    """`update_text` with the JSON array of the summaries of `items`; the items are kept
    on the channel (`listed`), so that the other faces build their rows from the same
    objects instead of parsing the text again.
    """
    channel.listed = tuple(items)
    await update_text(channel, json_list(items))


def severity(alarm: bool) -> dict[str, Any]:
    """Alarm keywords for `show`: MAJOR/STATE when `alarm`, else none."""
    if alarm:
        return {"severity": AlarmSeverity.MAJOR_ALARM, "status": AlarmStatus.STATE}
    return {"severity": AlarmSeverity.NO_ALARM, "status": AlarmStatus.NO_ALARM}

