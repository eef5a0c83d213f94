"""Follows the documents of the running task: run uids, scan id and progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

PRIMARY_STREAM = "primary"


@dataclass(frozen=True)
class RunProgress:
    """The open run, as `CURRENT:RUN_UID`, `CURRENT:SCAN_ID` and `CURRENT:PROGRESS` show it."""

    run_uid: str = ""
    scan_id: int = 0
    percent: float = 0.0


class RunTracker:
    """A RunEngine subscriber (called on the RunEngine's loop): publish and return.

    Progress is the share of the start document's `num_points` seen as primary events,
    published when its whole percent changes, so a long run posts at most ~100 updates.
    """

    def __init__(self, on_progress: Callable[[RunProgress], None]) -> None:
        self._on_progress = on_progress
        self.run_uids: list[str] = []
        self._progress = RunProgress()
        self._num_points = 0
        self._events = 0
        self._primary_descriptors: set[str] = set()

    def begin_task(self) -> None:
        """Forget the previous task's runs."""
        self.run_uids = []

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Take one document."""
        if name == "start":
            self._start(doc)
        elif name == "descriptor" and doc.get("name") == PRIMARY_STREAM:
            self._primary_descriptors.add(doc["uid"])
        elif name == "event" and doc["descriptor"] in self._primary_descriptors:
            self._count(1)
        elif name == "event_page" and doc["descriptor"] in self._primary_descriptors:
            self._count(len(doc["seq_num"]))
        elif name == "stop":  # no run is open; its scan id and progress stay on show
            self._primary_descriptors.clear()
            self._publish(RunProgress(scan_id=self._progress.scan_id, percent=self._progress.percent))

    def _start(self, doc: dict[str, Any]) -> None:
        self.run_uids.append(doc["uid"])
        self._num_points = int(doc.get("num_points") or 0)
        self._events = 0
        self._publish(RunProgress(run_uid=doc["uid"], scan_id=int(doc.get("scan_id") or 0)))

    def _count(self, events: int) -> None:
        self._events += events
        if not self._num_points:
            return
        percent = min(100.0, 100.0 * self._events / self._num_points)
        if int(percent) != int(self._progress.percent):
            self._publish(RunProgress(self._progress.run_uid, self._progress.scan_id, percent))

    def _publish(self, progress: RunProgress) -> None:
        self._progress = progress
        self._on_progress(progress)


ARRAY_ITEMS_SHOWN = 32  # longer arrays appear on the live view as their shape only


def live_view(value: Any) -> Any:
    """`value` made JSON-able for a live view: arrays and lists of more than
    `ARRAY_ITEMS_SHOWN` items become `{"shape": [...], "dtype": ...}` (the run store
    keeps the data)."""
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
