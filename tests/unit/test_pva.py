"""The pvAccess face's pieces without a server: table rows from the JSON the CA face shows,
each PV's normative type, and a pvAccess put as the CA write it stands for."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from caproto import ChannelType
from caproto.server import PVGroup
from p4p import Value
from p4p.nt import NTEnum, NTScalar

from ioc.models import Task, TaskOutcome, TaskResult, parse_request
from ioc.pva.puts import as_ca_write, peer_host
from ioc.pva.shapes import Table, shape_of
from ioc.pva.tables import TABLES, rows
from ioc.pvs.fields import JSON_BYTES, double, enum, string, strings, text, update_list
from ioc.pvs.queue import Gate


class Sample(PVGroup):
    progress = double("PROGRESS", "Progress", "%", limits=(0.0, 100.0))
    gate = enum("GATE", "Gate", Gate, Gate.RUN, read_only=False)
    name = string("NAME", "A name", read_only=False)
    names = strings("NAMES", "Names")
    request = text("REQUEST", "A request", read_only=False)
    history = text("HISTORY", "History", max_bytes=JSON_BYTES)


@pytest.fixture
def pvdb():
    return Sample(prefix="P:").pvdb


def test_history_rows_carry_every_column_with_duration_and_json_uids():
    item = {"task_id": "t1", "name": "count", "result": "Success", "error": None,
            "correlation_id": "c1", "started": "2026-01-01T00:00:00.000+00:00",
            "finished": "2026-01-01T00:00:01.500+00:00", "run_uids": ["u1"], "user": "alice"}
    (row,) = rows(TABLES["HISTORY"], json.dumps([item]))
    assert list(row) == ["task_id", "name", "result", "error", "correlation_id", "started",
                         "finished", "duration", "run_uids", "user"]
    assert row["duration"] == 1.5 and row["run_uids"] == '["u1"]' and row["error"] == ""


def test_devices_and_suspenders_have_booleans_and_no_json_means_no_rows():
    (device,) = rows(TABLES["DEVICES"], '[{"name":"m1","class":"X","protocols":["Readable","Movable"]}]')
    assert device == {"name": "m1", "class": "X", "protocols": "Readable, Movable", "available": True}
    (suspender,) = rows(TABLES["SUSPENDERS"], '[{"name":"beam","signal":"s","kind":"floor","tripped":true}]')
    assert suspender["tripped"] is True
    assert rows(TABLES["QUEUE"], "") == [] and rows(TABLES["QUEUE"], "[1, 2") == []


def test_each_pv_has_its_normative_type(pvdb):
    types = {name: shape_of(name.removeprefix("P:"), channel).type.getID() for name, channel in pvdb.items()}
    assert types == {"P:PROGRESS": "epics:nt/NTScalar:1.0", "P:GATE": "epics:nt/NTEnum:1.0",
                     "P:NAME": "epics:nt/NTScalar:1.0", "P:NAMES": "epics:nt/NTScalarArray:1.0",
                     "P:REQUEST": "epics:nt/NTScalar:1.0", "P:HISTORY": "epics:nt/NTTable:1.0"}


def test_a_scalar_carries_units_precision_limits_and_description(pvdb):
    value = shape_of("PROGRESS", pvdb["P:PROGRESS"]).value(pvdb["P:PROGRESS"])
    assert (value.display.units, value.display.precision) == ("%", 3)
    assert (value.display.limitLow, value.display.limitHigh) == (0.0, 100.0)
    assert (value.control.limitLow, value.control.limitHigh) == (0.0, 100.0)
    assert value.display.description == "Progress"


def test_an_empty_table_still_sets_every_column(pvdb):
    channel = pvdb["P:HISTORY"]
    value = shape_of("HISTORY", channel).value(channel)
    assert isinstance(shape_of("HISTORY", channel), Table)
    assert list(value.labels) == [column.label for column in TABLES["HISTORY"]]
    assert value.changed("value.task_id") and len(value.value.task_id) == 0


def test_a_put_becomes_the_ca_write_a_client_would_send(pvdb):
    enum_put = Value(NTEnum.buildType(), {"value": {"index": 0, "choices": ["Hold", "Run"]}})
    assert as_ca_write(pvdb["P:GATE"], enum_put) == ([b"Hold"], ChannelType.STRING)
    text_put = NTScalar("s").wrap('{"name":"ü"}')
    data, data_type = as_ca_write(pvdb["P:REQUEST"], text_put)
    assert data_type is ChannelType.CHAR and bytes(data) == '{"name":"ü"}'.encode()
    assert as_ca_write(pvdb["P:NAME"], NTScalar("s").wrap("abc")) == ([b"abc"], ChannelType.STRING)
    with pytest.raises(ValueError, match="choice 5 is not one of 0..1"):
        as_ca_write(pvdb["P:GATE"], Value(NTEnum.buildType(), {"value": {"index": 5}}))


@pytest.mark.parametrize(("peer", "host"), [("127.0.0.1:5075", "127.0.0.1"), ("[::1]:40000", "::1"),
                                            ("ws3", "ws3")])
def test_the_writer_host_is_the_peer_address(peer, host):
    assert peer_host(peer) == host


def test_history_rows_from_the_listed_outcomes_are_those_of_the_json(pvdb):
    request = parse_request('{"name":"count","params":{"detectors":["det1"]}}')
    outcomes = [TaskOutcome(Task.create(request, {"detectors": ["det1"]}), TaskResult.SUCCESS,
                            time.time(), time.time() + 1.5, run_uids=(f"u{i}",)) for i in range(3)]
    channel = pvdb["P:HISTORY"]
    table = shape_of("HISTORY", channel)
    asyncio.run(update_list(channel, outcomes[:2]))
    first = table.changing(channel)["value"]
    asyncio.run(update_list(channel, [outcomes[2], *outcomes[:2]]))
    second = table.changing(channel)["value"]
    assert second["task_id"] == [o.task.task_id for o in (outcomes[2], *outcomes[:2])]
    assert second["run_uids"] == ['["u2"]', '["u0"]', '["u1"]'] and second["duration"][0] == 1.5
    # the same as the rows parsed from the CA face's JSON
    assert second == {label: [row[label] for row in rows(TABLES["HISTORY"], channel.value)]
                      for label in second}
    assert first["task_id"] == second["task_id"][1:]
