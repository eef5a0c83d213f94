"""Tests of ProgressWatcher: device progress views from the statuses a RunEngine waits on."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import bluesky.plan_stubs as bps
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop
from ophyd.sim import SynAxis
from ophyd_async.core import WatchableAsyncStatus, WatcherUpdate
from ophyd_async.sim import SimMotor

from ioc.worker.progress import ProgressWatcher, percent_done

Views = dict[str, dict[str, Any]]


class FakeStatus:
    """An ophyd-style (v1) status whose watchers and completion the test drives."""

    def __init__(self) -> None:
        self.watchers: list[Callable[..., None]] = []
        self.callbacks: list[Callable[[Any], None]] = []
        self.done = False
        self.success = False

    def watch(self, func: Callable[..., None]) -> None:
        self.watchers.append(func)

    def add_callback(self, callback: Callable[[Any], None]) -> None:
        self.callbacks.append(callback)

    def update(self, **kwargs: Any) -> None:
        for watcher in self.watchers:
            watcher(**kwargs)

    def finish(self) -> None:
        self.done = self.success = True
        for callback in self.callbacks:
            callback(self)


@pytest.fixture
def views() -> list[Views]:
    return []


@pytest.fixture
def RE(views: list[Views]) -> RunEngine:
    engine = RunEngine(context_managers=[])
    engine.waiting_hook = ProgressWatcher(views.append)
    return engine


def check_move(views: list[Views], name: str, unit: str) -> None:
    """Views of a 0 -> 1 move: rising percentage, JSON-able, ending done at 100 %."""
    seen = [v[name] for v in views if name in v]
    json.dumps(views)
    percentages = [v["percentage"] for v in seen if v["percentage"] is not None]
    assert any(0 < p < 100 for p in percentages), percentages
    assert percentages == sorted(percentages)
    moving = [v for v in seen if v["target"] is not None]
    assert all(v["initial"] == 0 and v["target"] == 1.0 and v["unit"] == unit for v in moving)
    done = [v["done"] for v in seen]
    assert done == sorted(done) and not done[0]  # done once the status completes
    assert seen[-1]["done"] is True and seen[-1]["percentage"] == 100.0


def test_ophyd_async_motor(RE: RunEngine, views: list[Views]) -> None:
    motor = SimMotor(name="smotor", instant=False)
    call_in_bluesky_event_loop(motor.connect())
    RE(bps.mv(motor, 1.0))
    check_move(views, "smotor", "mm")
    assert all(list(v) == ["smotor"] for v in views)  # named before its first update too


def test_ophyd_v1_axis(RE: RunEngine, views: list[Views]) -> None:
    axis = SynAxis(name="m", delay=0.5, events_per_move=5)
    RE(bps.mv(axis, 1.0))
    check_move(views, "m", "mm")


def test_ophyd_fraction_is_to_go() -> None:
    views: list[Views] = []
    watcher = ProgressWatcher(views.append, min_interval=0)
    status = FakeStatus()
    watcher({status})
    status.update(
        name="x", current=np.float64(3.0), initial=0.0, target=4.0, fraction=np.float64(0.25)
    )
    assert views[-1]["x"]["percentage"] == 75.0
    assert type(views[-1]["x"]["current"]) is float
    status.update(name="x", current=2.0)  # no fraction: computed from positions
    assert views[-1]["x"]["percentage"] == 50.0
    status.update(name="x", unit="deg")  # nothing to compute from: keeps the last
    assert views[-1]["x"] == {"current": 2.0, "initial": 0.0, "target": 4.0, "unit": "deg",
                              "precision": None, "percentage": 50.0, "done": False}


def test_ophyd_async_fraction_is_done() -> None:
    views: list[Views] = []
    watcher = ProgressWatcher(views.append, min_interval=0)

    async def scenario() -> None:
        release = asyncio.Event()

        async def updates() -> AsyncIterator[WatcherUpdate[float]]:
            yield WatcherUpdate(name="a", current=1.0, initial=0.0, target=4.0, fraction=0.25)
            await release.wait()

        status = WatchableAsyncStatus(updates())
        await asyncio.sleep(0)
        watcher({status})
        assert views[-1]["a"]["percentage"] == 25.0
        release.set()
        await status
        watcher(None)

    asyncio.run(scenario())
    assert views[-1]["a"]["done"] is True and views[-1]["a"]["percentage"] == 100.0


def test_percent_done_without_positions() -> None:
    assert percent_done(None, False, None, 0.0, 1.0) is None
    assert percent_done(None, True, 5.0, 2.0, 2.0) is None
    assert percent_done(1.5, True, None, None, None) == 100.0


def test_rate_limited_but_final_view_published() -> None:
    views: list[Views] = []
    watcher = ProgressWatcher(views.append, min_interval=60)
    status = FakeStatus()
    watcher({status})
    for i in range(1, 1001):
        status.update(name="x", current=i / 1000, initial=0.0, target=1.0)
    assert len(views) <= 2
    status.finish()
    watcher(None)
    assert len(views) <= 4
    assert views[-1]["x"]["done"] is True and views[-1]["x"]["current"] == 1.0
    status.update(name="x", current=0.5)  # late updates after the wait are ignored
    assert views[-1]["x"]["current"] == 1.0
    watcher({FakeStatus()})  # the next wait replaces the views
    assert "x" not in views[-1]


def test_failing_publish_does_not_break_run(RE: RunEngine) -> None:
    calls: list[Views] = []

    def publish(views: Views) -> None:
        calls.append(views)
        raise RuntimeError("boom")

    RE.waiting_hook = ProgressWatcher(publish, min_interval=0)
    axis = SynAxis(name="m", delay=0.2, events_per_move=3)
    RE(bps.mv(axis, 2.0))
    assert axis.position == 2.0
    assert calls and calls[-1]["m"]["done"] is True


def test_a_wait_on_statuses_done_at_once_is_published_once(RE: RunEngine, views: list[Views]) -> None:
    """A simulated detector's trigger is done before the wait begins: one view, at its end."""
    axis = SynAxis(name="m", delay=0)
    RE(bps.mv(axis, 1.0))
    views.clear()
    RE(bps.trigger(axis, wait=True))
    assert len(views) == 1, views
    assert views[0]["m"]["done"] is True and views[0]["m"]["percentage"] == 100.0
