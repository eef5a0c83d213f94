"""Tests of the wire models: request parsing, tasks, outcomes and JSON helpers."""

import json
import pickle
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from ioc.errors import RequestError
from ioc.identity import Writer
from ioc.models import (
    CORRELATION_ID_MAX,
    MAX_NESTING,
    Task,
    TaskOutcome,
    TaskRequest,
    TaskResult,
    describe_exception,
    iso_time,
    parse_request,
    to_json,
)


def at_stack_depth(frames: int, call: Callable[[], Any]) -> Any:
    """`call()` made `frames` Python frames below this one."""
    return call() if frames <= 0 else at_stack_depth(frames - 1, call)


def refusal(text: str) -> str:
    with pytest.raises(RequestError) as info:
        parse_request(text)
    return str(info.value)


# --- parse_request ----------------------------------------------------------------------------


def test_parses_a_full_request() -> None:
    text = '{"name":"count","params":{"num":2},"correlation_id":"c-1","metadata":{"operator":"ann"}}'
    request = parse_request(text)
    assert request == TaskRequest(
        name="count", params={"num": 2}, correlation_id="c-1", metadata={"operator": "ann"}
    )


def test_optional_fields_default_to_empty() -> None:
    request = parse_request('{"name": "count"}')
    assert (request.params, request.correlation_id, request.metadata) == ({}, None, {})


@pytest.mark.parametrize("text", ["{", "{'name': 'count'}", '{"name": "count"} x'])
def test_bad_json(text: str) -> None:
    assert refusal(text).startswith("request: not valid JSON")


@pytest.mark.parametrize("text", ["", "  \n"])
def test_empty_request_says_what_to_write(text: str) -> None:
    assert refusal(text).startswith('request: empty; write a JSON object such as {"name": ')


@pytest.mark.parametrize(
    ("text", "kind"), [("[]", "list"), ('"count"', "str"), ("3", "int"), ("null", "NoneType")]
)
def test_non_object(text: str, kind: str) -> None:
    assert refusal(text) == f"request: expected a JSON object, got {kind}"


def test_missing_name() -> None:
    assert refusal('{"params": {}}') == "name: Field required"


def test_unknown_top_level_key() -> None:
    message = refusal('{"name": "count", "md": {}}')
    assert message.startswith("md: ")
    assert "Extra inputs are not permitted" in message


def test_correlation_id_fits_a_dbr_string() -> None:
    """A DBR_STRING holds 39 bytes and a NUL: 39 ASCII characters fit, 40 do not, nor do
    20 two-byte characters of UTF-8."""
    longest = "x" * 39
    assert CORRELATION_ID_MAX == 39
    assert parse_request(json.dumps({"name": "n", "correlation_id": longest})).correlation_id == longest
    too_long = refusal(json.dumps({"name": "n", "correlation_id": longest + "x"}))
    assert too_long == "correlation_id: 40 characters (bytes of UTF-8); a DBR_STRING holds at most 39"
    wide = refusal(json.dumps({"name": "n", "correlation_id": "é" * 20}, ensure_ascii=False))
    assert wide.startswith("correlation_id: 40 characters (bytes of UTF-8)")
    empty = refusal('{"name": "n", "correlation_id": ""}')
    assert empty.startswith("correlation_id: String should have at least 1 character")


def nested(levels: int, field: str = "metadata") -> str:
    """A request whose `field` makes it `levels` objects deep (the request itself is one)."""
    inner = levels - 2
    return f'{{"name": "count", "{field}": ' + '{"a": ' * inner + "{}" + "}" * inner + "}"


def test_a_request_may_nest_32_levels() -> None:
    assert MAX_NESTING == 32
    request = parse_request(nested(MAX_NESTING))
    depth, value = 1, request.metadata
    while value:
        depth, value = depth + 1, value["a"]
    assert depth + 1 == MAX_NESTING


@pytest.mark.parametrize("levels", [MAX_NESTING + 1, 500, 1000, 30_000])
def test_deeper_nesting_is_refused_naming_the_field_and_the_rule(levels: int) -> None:
    assert refusal(nested(levels)) == (
        "metadata.a: nested too deep; a request may hold objects and arrays at most 32 levels deep"
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"name": "list_scan", "params": {"points": ' + "[" * 40 + "]" * 40 + "}}", "params.points"),
        ("[" * 33 + "]" * 33, "request"),
        ('{"a\\"b": ' + "[" * 40 + "]" * 40 + "}", 'a"b'),
    ],
)
def test_nesting_names_where_it_is_too_deep(text: str, field: str) -> None:
    assert refusal(text).startswith(f"{field}: nested too deep")


def test_brackets_inside_strings_do_not_nest() -> None:
    text = json.dumps({"name": "n", "metadata": {"note": "[{" * 100, "esc": '\\"[[[' * 50}})
    assert parse_request(text).metadata["note"] == "[{" * 100


def test_a_request_nested_to_the_limit_is_kept_and_sent_deep_in_the_stack(tmp_path) -> None:
    """Every step that walks a request recursively (parsing and its validators, the journal's
    JSON, the pipe's pickle) takes one nested to the limit even when called from deep in the
    stack, as a CA putter is."""
    from ioc.messages import RunTask
    from ioc.service.store import StateStore

    def steps() -> Task:
        task = Task.create(parse_request(nested(MAX_NESTING)), {"detectors": [[["det1"]]]})
        store = StateStore.in_directory(tmp_path)
        store.append(task)
        assert store.recover().pending == [task]
        assert pickle.loads(pickle.dumps(RunTask(task))).task == task
        return task

    assert at_stack_depth(sys.getrecursionlimit() - 300, steps).metadata


