"""Device progress for the PROGRESS PV: follows the statuses the RunEngine waits on.

Watchers report `fraction` two ways round, normalised here to "percent done":
- ophyd (v1) `MoveStatus._notify_watchers`: `fraction = abs(target - current) /
  abs(initial - target)`, the share still TO GO (`DeviceStatus._settled` sends 0.0).
- ophyd-async `WatcherUpdate.fraction`: "The fraction of the way between initial and
  target", the share already DONE.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from functools import partial
from typing import Any

from ophyd_async.core import WatchableAsyncStatus

logger = logging.getLogger(__name__)

Views = dict[str, dict[str, Any]]
_FIELDS = ("current", "initial", "target", "unit", "precision")


def _plain(value: Any) -> Any:
    """`value` as JSON-able Python: numpy scalars/arrays unwrapped, NaN/inf as None."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | bool | int | float | list):
        return value
    return str(value)


def percent_done(
    fraction: float | None, fraction_is_done: bool, current: Any, initial: Any, target: Any
) -> float | None:
    """Percent (0-100) of the way from `initial` to `target`, or None if unknown.

    `fraction` is the share done (ophyd-async) or to go (ophyd) per `fraction_is_done`;
    without it the share is computed from the positions as ophyd does.
    """
    try:
        if fraction is not None:
            done = float(fraction) if fraction_is_done else 1.0 - float(fraction)
        else:
            span = abs(float(target) - float(initial))
            if span == 0:
                return None
            done = 1.0 - abs(float(target) - float(current)) / span
    except (TypeError, ValueError):
        return None
    if not math.isfinite(done):
        return None
    return 100.0 * min(max(done, 0.0), 1.0)


def status_name(status: Any) -> str:
    """The device name behind `status` (ophyd's obj/device/pos, ophyd-async's), else str."""
    for attr in ("obj", "device", "pos"):
        name = getattr(getattr(status, attr, None), "name", None)
        if name:
            return str(name)
    return str(getattr(status, "_name", None) or status)  # ophyd-async keeps it private


class ProgressWatcher:
    """A RunEngine `waiting_hook`: follows the statuses the plan waits on and publishes a view
    of each device's progress, at most every `min_interval` seconds (plus at once when a status
    completes and when the wait ends). A wait on statuses that are all done when it begins
    (a simulated detector's trigger) is published once, when it ends.
    """

    def __init__(self, publish: Callable[[Views], None], *, min_interval: float = 0.1) -> None:
        self._publish = publish
        self._min_interval = min_interval
        self._lock = threading.Lock()
        self._wait = 0  # counts waits, so callbacks of an earlier wait are ignored
        self._waiting = False
        self._starting = 0  # the wait whose callbacks are being added (done ones run at once)
        self._statuses: list[Any] = []
        self._names: list[str] = []
        self._views: list[dict[str, Any]] = []
        self._last_publish = -math.inf
        self._shown = False  # the last views published were not empty

    def __call__(self, statuses: Collection[Any] | None) -> None:
        """Start following `statuses`, or (None) end the wait publishing the final views."""
        try:
            if statuses is None:
                self._end()
            else:
                self._start(statuses)
        except Exception:
            logger.exception("Progress watcher failed")

    def _start(self, statuses: Collection[Any]) -> None:
        watchable = [status for status in statuses if callable(getattr(status, "watch", None))]
        with self._lock:
            self._wait += 1
            wait = self._starting = self._wait
            self._waiting = True
            self._statuses = watchable
            self._names = [status_name(status) for status in watchable]
            self._views = [
                {field: None for field in (*_FIELDS, "percentage")} | {"done": False}
                for _ in watchable
            ]
        for index, status in enumerate(watchable):
            fraction_is_done = isinstance(status, WatchableAsyncStatus)
            status.watch(partial(self._on_update, wait, index, fraction_is_done))
            status.add_callback(partial(self._on_done, wait, index))
        with self._lock:
            self._starting = 0
            if wait == self._wait and not all(getattr(status, "done", False) for status in watchable):
                self._flush()

    def _end(self) -> None:
        with self._lock:
            if not self._waiting:
                return
            self._waiting = False
            for index in range(len(self._views)):
                self._finish(index)
            self._flush()

    def _on_update(self, wait: int, index: int, fraction_is_done: bool, **update: Any) -> None:
        """A status watcher: merge the update into the device's view."""
        try:
            with self._lock:
                if wait != self._wait or not self._waiting:
                    return
                if update.get("name"):
                    self._names[index] = str(update["name"])
                view = self._views[index]
                for field in _FIELDS:
                    if update.get(field) is not None:
                        view[field] = _plain(update[field])
                percentage = percent_done(
                    update.get("fraction"), fraction_is_done,
                    view["current"], view["initial"], view["target"],
                )
                if percentage is not None:
                    view["percentage"] = percentage
                if time.monotonic() - self._last_publish >= self._min_interval:
                    self._flush()
        except Exception:
            logger.exception("Progress update failed")

    def _on_done(self, wait: int, index: int, status: Any) -> None:
        """A status callback: mark the device's view done and publish at once."""
        try:
            with self._lock:
                if wait == self._wait and self._waiting:
                    self._finish(index)
                    if wait != self._starting:
                        self._flush()
        except Exception:
            logger.exception("Progress completion failed")

    def _finish(self, index: int) -> None:
        """Mark a view done (lock held); a successful status got all the way."""
        view = self._views[index]
        view["done"] = True
        status = self._statuses[index]
        if status.done and getattr(status, "success", False):
            view["percentage"] = 100.0

    def _flush(self) -> None:
        """Publish a fresh copy of the views (lock held), unless nothing is watched now
        nor was before; log what `publish` raises.
        """
        self._last_publish = time.monotonic()
        views = {name: dict(view) for name, view in zip(self._names, self._views)}
        if not views and not self._shown:
            return
        self._shown = bool(views)
        try:
            self._publish(views)
        except Exception:
            logger.exception("Publishing progress failed")
