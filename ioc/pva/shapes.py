"""How each PV of the Channel Access face looks on pvAccess: its normative type, and its
value, alarm and time stamp as one p4p `Value`, all derived from the caproto channel.
"""

from __future__ import annotations

import functools
from typing import Any

from caproto import (
    AlarmStatus,
    ChannelChar,
    ChannelData,
    ChannelDouble,
    ChannelEnum,
    ChannelInteger,
    ChannelString,
)
from p4p import Type, Value
from p4p.nt import NTEnum, NTScalar, NTTable

from ..pvs.fields import StringArray
from ..pvs.posting import EPICS_EPOCH
from ..pvs.writers import value_text
from .tables import TABLES, Column, RowCache, rows

# pvAccess alarm status codes (alarm_t.status)
NO_STATUS, RECORD_STATUS, UNDEFINED_STATUS = 0, 3, 6


class Shape:
    """A PV's pvAccess form: `type` and `value(channel)` (alarm and time stamp included)."""

    type: Type

    def fields(self, channel: ChannelData) -> dict[str, Any]:
        """The fields particular to this form (`value`, `display`...)."""
        return {**self.changing(channel), "display": {"description": description(channel)}}

    def changing(self, channel: ChannelData) -> dict[str, Any]:
        """The fields that follow the channel's value (`value`)."""
        raise NotImplementedError

    def value(self, channel: ChannelData) -> Value:
        """The whole p4p value `channel` holds now."""
        return Value(self.type, {**self.fields(channel), **alarm_and_time(channel)})

    def update(self, channel: ChannelData, *, alarm: bool) -> Value:
        """Only what a change of the channel's value changes: the value, the time stamp
        and (`alarm`) the alarm; p4p keeps the other fields of a `SharedPV` as they were.
        """
        fields = {**self.changing(channel), "timeStamp": time_stamp_of(channel)}
        if alarm:
            fields["alarm"] = alarm_of(channel)
        return Value(self.type, fields)


class Number(Shape):
    """A DBR_DOUBLE or DBR_LONG: `NTScalar` with units, precision and limits."""

    def __init__(self, code: str) -> None:
        self.type = NTScalar.buildType(code, display=True, control=True, form=True)

    def changing(self, channel: ChannelData) -> dict[str, Any]:
        """The number."""
        return {"value": channel.value}

    def fields(self, channel: ChannelData) -> dict[str, Any]:
        """The value with `display` (units, precision, limits) and `control` limits."""
        low, high = channel.lower_disp_limit, channel.upper_disp_limit
        return {
            "value": channel.value,
            "display": {
                "limitLow": low, "limitHigh": high, "units": channel.units,
                "precision": getattr(channel, "precision", 0), "description": description(channel),
            },
            "control": {"limitLow": channel.lower_ctrl_limit, "limitHigh": channel.upper_ctrl_limit},
        }  # fmt: skip


class Text(Shape):
    """A DBR_STRING or a char waveform of UTF-8 text or JSON: an `NTScalar` string."""

    type = NTScalar.buildType("s", display=True)

    def changing(self, channel: ChannelData) -> dict[str, Any]:
        """The text (UTF-8 decoded)."""
        return {"value": value_text(channel, channel.value)}


class Texts(Shape):
    """A DBR_STRING array (`QUEUE:NAMES`, `PLANS:NAMES`): an `NTScalarArray` of strings."""

    type = NTScalar.buildType("as", display=True)

    def changing(self, channel: ChannelData) -> dict[str, Any]:
        """The entries (none for the CA face's `[""]`)."""
        return {"value": [] if channel.value == [""] else list(channel.value)}


class Choice(Shape):
    """A DBR_ENUM: an `NTEnum` with the same choices."""

    type = NTEnum.buildType(display=True)

    def changing(self, channel: ChannelData) -> dict[str, Any]:
        """The state's index among the choices, and the choices."""
        choices = [str(state) for state in channel.enum_strings]
        index = choices.index(str(channel.value)) if str(channel.value) in choices else 0
        return {"value": {"index": index, "choices": choices}}


class Table(Shape):
    """A JSON array of objects: an `NTTable`, one row per object."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        self.columns = columns
        self.type = NTTable([(column.label, column.code) for column in columns]).type
        self._cache = RowCache(columns)

    def fields(self, channel: ChannelData) -> dict[str, Any]:
        """The rows, with the column labels and the description."""
        labels = [column.label for column in self.columns]
        return {**self.changing(channel), "labels": labels, "descriptor": description(channel)}

    def changing(self, channel: ChannelData) -> dict[str, Any]:
        """Every column, empty ones too (p4p's `NTTable.wrap` leaves those out, and a post
        without them would keep the previous rows).
        """
        listed = getattr(channel, "listed", None)  # the items the CA face wrote, if it kept them
        if listed is None:
            table = rows(self.columns, value_text(channel, channel.value))
        else:
            table = self._cache.rows(listed)
        return {"value": {column.label: [row[column.label] for row in table] for column in self.columns}}


def shape_of(name: str, channel: ChannelData) -> Shape:
    """The pvAccess form of `channel`, whose name without the prefix is `name`."""
    if name in TABLES:
        return Table(TABLES[name])
    if isinstance(channel, ChannelEnum):
        return Choice()
    if isinstance(channel, ChannelDouble):
        return Number("d")
    if isinstance(channel, ChannelInteger):
        return Number("i")
    if isinstance(channel, StringArray):
        return Texts()
    if isinstance(channel, ChannelChar | ChannelString):
        return Text()
    raise TypeError(f"{name}: no pvAccess form for {type(channel).__name__}")


def description(channel: ChannelData) -> str:
    """The channel's `.DESC` (caproto links it to the channel's `__doc__`, the PV's `doc`)."""
    return str(channel.__doc__ or "")


def alarm_and_time(channel: ChannelData) -> dict[str, Any]:
    """The `alarm` and `timeStamp` of `channel` as pvAccess structures."""
    return {"alarm": alarm_of(channel), "timeStamp": time_stamp_of(channel)}


def alarm_of(channel: ChannelData) -> dict[str, Any]:
    """The channel's alarm as a pvAccess `alarm_t`; the CA status's name goes into
    `alarm.message` (as QSRV does).
    """
    return _alarm(int(channel.alarm.severity), int(channel.alarm.status))


@functools.lru_cache(maxsize=256)
def _alarm(severity: int, status: int) -> dict[str, Any]:
    if status == AlarmStatus.NO_ALARM:
        return {"severity": severity, "status": NO_STATUS, "message": ""}
    code = UNDEFINED_STATUS if status == AlarmStatus.UDF else RECORD_STATUS
    return {"severity": severity, "status": code, "message": AlarmStatus(status).name}


def time_stamp_of(channel: ChannelData) -> dict[str, int]:
    """The channel's time stamp as a pvAccess `time_t` (POSIX seconds, nanoseconds); read
    in place (caproto's `epics_timestamp` makes a copy each time, 2.6 µs).
    """
    stamp = channel._data["timestamp"]
    return {"secondsPastEpoch": stamp.secondsSinceEpoch + EPICS_EPOCH, "nanoseconds": stamp.nanoSeconds}
