"""The IOC's own writes (`ioc.pvs.posting.show`): value, time stamp and alarm in one step,
one update to the PV's monitors, the alarm's other channels only when it changed."""

import asyncio
import time
from typing import Any

from caproto import AlarmSeverity, AlarmStatus, ChannelType
from caproto.server import PVGroup, pvproperty

from ioc.pvs.fields import enum, text
from ioc.pvs.posting import show
from ioc.pvs.submit import SubmitStatus


class Group(PVGroup):
    number = pvproperty(name="NUMBER", value=0.0, record="ai", read_only=True)
    line = text("LINE", "a line")
    state = enum("STATE", "a state", SubmitStatus, SubmitStatus.NONE)


def published(channel: Any) -> list[int]:
    """Count the channel's publishes (its monitor updates) from now on."""
    calls: list[int] = []
    publish = channel.publish

    async def counting(flags: int, *args: Any, **kwargs: Any) -> None:
        calls.append(flags)
        await publish(flags, *args, **kwargs)

    channel.publish = counting
    return calls


def test_value_and_time_stamp_set_with_one_update() -> None:
    async def main() -> None:
        group = Group(prefix="T:")
        calls = published(group.number)
        before = time.time()
        await show(group.number, 2.5)
        assert group.number.value == 2.5
        assert before - 1e-3 <= group.number.timestamp <= time.time() + 1e-3
        assert len(calls) == 1
        _, data = await group.number.read(ChannelType.TIME_DOUBLE)
        assert list(data) == [2.5]

    asyncio.run(main())


def test_text_and_enum_stored_as_a_write_would() -> None:
    async def main() -> None:
        group = Group(prefix="T:")
        await show(group.line, "héllo".encode())
        assert group.line.value == "héllo".encode().decode("latin-1")
        await show(group.state, SubmitStatus.ACCEPTED)
        assert group.state.value == "Accepted"
        assert group.state.field_inst.raw_value.value == 1  # RVAL follows, as a write's does

    asyncio.run(main())


def test_alarm_published_to_its_fields_only_when_it_changes() -> None:
    async def main() -> None:
        group = Group(prefix="T:")
        severity_field = group.line.field_inst.current_alarm_severity
        field_calls = published(severity_field)
        major = {"severity": AlarmSeverity.MAJOR_ALARM, "status": AlarmStatus.STATE}
        await show(group.line, b"bad", **major)
        assert group.line.alarm.severity == AlarmSeverity.MAJOR_ALARM
        assert len(field_calls) == 1
        await show(group.line, b"still bad", **major)
        assert len(field_calls) == 1  # unchanged alarm: no update of .SEVR
        await show(group.line, b"good", severity=AlarmSeverity.NO_ALARM, status=AlarmStatus.NO_ALARM)
        assert group.line.alarm.status == AlarmStatus.NO_ALARM
        assert len(field_calls) == 2

    asyncio.run(main())
