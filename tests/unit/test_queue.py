"""Tests of the task queue: order, blocking take, close, listener, the hold gate."""

import threading
from collections.abc import Callable

import pytest

from ioc.models import Task, parse_request
from ioc.service.queue import NotPending, QueueClosed, TaskQueue

TIMEOUT = 10.0


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


class Taker:
    """`queue.take()` in a thread; `done` is set when it returns or raises."""

    def __init__(self, queue: TaskQueue) -> None:
        self.task: Task | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._take, args=(queue.take,), daemon=True)
        self._thread.start()

    def _take(self, take: Callable[[], Task]) -> None:
        try:
            self.task = take()
        except BaseException as error:  # noqa: BLE001 - reported to the test
            self.error = error
        finally:
            self.done.set()

    def join(self) -> None:
        assert self.done.wait(TIMEOUT), "take() did not return"
        self._thread.join(TIMEOUT)


def test_fifo_order() -> None:
    queue = TaskQueue(Recorder())
    tasks = [make_task(name) for name in ("a", "b", "c")]
    for task in tasks:
        queue.append(task)
    assert len(queue) == 3
    assert queue.snapshot() == tasks
    assert [queue.take() for _ in tasks] == tasks
    assert len(queue) == 0


def test_snapshot_is_a_copy() -> None:
    queue = TaskQueue(Recorder())
    queue.append(make_task("a"))
    queue.snapshot().clear()
    assert len(queue) == 1


def test_take_blocks_until_append_from_another_thread() -> None:
    queue = TaskQueue(Recorder())
    taker = Taker(queue)
    assert not taker.done.wait(0.1)  # nothing pending: still waiting
    task = make_task("a")
    queue.append(task)
    taker.join()
    assert taker.task is task and taker.error is None


def test_close_wakes_a_blocked_take() -> None:
    queue = TaskQueue(Recorder())
    takers = [Taker(queue), Taker(queue)]
    assert not takers[0].done.wait(0.1)
    queue.close()
    for taker in takers:
        taker.join()
        assert isinstance(taker.error, QueueClosed) and taker.task is None


def test_take_after_close_raises_even_with_tasks_pending() -> None:
    queue = TaskQueue(Recorder())
    queue.append(make_task("a"))
    queue.close()
    with pytest.raises(QueueClosed):
        queue.take()


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
    taker = Taker(queue)
    assert not taker.done.wait(0.2), "take() returned although the gate is closed"
    assert len(queue) == 1
    queue.close()
    taker.join()
    assert isinstance(taker.error, QueueClosed)
    assert len(queue) == 1


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
    taker = Taker(queue)
    assert not taker.done.wait(0.2)  # latched: nothing is taken
    queue.set_latched(False)
    assert taker.done.wait(5) and taker.task is first
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
