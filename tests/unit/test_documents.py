"""Tests of RunTracker: run uids, scan ids and progress from a run's documents."""

from typing import Any

import pytest

from ioc.models import RunProgress
from ioc.worker.tracker import RunTracker


@pytest.fixture
def published() -> list[RunProgress]:
    return []


@pytest.fixture
def tracker(published: list[RunProgress]) -> RunTracker:
    return RunTracker(published.append)


def start(uid: str = "run-1", **extra: Any) -> dict[str, Any]:
    return {"uid": uid, "time": 0.0, **extra}


def descriptor(uid: str, stream: str = "primary") -> dict[str, Any]:
    return {"uid": uid, "name": stream, "run_start": "run-1"}


def event(descriptor_uid: str, seq_num: int = 1) -> dict[str, Any]:
    return {"descriptor": descriptor_uid, "seq_num": seq_num, "uid": f"e{seq_num}"}


def test_start_publishes_uid_and_scan_id(tracker: RunTracker, published: list) -> None:
    tracker("start", start("run-1", scan_id=7, num_points=4))
    assert published == [RunProgress(run_uid="run-1", scan_id=7, percent=0.0)]
    assert tracker.run_uids == ["run-1"]


def test_primary_events_raise_percent(tracker: RunTracker, published: list) -> None:
    tracker("start", start(scan_id=3, num_points=4))
    tracker("descriptor", descriptor("d1"))
    for seq in range(1, 5):
        tracker("event", event("d1", seq))
    assert [p.percent for p in published] == [0.0, 25.0, 50.0, 75.0, 100.0]
    assert all((p.run_uid, p.scan_id) == ("run-1", 3) for p in published)


def test_only_whole_percent_changes_publish(tracker: RunTracker, published: list) -> None:
    tracker("start", start(num_points=1000))
    tracker("descriptor", descriptor("d1"))
    for seq in range(1, 1001):
        tracker("event", event("d1", seq))
    assert len(published) <= 101
    percents = [p.percent for p in published]
    assert percents == sorted(percents)
    assert percents[-1] == 100.0
    assert [int(p) for p in percents] == list(range(101))


def test_percent_never_exceeds_100(tracker: RunTracker, published: list) -> None:
    tracker("start", start(num_points=2))
    tracker("descriptor", descriptor("d1"))
    for seq in range(1, 6):
        tracker("event", event("d1", seq))
    assert max(p.percent for p in published) == 100.0


def test_other_streams_do_not_count(tracker: RunTracker, published: list) -> None:
    tracker("start", start(num_points=2))
    tracker("descriptor", descriptor("d-baseline", stream="baseline"))
    tracker("descriptor", descriptor("d1"))
    tracker("event", event("d-baseline"))
    tracker("event", event("d-baseline", 2))
    assert [p.percent for p in published] == [0.0]
    tracker("event", event("d1"))
    assert [p.percent for p in published] == [0.0, 50.0]


def test_event_page_counts_its_events(tracker: RunTracker, published: list) -> None:
    tracker("start", start(num_points=10))
    tracker("descriptor", descriptor("d1"))
    tracker("event_page", {"descriptor": "d1", "seq_num": [1, 2, 3]})
    tracker("event_page", {"descriptor": "d2", "seq_num": [1, 2, 3]})  # unknown stream
    tracker("event_page", {"descriptor": "d1", "seq_num": [4, 5]})
    assert [p.percent for p in published] == [0.0, 30.0, 50.0]


def test_stop_closes_the_run_and_keeps_its_progress_on_show(tracker: RunTracker, published: list) -> None:
    tracker("start", start(scan_id=1, num_points=2))
    tracker("descriptor", descriptor("d1"))
    tracker("event", event("d1"))
    tracker("stop", {"uid": "s1", "run_start": "run-1", "exit_status": "success"})
    assert (published[-1].run_uid, published[-1].scan_id, published[-1].percent) == ("", 1, 50.0)


def test_descriptors_are_forgotten_at_stop(tracker: RunTracker, published: list) -> None:
    tracker("start", start("run-1", num_points=2))
    tracker("descriptor", descriptor("d1"))
    tracker("stop", {"uid": "s1"})
    tracker("start", start("run-2", num_points=2))
    tracker("event", event("d1"))  # the old run's descriptor: not this run's primary stream
    assert published[-1] == RunProgress(run_uid="run-2")


def test_run_uids_collects_runs_until_the_next_task(tracker: RunTracker, published: list) -> None:
    for uid in ("run-1", "run-2"):
        tracker("start", start(uid, num_points=1))
        tracker("stop", {"uid": f"stop-{uid}"})
    assert tracker.run_uids == ["run-1", "run-2"]
    tracker.begin_task()
    assert tracker.run_uids == []
    tracker("start", start("run-3"))
    assert tracker.run_uids == ["run-3"]


def test_second_run_starts_from_zero(tracker: RunTracker, published: list) -> None:
    tracker("start", start("run-1", num_points=2))
    tracker("descriptor", descriptor("d1"))
    tracker("event", event("d1"))
    tracker("stop", {"uid": "s1"})
    tracker("start", start("run-2", num_points=4))
    tracker("descriptor", descriptor("d2"))
    tracker("event", event("d2"))
    assert published[-1] == RunProgress(run_uid="run-2", percent=25.0)


@pytest.mark.parametrize("extra", [{}, {"num_points": None}, {"num_points": 0}])
def test_no_num_points_keeps_percent_at_zero(
    tracker: RunTracker, published: list, extra: dict[str, Any]
) -> None:
    tracker("start", start(**extra))
    tracker("descriptor", descriptor("d1"))
    for seq in range(1, 11):
        tracker("event", event("d1", seq))
    assert published == [RunProgress(run_uid="run-1")]
