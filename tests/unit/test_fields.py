"""Tests of the text helpers of the char-waveform PVs (no server is started)."""

import asyncio

import numpy as np
import pytest
from caproto import AlarmSeverity, AlarmStatus, ChannelType
from caproto.server import PVGroup

from ioc.pvs.fields import (
    DONE,
    NOT_TEXT,
    RAW,
    Refused,
    decode_write,
    encode,
    fill_record_fields,
    string,
    strings,
    text,
    trigger,
)


def raw(data: bytes) -> str:
    """What caproto hands a write of `data` to a char waveform (decoded as latin-1)."""
    return data.decode(RAW)


# --- decode_write -----------------------------------------------------------------------------


def test_plain_ascii() -> None:
    assert decode_write('{"name":"count"}') == '{"name":"count"}'


def test_cut_at_first_nul() -> None:
    assert decode_write('{"a":1}\0garbage') == '{"a":1}'
    assert decode_write("a\0b\0c") == "a"
    assert decode_write("\0anything") == ""
    assert decode_write("") == ""


def test_garbage_after_nul_need_not_be_utf8() -> None:
    assert decode_write(raw(b'{"a":1}\0\xff\xfe')) == '{"a":1}'


def test_multibyte_utf8_is_decoded() -> None:
    assert decode_write(raw("é".encode())) == "é"
    text = '{"user":"Zoë","note":"→ 5 µm 🙂"}'
    assert decode_write(raw(text.encode())) == text


@pytest.mark.parametrize(
    ("data", "position"),
    [(b"\xff\xfe", 0), (b"ab\xffcd", 2), (b"ok \xc3", 3), (b"\xc3\xa9\xe2\x82", 2)],
)
def test_invalid_utf8_names_the_byte(data: bytes, position: int) -> None:
    with pytest.raises(ValueError) as info:
        decode_write(raw(data))
    assert str(info.value) == f"request: not valid UTF-8 text (byte {position})"


def test_latin1_text_is_not_taken_for_utf8() -> None:
    with pytest.raises(ValueError, match="not valid UTF-8"):
        decode_write(raw("café".encode("latin-1")))


# --- encode -----------------------------------------------------------------------------------


def test_short_text_is_unchanged() -> None:
    assert encode("hello", 5) == b"hello"
    assert encode("é", 2) == "é".encode()
    assert encode("", 0) == b""


def test_long_text_is_cut_with_an_ellipsis() -> None:
    assert encode("hello world", 8) == b"hello..."
    assert encode("x" * 5000, 4096) == b"x" * 4093 + b"..."


def test_cut_never_splits_a_character() -> None:
    text = "aé"  # b"a\xc3\xa9": a cut at 2 bytes would split the é
    assert encode(text * 3, 5) == b"a..."
    assert encode("€€€", 8) == "€...".encode()  # € is 3 bytes


@pytest.mark.parametrize("text", ["x" * 50, "é" * 30, "€" * 20, "🙂" * 15, "aé€🙂" * 8])
def test_result_fits_and_is_valid_utf8(text: str) -> None:
    size = len(text.encode())
    for max_bytes in range(3, size + 2):
        data = encode(text, max_bytes)
        assert len(data) <= max_bytes
        decoded = data.decode("utf-8")  # never a split character
        if max_bytes >= size:
            assert decoded == text
        else:
            assert decoded.endswith("...")
            assert text.startswith(decoded[:-3])
            # as long as possible: one more character would not fit
            next_char = text[len(decoded) - 3]
            assert len(decoded.encode()) + len(next_char.encode()) > max_bytes


def test_roundtrip_through_decode_write() -> None:
    text = '{"note":"Zoë 🙂"}'
    assert decode_write(raw(encode(text, 100))) == text


# --- refused writes: no alarm, the value written as readback, an error for the put --------------


class Writables(PVGroup):
    """One writable PV of each data class, whose putters refuse what starts with 'no'."""

    request = text("REQUEST", "A request", read_only=False)
    target = string("TARGET", "A task id", read_only=False)
    act = trigger("ACT", "Write 1 to act", "Act")

    @request.putter
    async def request(self, instance, value: str) -> str:
        return refuse_no(value)

    @target.putter
    async def target(self, instance, value: str) -> str:
        return refuse_no(value)

    @act.putter
    async def act(self, instance, value: str) -> str:
        raise Refused("nothing to act on")