@pytest.mark.parametrize("params", ["[1, 2]", '"x"', "1"])
def test_params_must_be_an_object(params: str) -> None:
    message = refusal(f'{{"name": "count", "params": {params}}}')
    assert message.startswith("params: Input should be a valid dictionary")


def test_several_errors_are_joined() -> None:
    message = refusal('{"params": 1}')
    assert "name: Field required" in message and "; params: " in message


# --- Task -------------------------------------------------------------------------------------


def test_task_create_with_default_correlation_id() -> None:
    request = parse_request('{"name": "count", "params": {"num": "2"}}')
    task = Task.create(request, {"num": 2})
    assert str(uuid.UUID(task.task_id)) == task.task_id
    assert task.correlation_id == task.task_id
    assert (task.name, task.params, task.metadata) == ("count", {"num": 2}, {})
    assert Task.create(request, {}).task_id != task.task_id


def test_task_create_keeps_given_correlation_id() -> None:
    task = Task.create(parse_request('{"name": "count", "correlation_id": "mine"}'), {})
    assert task.correlation_id == "mine"
    assert task.task_id != "mine"


def test_run_metadata_is_the_request_metadata_plus_the_ids_and_the_submitter() -> None:
    text = '{"name":"n","correlation_id":"c","metadata":{"a":1}}'
    task = Task.create(parse_request(text), {}, writer=Writer("alice", "ws3"), user_group="staff")
    assert task.run_metadata() == {
        "a": 1, "task_id": task.task_id, "correlation_id": "c",
        "user": "alice", "user_host": "ws3", "user_group": "staff",
    }


@pytest.mark.parametrize("key", ["user", "user_host", "user_group"])
def test_request_metadata_cannot_name_the_submitter(key: str) -> None:
    with pytest.raises(RequestError, match=f"metadata: reserved key.* {key}: set by the worker"):
        parse_request(f'{{"name": "count", "metadata": {{"{key}": "mallory"}}}}')


def test_task_summary_names_the_submitter() -> None:
    request = parse_request('{"name": "count", "metadata": {"a": 1}}')
    task = Task.create(request, {"num": 1}, writer=Writer("bob", "ws4"), devices={"params.m": "m1"})
    assert task.summary() == {
        "task_id": task.task_id,
        "name": "count",
        "params": {"num": 1},
        "correlation_id": task.task_id,
        "submitted": iso_time(task.submitted),
        "user": "bob",
        "host": "ws4",
        "user_group": None,
    }


def test_iso_time() -> None:
    assert iso_time(0.0) == "1970-01-01T00:00:00.000+00:00"
    assert iso_time(1.2345) == "1970-01-01T00:00:01.234+00:00"


# --- TaskOutcome and helpers ------------------------------------------------------------------


def make_outcome(error: str | None, result: TaskResult = TaskResult.FAILED) -> TaskOutcome:
    task = Task.create(parse_request('{"name": "fail"}'), {})
    return TaskOutcome(task, result, started=10.0, finished=12.5, run_uids=("u1",), error=error)


def test_outcome_error_message_names_the_task() -> None:
    outcome = make_outcome(describe_exception(ValueError("boom")))
    assert outcome.error_message == f"{outcome.task.task_id}: ValueError: boom"
    assert make_outcome(None, TaskResult.SUCCESS).error_message is None


def test_outcome_summary() -> None:
    outcome = make_outcome("ValueError: boom")
    summary = outcome.summary()
    assert summary == {
        **outcome.task.summary(),
        "result": "Failed",
        "error": "ValueError: boom",
        "run_uids": ["u1"],
        "started": iso_time(10.0),
        "finished": iso_time(12.5),
        "ended_by": None,
    }
    assert outcome.duration == 2.5
    json.dumps(summary)  # JSON-able as is


def test_describe_exception() -> None:
    assert describe_exception(ValueError("boom")) == "ValueError: boom"
    assert describe_exception(KeyError("k")) == "KeyError: 'k'"
    assert describe_exception(RuntimeError()) == "RuntimeError"
    assert describe_exception(TimeoutError("")) == "TimeoutError"


def test_to_json_is_compact() -> None:
    assert to_json({"a": [1, 2], "b": None}) == '{"a":[1,2],"b":null}'
    assert to_json({"u": uuid.UUID(int=0)}) == '{"u":"00000000-0000-0000-0000-000000000000"}'
    assert to_json("é") == '"\\u00e9"'


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({"uid": "abc"}, "metadata: reserved key(s) uid: set by the worker"),
        ({"time": 1, "task_id": "x"}, "metadata: reserved key(s) task_id, time: set by the worker"),
        ({"sample": 1}, "metadata: sample: 1 is not valid under any of the given schemas"),
        ({"scan_id": "x"}, "metadata: scan_id: 'x' is not of type 'integer'"),
    ],
)
def test_metadata_that_cannot_go_into_a_start_document_is_refused(metadata, expected):
    with pytest.raises(RequestError) as caught:
        parse_request(json.dumps({"name": "count", "metadata": metadata}))
    assert str(caught.value) == expected


def test_a_writer_that_claims_no_name_is_anonymous() -> None:
    assert Writer.claimed(None, "") == Writer("anonymous", "anonymous")
    assert str(Writer.claimed("alice", "ws3")) == "alice@ws3"
