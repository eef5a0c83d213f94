"""Follows the documents of the running task: run uids, scan id and progress."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..models import RunProgress

PRIMARY_STREAM = "primary"


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
