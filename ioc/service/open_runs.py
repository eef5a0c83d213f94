"""The runs that started and have not stopped, and the stop documents that close them when
something cut them short (the worker process died, the IOC crashed).

A stop document made here is what bluesky's RunEngine would have written: a new `uid`, the
`run_start` it closes, `exit_status`, `reason` and `num_events` per stream, counted from
the run's own event and event_page documents.
"""

from __future__ import annotations

import threading
import time as clock
import uuid
from collections.abc import Iterable
from typing import Any

FAIL = "fail"
ABORT = "abort"


class OpenRuns:
    """Fed every document (a sink); knows which runs are open and how many events each
    stream of each has. Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, dict[str, int]] = {}  # run uid -> stream name -> events
        self._stream_of: dict[str, tuple[str, str]] = {}  # descriptor uid -> (run uid, stream)

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        """Note one document of a run."""
        with self._lock:
            if name == "start":
                self._events[doc["uid"]] = {}
            elif name == "descriptor" and doc.get("run_start") in self._events:
                stream = doc.get("name", "primary")
                self._stream_of[doc["uid"]] = (doc["run_start"], stream)
                self._events[doc["run_start"]].setdefault(stream, 0)
            elif name in ("event", "event_page") and doc.get("descriptor") in self._stream_of:
                run, stream = self._stream_of[doc["descriptor"]]
                self._events[run][stream] += len(doc["seq_num"]) if name == "event_page" else 1
            elif name == "stop":
                self._forget(doc.get("run_start", ""))

    def feed(self, documents: Iterable[tuple[str, dict[str, Any]]]) -> OpenRuns:
        """Note each of `documents`, in order; return self."""
        for name, doc in documents:
            self(name, doc)
        return self

    def close(self, reason: str, exit_status: str = FAIL, at: float | None = None) -> list[dict[str, Any]]:
        """A stop document for each open run (written at `at`, default now), oldest run
        first; the runs then count as closed.
        """
        with self._lock:
            runs = list(self._events)
            stops = [
                {
                    "uid": str(uuid.uuid4()),
                    "time": clock.time() if at is None else at,
                    "run_start": run,
                    "exit_status": exit_status,
                    "reason": reason,
                    "num_events": dict(self._events[run]),
                }
                for run in runs
            ]
            for run in runs:
                self._forget(run)
        return stops

    def _forget(self, run: str) -> None:
        self._events.pop(run, None)
        self._stream_of = {key: value for key, value in self._stream_of.items() if value[0] != run}
