"""`EVENT`, `DOCUMENT`, `PROGRESS`: live streams of the worker (lossy for slow clients)."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

import numpy as np
from caproto.server import PVGroup

from ..models import Task, to_json
from .fields import text, write_text

EVENT_BYTES = 16000  # readable by a stock client (EPICS_CA_MAX_ARRAY_BYTES 16384)
DOCUMENT_BYTES = 60000  # below pyepics' auto-monitor limit (65536 elements); big arrays are summarised


class EventType(StrEnum):
    """The `type` of an `EVENT`."""

    TASK_SUBMITTED = "task_submitted"
    TASK_REJECTED = "task_rejected"
    TASK_REMOVED = "task_removed"
    TASK_STARTED = "task_started"
    TASK_FINISHED = "task_finished"
    TASK_FAILED = "task_failed"
    STATE_CHANGED = "state_changed"


class StreamPVs(PVGroup):
    """The latest worker event, event-model document and device progress."""

    event = text("EVENT", "Latest worker event, JSON", max_bytes=EVENT_BYTES)
    document = text("DOCUMENT", "Latest event-model document, JSON", max_bytes=DOCUMENT_BYTES)
    progress = text("PROGRESS", "Device statuses waited on, JSON", max_bytes=EVENT_BYTES)

    async def post_event(
        self, kind: EventType, task: Task | None = None, error: str | None = None
    ) -> None:
        """Post one worker event, with the state `STATE` shows now."""
        event = {
            "type": kind,
            **_ids(task),
            "user": task.user if task is not None else None,
            "state": self.parent.worker.state.value,
            "timestamp": time.time(),
            "error": error,
        }
        await write_text(self.event, to_json(event))

    async def show_document(self, name: str, doc: dict[str, Any], task: Task | None) -> None:
        """Show a document wrapped with the ids of its task; big arrays as their shape."""
        view = {
            "name": name,
            "doc": live_view(doc),
            **_ids(task),
        }
        text_value = to_json(view)
        if len(text_value.encode()) > DOCUMENT_BYTES:
            view["doc"] = {"uid": doc.get("uid"), "omitted": "too large for DOCUMENT; see the run store"}
            text_value = to_json(view)
        await write_text(self.document, text_value)

    async def show_progress(self, views: dict[str, dict[str, Any]]) -> None:
        """Show the statuses the plan waits on."""
        await write_text(self.progress, to_json(views))


def _ids(task: Task | None) -> dict[str, str | None]:
    """The task and correlation ids every stream item is headed with."""
    return {
        "task_id": task.task_id if task else None,
        "correlation_id": task.correlation_id if task else None,
    }


ARRAY_ITEMS_SHOWN = 32  # longer arrays appear on the live view as their shape only


def live_view(value: Any) -> Any:
    """`value` made JSON-able for a live view: arrays and lists of more than
    `ARRAY_ITEMS_SHOWN` items become `{"shape": [...], "dtype": ...}` (the run store
    keeps the data).
    """
    if isinstance(value, dict):
        return {key: live_view(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        if value.size > ARRAY_ITEMS_SHOWN:
            return {"shape": list(value.shape), "dtype": str(value.dtype)}
        return value.tolist()
    if isinstance(value, (list, tuple)):
        if len(value) > ARRAY_ITEMS_SHOWN:
            return {"shape": [len(value)], "dtype": "list"}
        return [live_view(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
