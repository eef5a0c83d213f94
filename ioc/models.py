"""Wire models: what a request, a task, an outcome and the worker's states look like."""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import cached_property
from typing import Any

import event_model
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .errors import RequestError, format_validation_error
from .identity import ANONYMOUS, NOBODY, Writer

CORRELATION_ID_MAX = 39  # bytes of UTF-8: a DBR_STRING holds 39 and its NUL
MAX_NESTING = 32  # levels of objects and arrays in a request, the request itself being the first
# Start document keys set by the RunEngine or the worker: a request's metadata may not set them.
RESERVED_METADATA = ("uid", "time", "task_id", "correlation_id", "user", "user_host", "user_group")
_START_SCHEMA = event_model.schema_validators[event_model.DocumentNames.start]


class WorkerState(StrEnum):
    """`STATE`: bluesky's RunEngine states plus the worker's panic latch."""

    IDLE = "IDLE"
    RUNNING = "RUNNING"
    PAUSING = "PAUSING"
    PAUSED = "PAUSED"
    HALTING = "HALTING"
    STOPPING = "STOPPING"
    ABORTING = "ABORTING"
    SUSPENDING = "SUSPENDING"
    PANICKED = "PANICKED"
    UNKNOWN = "UNKNOWN"


class Command(StrEnum):
    """The control PVs, each named as its PV."""

    PAUSE = "PAUSE"
    PAUSE_DEFER = "PAUSE:DEFER"
    RESUME = "RESUME"
    STOP = "STOP"
    ABORT = "ABORT"
    HALT = "HALT"
    PANIC = "PANIC"
    ALL_IS_WELL = "ALL_IS_WELL"
    RELOAD = "RELOAD"


class TaskResult(StrEnum):
    """`LAST:RESULT`: how a task ended."""

    NONE = "None"
    SUCCESS = "Success"
    FAILED = "Failed"
    ABORTED = "Aborted"
    STOPPED = "Stopped"
    HALTED = "Halted"


class BusStatus(StrEnum):
    """`BUS:STATUS`: the message bus's connection to its broker."""

    OFF = "Off"  # no --stomp
    CONNECTED = "Connected"
    DISCONNECTED = "Disconnected"


FAILURES = frozenset({TaskResult.FAILED, TaskResult.ABORTED, TaskResult.HALTED})
"""Results that raise `ERROR:ACTIVE` and hold the queue (unless `--continue-on-error`)."""


class TaskRequest(BaseModel):
    """The JSON written to `SUBMIT` or `RUN`."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    correlation_id: str | None = Field(default=None, min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("correlation_id")
    @classmethod
    def _fits_a_dbr_string(cls, correlation_id: str | None) -> str | None:
        """Refuse an id that the `DBR_STRING` PVs showing it could not hold."""
        size = len(correlation_id.encode()) if correlation_id is not None else 0
        if size > CORRELATION_ID_MAX:
            raise ValueError(
                f"{size} characters (bytes of UTF-8); a DBR_STRING holds at most {CORRELATION_ID_MAX}"
            )
        return correlation_id

    @field_validator("metadata")
    @classmethod
    def _fits_a_start_document(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        """Refuse keys the worker sets and values the start document schema forbids."""
        reserved = sorted(set(metadata) & set(RESERVED_METADATA))
        if reserved:
            raise ValueError(f"reserved key(s) {', '.join(reserved)}: set by the worker")
        trial = {**metadata, "uid": "", "time": 0.0}
        for error in _START_SCHEMA.iter_errors(trial):
            where = ".".join(str(part) for part in error.absolute_path)
            raise ValueError(f"{where}: {error.message}")
        return metadata


class _NonFinite(str):
    """A JSON number that is no finite float (`NaN`, `Infinity`, `1e400`), kept as its text."""


def _number(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _non_finite(value: Any, where: str = "") -> str | None:
    """The path (`params.start`) of the first non-finite number in `value`, with its text."""
    if isinstance(value, _NonFinite):
        return f"{where or 'request'}: {value} is not a finite number"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found:
            return found
    return None


# The JSON tokens that open or close, and the strings (which may hold them too).
_STRUCTURE = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_KEY_FOLLOWS = re.compile(r"\s*:")


def _nesting_error(text: str) -> str | None:
    """Why the JSON `text` nests objects and arrays too deep, naming the field where it
    does (by its keys in the first two levels, `params.points`), or None. Scans the text
    without recursion, so that no depth of input can exhaust the stack of the parser, the
    validators, the journal or the pipe to the worker.
    """
    path: list[str | None] = []  # per open object: its latest key; per open array: None
    for token in _STRUCTURE.finditer(text):
        kind = token.group()
        if kind in "[{":
            if len(path) == MAX_NESTING:
                field = ".".join(key for key in path[:2] if key) or "request"
                return (
                    f"{field}: nested too deep; a request may hold objects and arrays at most "
                    f"{MAX_NESTING} levels deep"
                )
            path.append("" if kind == "{" else None)
        elif kind in "]}":
            if path:
                path.pop()
        elif path and path[-1] is not None and _KEY_FOLLOWS.match(text, token.end()):
            path[-1] = json.loads(kind)
    return None


def parse_request(text: str) -> TaskRequest:
    """Parse the text of a request (strict JSON: no `NaN`, `Infinity` or numbers that
    overflow to them; at most `MAX_NESTING` levels deep); raise `RequestError` naming what
    is wrong.
    """
    if not text.strip():
        raise RequestError(
            'request: empty; write a JSON object such as {"name": "count", "params": '
            '{"detectors": ["det1"]}} (with caput -S)'
        )
    too_deep = _nesting_error(text)
    if too_deep:
        raise RequestError(too_deep)
    try:
        data = json.loads(text, parse_constant=_NonFinite, parse_float=_number)
    except json.JSONDecodeError as error:
        raise RequestError(f"request: not valid JSON: {error}") from None
    non_finite = _non_finite(data)
    if non_finite:
        raise RequestError(non_finite)
    if not isinstance(data, dict):
        raise RequestError(f"request: expected a JSON object, got {type(data).__name__}")
    try:
        return TaskRequest.model_validate(data)
    except ValidationError as error:
        raise RequestError(format_validation_error(error)) from None


def iso_time(timestamp: float) -> str:
    """UTC ISO 8601 text of a POSIX timestamp, as shown on the JSON PVs."""
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Task:
    """A validated request with the ids the worker gave it."""

    name: str
    params: dict[str, Any]
    correlation_id: str
    task_id: str
    metadata: dict[str, Any] = field(default_factory=dict)
    submitted: float = field(default_factory=time.time)
    user: str = ANONYMOUS  # who submitted it (tasks journaled before this was kept: anonymous)
    host: str = ""
    user_group: str | None = None  # the permission group that allowed it (None: no --permissions)
    devices: dict[str, str] = field(default_factory=dict)  # where the params name a device: path -> name

    @classmethod
    def create(
        cls,
        request: TaskRequest,
        params: dict[str, Any],
        *,
        writer: Writer = NOBODY,
        user_group: str | None = None,
        devices: dict[str, str] | None = None,
    ) -> Task:
        """A new task for `request` written by `writer`, whose params were validated into
        `params` (naming the `devices`, by path such as `params.motor`).
        """
        task_id = str(uuid.uuid4())
        return cls(
            name=request.name,
            params=params,
            correlation_id=request.correlation_id or task_id,
            task_id=task_id,
            metadata=request.metadata,
            user=writer.user,
            host=writer.host,
            user_group=user_group,
            devices=dict(devices or {}),
        )

    @property
    def writer(self) -> Writer:
        """Who submitted the task."""
        return Writer(self.user, self.host)

    def run_metadata(self) -> dict[str, Any]:
        """Keys for the run start document: the request's metadata, the ids and the submitter."""
        return {
            **self.metadata,
            "task_id": self.task_id,
            "correlation_id": self.correlation_id,
            "user": self.user,
            "user_host": self.host,
            "user_group": self.user_group,
        }

    @cached_property
    def summary_json(self) -> str:
        """`summary()` as JSON, encoded once."""
        return to_json(self.summary())

    def summary(self) -> dict[str, Any]:
        """The task as shown on `QUEUE`."""
        return {
            "task_id": self.task_id,
            "name": self.name,
            "params": self.params,
            "correlation_id": self.correlation_id,
            "submitted": iso_time(self.submitted),
            "user": self.user,
            "host": self.host,
            "user_group": self.user_group,
        }


