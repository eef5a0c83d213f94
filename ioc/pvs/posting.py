"""The IOC's own writes to its PVs: value, time stamp and alarm set in one step, then one
update to the PV's monitors (on every face: pvAccess hooks `publish`).

caproto's `ChannelData.write` is made for a client's write: it runs the putter and the
limit checks, converts the time stamp through `datetime`, and publishes the alarm to every
field of the record even when it did not change. None of that applies to a value the IOC
itself shows, and it was most of the CPU a task cost the IOC.
"""

from __future__ import annotations

import time
from typing import Any

from caproto import AlarmSeverity, AlarmStatus, ChannelData, ChannelEnum, SubscriptionType
from caproto._dbr import TimeStamp

EPICS_EPOCH = 631_152_000  # 1990-01-01 UTC in UNIX seconds
VALUE_EVENT = SubscriptionType.DBE_VALUE | SubscriptionType.DBE_LOG


def epics_now() -> TimeStamp:
    """The current time as an EPICS time stamp."""
    now = time.time_ns()
    seconds, nanoseconds = divmod(now, 1_000_000_000)
    return TimeStamp(secondsSinceEpoch=seconds - EPICS_EPOCH, nanoSeconds=nanoseconds)


async def show(
    channel: ChannelData,
    value: Any,
    *,
    severity: AlarmSeverity | None = None,
    status: AlarmStatus | None = None,
) -> None:
    """Make `channel` hold `value` now (and the alarm `severity`/`status`, if given), and
    send one update to its monitors. No putter runs: this is the IOC's own value.
    """
    if channel._fill_at_next_write:  # a sync filter waits for a snapshot: caproto keeps those
        await channel.write(value, verify_value=False, severity=severity, status=status)
        return
    value = channel.preprocess_value(value)
    await _follow(channel, value)
    channel._data["value"] = value
    channel._data["timestamp"] = epics_now()
    alarm = channel.alarm
    changed = (status is not None and status != alarm.status) or (
        severity is not None and severity != alarm.severity
    )
    if changed:
        await alarm.write(status=status, severity=severity, publish=False)
    await channel.publish(VALUE_EVENT)
    if changed:  # `.SEVR`, `.STAT` and the other channels that share this alarm
        await alarm.publish(SubscriptionType.DBE_ALARM | VALUE_EVENT, except_for=(channel,))


async def _follow(channel: ChannelData, value: Any) -> None:
    """Update the record fields that follow the value: the raw value (`.RVAL`) of a
    `bi`/`mbbi` (caproto's `update_fields` does it with a full write of the field).
    """
    fields = getattr(channel, "field_inst", None)
    raw_value = getattr(fields, "raw_value", None)
    if isinstance(channel, ChannelEnum) and raw_value is not None:
        raw = channel.get_raw_value(value)
        if raw is not None and raw != raw_value.value:
            await show(raw_value, raw)
