"""Tests of the task queue: order, take, close, listener, the hold gate."""

import pytest

from ioc.models import Task, parse_request
from ioc.service.queue import NotPending, TaskQueue


def make_task(name: str) -> Task:
    return Task.create(parse_request(f'{{"name": "{name}"}}'), {})


class Recorder:
    """A queue listener that keeps every snapshot it is given, as task names."""

    def __init__(self) -> None:
        self.snapshots: list[list[str]] = []
        self.gates: list[bool] = []

    def __call__(self, tasks: list[Task], enabled: bool) -> None:
        self.snapshots.append([task.name for task in tasks])
        self.gates.append(enabled)


def test_fifo_order() -> None:
    queue = TaskQueue(Recorder())
    tasks = [make_task(name) for name in ("a", "b", "c")]
    for task in tasks:
        queue.append(task)
    assert len(queue) == 3
    assert queue.snapshot() == tasks
    assert [queue.take() for _ in tasks] == tasks
    assert len(queue) == 0 and queue.take() is None


def test_snapshot_is_a_copy() -> None:
    queue = TaskQueue(Recorder())
    queue.append(make_task("a"))
    queue.snapshot().clear()
    assert len(queue) == 1


def test_take_gives_nothing_until_a_task_is_appended() -> None:
    queue = TaskQueue(Recorder())
    assert not queue.ready() and queue.take() is None
    task = make_task("a")
    queue.append(task)
    assert queue.ready() and queue.take() is task


def test_take_after_close_gives_nothing_even_with_tasks_pending() -> None:
    queue = TaskQueue(Recorder())
    queue.append(make_task("a"))
    queue.close()
    assert not queue.ready() and queue.take() is None
    assert len(queue) == 1


def test_listener_gets_each_snapshot_in_order() -> None:
    recorder = Recorder()
    queue = TaskQueue(recorder)
    queue.append(make_task("a"))
    queue.append(make_task("b"))
    queue.take()
    queue.append(make_task("c"))
    queue.take()
    queue.take()
    assert recorder.snapshots == [["a"], ["a", "b"], ["b"], ["b", "c"], ["c"], []]


def test_listener_snapshot_is_not_the_queue_itself() -> None:
    recorder: list[list[Task]] = []
    queue = TaskQueue(lambda tasks, enabled: recorder.append(tasks))
    queue.append(make_task("a"))
    recorder[0].clear()
    assert len(queue) == 1


def test_disabled_queue_holds_its_tasks() -> None:
    queue = TaskQueue(Recorder(), enabled=False)
    assert not queue.enabled
    queue.append(make_task("a"))
    assert queue.take() is None, "a task was taken although the gate is closed"
    assert len(queue) == 1
    queue.set_enabled(True)
    assert queue.take() is not None


def test_enabled_by_default() -> None:
    assert TaskQueue(Recorder()).enabled


def test_remove_clear_and_the_gates() -> None:
    recorder = Recorder()
    queue = TaskQueue(recorder)
    first, second, third = (make_task(name) for name in ("a", "b", "c"))
    for task in (first, second, third):
        queue.append(task)
    assert queue.remove(second.task_id) is second
    with pytest.raises(NotPending, match="no pending task has an id starting with"):
        queue.remove(second.task_id)
    assert queue.remove(third.task_id[:8]) is third  # a unique prefix will do
    queue.append(third)
    queue.set_enabled(False)
    assert recorder.gates[-1] is False and not queue.enabled
    queue.set_enabled(True)
    queue.set_latched(True)
    assert queue.take() is None  # latched: nothing is taken
    queue.set_latched(False)
    assert queue.take() is first
    assert queue.clear() == [third]
    assert recorder.snapshots[-1] == []


def test_a_prefix_shared_by_two_pending_tasks_is_refused() -> None:
    from dataclasses import replace

    queue = TaskQueue(Recorder())
    first, second = (replace(make_task(name), task_id=f"abcd{name}") for name in ("1", "2"))
    queue.append(first)
    queue.append(second)
    with pytest.raises(NotPending, match="2 pending tasks have ids starting with 'abcd'"):
        queue.remove("abcd")
    assert queue.remove("abcd2") is second


@pytest.mark.parametrize("task_id", ["", "  "])
def test_an_empty_id_removes_nothing(task_id: str) -> None:
    """Every id starts with '': an empty id must not take the only pending task."""
    queue = TaskQueue(Recorder())
    only = make_task("a")
    queue.append(only)
    with pytest.raises(NotPending, match=r"^no task id given; write the id of a pending task"):
        queue.remove(task_id)
    assert queue.snapshot() == [only]


def test_a_hold_says_why_until_the_queue_runs_again() -> None:
    queue = TaskQueue(Recorder(), enabled=False, held_by="tasks were pending when the IOC started")
    assert queue.held_by == "tasks were pending when the IOC started"
    queue.set_enabled(True, "ignored while it runs")
    assert queue.held_by == ""
    queue.set_enabled(False, "set by an operator")
    assert queue.held_by == "set by an operator" and not queue.enabled
    assert TaskQueue(Recorder(), held_by="ignored while it runs").held_by == ""


class Journal:
    """A queue journal that keeps what it was told, as (what, task name)."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str]] = []

    def append(self, task: Task) -> None:
        self.entries.append(("append", task.name))

    def prepend(self, task: Task) -> None:
        self.entries.append(("prepend", task.name))

    def start(self, task: Task) -> None:
        self.entries.append(("start", task.name))

    def remove(self, task_ids) -> None:
        self.entries.append(("remove", ",".join(task_ids)))


def test_a_task_that_would_be_taken_at_once_is_journaled_as_started() -> None:
    """`append(take=True)` takes a task nothing is ahead of, with one journal entry; a
    task behind another, or behind a closed gate, is queued as usual."""
    journal, recorder = Journal(), Recorder()
    queue = TaskQueue(recorder, journal=journal)
    assert queue.append(make_task("a"), take=True) is True
    assert journal.entries == [("start", "a")] and len(queue) == 0 and recorder.snapshots == []
    queue.append(make_task("b"))
    assert queue.append(make_task("c"), take=True) is False  # "b" is ahead of it
    queue.clear()
    queue.set_enabled(False)
    assert queue.append(make_task("d"), take=True) is False  # the gate is closed
    assert journal.entries[-1] == ("append", "d") and queue.snapshot()[0].name == "d"
