"""Keeps every document of every run: a bounded queue, a writer thread, one JSON Lines file per run.

The RunEngine subscriber (`DocumentWriter.__call__`) only enqueues without blocking; the
writer thread encodes and writes. A failing store is reported through `on_error` and never
raises into the RunEngine.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any, TextIO

from ..models import to_json
from .open_runs import FAIL, OpenRuns

logger = logging.getLogger(__name__)

Sink = Callable[[str, dict], None]
_STOP = None  # the queue item that ends the writer thread
_Item = tuple[str, dict] | threading.Event | None


class DocumentWriter:
    """Feeds documents to sinks on a thread of its own; the RunEngine side never blocks.

    `on_error` is called on the writer thread, at most once per run for each sink and error
    type, and once per run when documents are dropped because the queue is full.
    """

    def __init__(
        self, sinks: Sequence[Sink], on_error: Callable[[str], None], *, capacity: int = 100_000
    ) -> None:
        self._sinks = tuple(sinks)
        self._on_error = on_error
        self._capacity = capacity
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=capacity)
        self._drop_reports: deque[str] = deque()  # from the RunEngine side to the writer
        self._run = ""  # RunEngine side: the run being fed
        self._drop_noted_run: str | None = None  # RunEngine side: the run whose drops are reported
        self._reported: set[tuple[int, str]] = set()  # writer side: (sink, error type), this run
        self._thread = threading.Thread(target=self._work, name="run-store-writer", daemon=True)
        self._thread.start()

    def __call__(self, name: str, doc: dict) -> None:
        """Enqueue one document without blocking; drop it if the queue is full."""
        if name == "start":
            self._run = doc.get("uid", "")
        try:
            self._queue.put_nowait((name, doc))
        except queue.Full:
            if self._drop_noted_run != self._run:
                self._drop_noted_run = self._run
                self._drop_reports.append(
                    f"run store: queue full ({self._capacity} documents),"
                    f" dropping documents of run {self._run}"
                )
                # Wake an idle writer to report; if full, it reports after its next item.
                with suppress(queue.Full):
                    self._queue.put_nowait(threading.Event())

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything enqueued so far is written; False on timeout."""
        done = threading.Event()
        deadline = time.monotonic() + timeout
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(max(0.0, deadline - time.monotonic()))

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop and join the writer thread."""
        deadline = time.monotonic() + timeout
        with suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout)
        self._thread.join(max(0.0, deadline - time.monotonic()))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            while self._drop_reports:
                self._report(self._drop_reports.popleft())
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
            else:
                self._write(*item)

    def _write(self, name: str, doc: dict) -> None:
        if name == "start":
            self._reported.clear()
        for index, sink in enumerate(self._sinks):
            try:
                sink(name, doc)
            except Exception as exc:
                key = (index, type(exc).__name__)
                if key not in self._reported:
                    self._reported.add(key)
                    self._report(f"run store: {type(exc).__name__}: {exc}")

    def _report(self, message: str) -> None:
        try:
            self._on_error(message)
        except Exception:
            logger.exception("run store: on_error failed for %r", message)


class RunFiles:
    """A sink writing each run to <directory>/<start uid>.jsonl, one `[name, doc]` JSON array
    per line: the bluesky ecosystem's JSONL, as suitcase-jsonl writes it and databroker's
    JSONL catalog reads it.

    Documents of a run whose file could not be opened, or of an unknown run, are skipped.
    """

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        self._files: dict[str, TextIO | None] = {}  # run uid -> open file (None: failed to open)
        self._run_of: dict[str, str] = {}  # descriptor/resource/stream_resource uid -> run uid
        self._last_run = ""

    def __call__(self, name: str, doc: dict) -> None:
        """Write one document to its run's file; start opens the file, stop closes it."""
        if name == "start":
            self._open(doc["uid"])
        run = self._run_for(name, doc)
        if name == "stop":
            file = self._files.pop(run, None) if run else None
            self._run_of = {key: value for key, value in self._run_of.items() if value != run}
        else:
            file = self._files.get(run) if run else None
        if file is None:
            return
        try:
            file.write(_line(name, doc))
            file.flush()
        finally:
            if name == "stop":
                file.close()

    def close_cut_short(self, run: str, reason: str, at: float) -> dict[str, Any] | None:
        """Append to the file of `run`, which a crash cut short, the stop document it never
        got (`exit_status` fail, `reason`, written at `at`), after cutting off a line the
        crash tore; return that document. None if the file is missing or has its stop.
        """
        try:
            with open(_path(self._directory, run), "r+b") as file:
                documents, whole = _parse(file.read())
                stops = OpenRuns().feed(documents).close(reason, FAIL, at)
                if stops:
                    file.seek(whole)
                    file.truncate()
                    file.write(_line("stop", stops[0]).encode("utf-8"))
        except FileNotFoundError:
            return None
        return stops[0] if stops else None

    def _open(self, run: str) -> None:
        self._files[run] = None
        self._last_run = run
        self._directory.mkdir(parents=True, exist_ok=True)
        self._files[run] = open(_path(self._directory, run), "w", encoding="utf-8")

    def _run_for(self, name: str, doc: dict) -> str | None:
        if name == "start":
            return doc["uid"]
        if name in ("descriptor", "resource", "stream_resource"):
            run = doc.get("run_start") or self._last_run
            self._run_of[doc["uid"]] = run
            return run
        if name == "stop":
            return doc["run_start"]
        for field in ("descriptor", "resource", "stream_resource"):
            if field in doc:
                return self._run_of.get(doc[field])
        return None


def run_uids(directory: Path) -> list[str]:
    """The uids of the runs stored in `directory`, oldest first (by file modification time)."""
    paths = sorted(Path(directory).glob("*.jsonl"), key=lambda path: path.stat().st_mtime_ns)
    return [path.stem for path in paths]


def read_run(directory: Path, uid: str) -> list[tuple[str, dict]]:
    """The documents of one run, in order; a torn last line (crash mid-write) is skipped."""
    return _parse(_path(Path(directory), uid).read_bytes())[0]


def _path(directory: Path, uid: str) -> Path:
    return directory / f"{uid}.jsonl"


def _line(name: str, doc: dict) -> str:
    """One line of a run file."""
    return to_json([name, doc]) + "\n"


def _parse(data: bytes) -> tuple[list[tuple[str, dict]], int]:
    """The documents of a run file's bytes, from its whole lines, and the length of those
    lines (what follows the last newline is a line torn by a crash mid-write).
    """
    whole = data.rfind(b"\n") + 1
    documents = []
    for number, line in enumerate(data[:whole].decode("utf-8").split("\n")[:-1], start=1):
        match json.loads(line):
            case [str() as name, dict() as doc]:
                documents.append((name, doc))
            case _:
                raise ValueError(f"line {number} is not a [name, doc] array")
    return documents, whole


def to_jsonable(value: Any) -> Any:
    """`value` as the run files keep it: strict JSON types (non-finite numbers as null)."""
    return json.loads(to_json(value))