def refuse_no(value: str) -> str:
    if value.startswith("no"):
        raise Refused(f"refused {value!r}")
    return value


def as_char(value: str) -> np.ndarray:
    return np.frombuffer(value.encode() + b"\0", dtype=np.uint8)


def as_string(value: str) -> list[bytes]:
    return [value.encode()]


@pytest.mark.parametrize(
    ("name", "data_type", "wire", "readback"),
    [
        ("REQUEST", ChannelType.CHAR, as_char, lambda v: v.split("\0")[0]),
        ("TARGET", ChannelType.STRING, as_string, str),
    ],
)
def test_a_refused_client_write_raises_without_an_alarm_and_reads_back(name, data_type, wire, readback) -> None:
    async def scenario() -> None:
        pv = Writables(prefix="").pvdb[name]
        await pv.write_from_dbr(wire("yes"), data_type, None)
        with pytest.raises(Refused, match="refused 'no, thanks'"):
            await pv.write_from_dbr(wire("no, thanks"), data_type, None)
        assert readback(pv.value) == "no, thanks"
        assert (pv.alarm.severity, pv.alarm.status) == (AlarmSeverity.NO_ALARM, AlarmStatus.NO_ALARM)
        await pv.write_from_dbr(wire("yes again"), data_type, None)
        assert readback(pv.value) == "yes again"

    asyncio.run(scenario())


def test_a_refused_trigger_reads_done_without_an_alarm() -> None:
    async def scenario() -> None:
        pv = Writables(prefix="").pvdb["ACT"]
        with pytest.raises(Refused, match="nothing to act on"):
            await pv.write_from_dbr([1], ChannelType.ENUM, None)
        assert pv.value == DONE
        assert pv.alarm.severity == AlarmSeverity.NO_ALARM

    asyncio.run(scenario())


def test_a_write_that_is_no_text_is_refused_and_reads_back_empty() -> None:
    async def scenario() -> None:
        pv = Writables(prefix="").pvdb["REQUEST"]
        seen: list[str] = []

        async def putter(group, instance, value: str) -> str:
            seen.append(value)
            raise Refused("not text")

        pv.putter = putter.__get__(pv.group)
        with pytest.raises(Refused):
            await pv.write_from_dbr([b"12"], ChannelType.STRING, None)
        assert seen == [NOT_TEXT] and pv.value == ""
        assert pv.alarm.severity == AlarmSeverity.NO_ALARM

    asyncio.run(scenario())


def test_a_refused_write_of_the_ioc_itself_raises_as_before() -> None:
    async def scenario() -> None:
        pv = Writables(prefix="").pvdb["TARGET"]
        with pytest.raises(Refused):
            await pv.write("no")
        assert pv.value == ""

    asyncio.run(scenario())


def test_udf_follows_the_alarm_status_and_nord_counts_the_entries() -> None:
    """A record reads UDF 1 while it is undefined (status UDF, as the catalog PVs before the
    first worker) and 0 once it holds a value; NORD is the number of entries it holds."""

    class Fields(PVGroup):
        names = strings("NAMES", "Names")
        line = text("LINE", "A line")

    async def scenario() -> None:
        group = Fields(prefix="")
        await fill_record_fields(group.pvdb)
        names = group.pvdb["NAMES"]

        async def field(name: str) -> object:
            """The field as a client reads it (its getter runs)."""
            channel = names.get_field(name)
            await channel.read(channel.data_type)
            return channel.value

        assert await field("UDF") == b"\0" and await field("NORD") == 0  # [""]: no entry
        await names.write(["a", "b", "c"], severity=AlarmSeverity.INVALID_ALARM, status=AlarmStatus.UDF)
        assert await field("UDF") == b"\1" and await field("NORD") == 3
        await names.write(["a"], severity=AlarmSeverity.NO_ALARM, status=AlarmStatus.NO_ALARM)
        assert await field("UDF") == b"\0" and await field("NORD") == 1
        assert group.pvdb["LINE"].field_inst.field_type_of_value.value == "CHAR"

    asyncio.run(scenario())