@dataclass(frozen=True)
class PlanReturn:
    """What a plan returned (bluesky's plans return their run uid): the name of its type
    and its value as JSON (None if it has no JSON form), as blueapi reports a task's result.
    """

    type: str = "NoneType"
    value: Any = None


@dataclass(frozen=True)
class TaskOutcome:
    """How a task ended."""

    task: Task
    result: TaskResult
    started: float
    finished: float
    run_uids: tuple[str, ...] = ()
    error: str | None = None  # "<ExceptionType>: <message>" unless the task succeeded
    ended_by: str | None = None  # "<user>@<host>" of the STOP/ABORT/HALT/PANIC that ended it
    returned: PlanReturn = field(default_factory=PlanReturn)  # kept while the IOC runs only

    @property
    def duration(self) -> float:
        """Seconds from start to end."""
        return self.finished - self.started

    @property
    def error_message(self) -> str | None:
        """The `ERROR:MESSAGE` text: `<task id>: <ExceptionType>: <message>`."""
        return None if self.error is None else f"{self.task.task_id}: {self.error}"

    @cached_property
    def summary_json(self) -> str:
        """`summary()` as JSON, encoded once."""
        return to_json(self.summary())

    def summary(self) -> dict[str, Any]:
        """The outcome as shown on `HISTORY`."""
        return {
            **self.task.summary(),
            "result": str(self.result),
            "error": self.error,
            "run_uids": list(self.run_uids),
            "started": iso_time(self.started),
            "finished": iso_time(self.finished),
            "ended_by": self.ended_by,
        }


def describe_exception(error: BaseException) -> str:
    """`<ExceptionType>: <message>`, the form every error PV uses."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def to_json(value: Any) -> str:
    """Compact, strict JSON (RFC 8259), as every JSON PV carries it: a non-finite number
    (a detector reading NaN) is written as null.
    """
    try:
        return json.dumps(value, separators=(",", ":"), default=_plain, allow_nan=False)
    except ValueError:
        return json.dumps(finite(value), separators=(",", ":"), default=_plain, allow_nan=False)


def _plain(value: Any) -> Any:
    """What json cannot encode, as what it can (numpy arrays and scalars; else text)."""
    return value.tolist() if hasattr(value, "tolist") else str(value)


def finite(value: Any) -> Any:
    """`value` with every non-finite float in it (however nested) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    if hasattr(value, "tolist"):  # a numpy array or scalar
        return finite(value.tolist())
    return value


Summarized = Task | TaskOutcome  # what QUEUE and HISTORY list, each by its summary


def json_list(items: Iterable[Summarized]) -> str:
    """A JSON array of the summaries of `items`."""
    return "[" + ",".join(item.summary_json for item in items) + "]"


@dataclass(frozen=True)
class RunProgress:
    """The open run, as `CURRENT:RUN_UID`, `CURRENT:SCAN_ID` and `CURRENT:PROGRESS` show it."""

    run_uid: str = ""
    scan_id: int = 0
    percent: float = 0.0
