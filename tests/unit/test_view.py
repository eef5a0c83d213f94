"""The view the PVs show, driven by reports alone: no Channel Access, no worker."""

import asyncio
import time

from ioc.messages import (
    QueueChanged,
    ShownState,
    StoreFailed,
    TaskFinished,
    TaskRemoved,
    TaskStarted,
)
from ioc.models import Task, TaskOutcome, TaskResult, WorkerState, parse_request
from ioc.service.view import HISTORY_SHOWN, WorkerView


def task(name: str = "count") -> Task:
    return Task.create(parse_request(f'{{"name": "{name}"}}'), {})


def ended(task_: Task, result: TaskResult, error: str | None = None) -> TaskFinished:
    now = time.time()
    return TaskFinished(TaskOutcome(task_, result, now - 1, now, error=error))


def test_status_line_follows_state_queue_and_running_task() -> None:
    view = WorkerView()
    view.apply(ShownState(WorkerState.IDLE))
    view.apply(QueueChanged([task(), task()], enabled=False))
    assert view.status() == ("idle, 2 queued; queue on Hold", False)
    running = task("scan")
    view.apply(TaskStarted(running, time.time()))
    view.apply(ShownState(WorkerState.RUNNING))
    view.apply(QueueChanged([task()], enabled=True))
    assert view.status() == (f"running scan (task {running.task_id[:8]}) 0%", False)


def test_status_says_why_the_queue_is_on_hold_until_it_runs_again() -> None:
    view = WorkerView()
    view.apply(ShownState(WorkerState.IDLE))
    failed = task("fail")
    view.apply(ended(failed, TaskResult.FAILED, "ValueError: boom"))
    held_by = f"task {failed.task_id[:8]} (fail) ended Failed"
    view.apply(QueueChanged([task()], enabled=False, held_by=held_by))
    line, alarm = view.status()
    assert alarm and line == f"idle, 1 queued; queue on Hold: {held_by}; error: {failed.task_id}: ValueError: boom"
    view.errors.clear()
    assert view.status() == (f"idle, 1 queued; queue on Hold: {held_by}", False)
    running = task("scan")
    view.apply(TaskStarted(running, time.time()))
    view.apply(ShownState(WorkerState.RUNNING))
    view.apply(QueueChanged([], enabled=False, held_by="set by an operator"))
    assert view.status()[0].endswith("0%; queue on Hold: set by an operator")
    view.apply(QueueChanged([], enabled=True))
    assert "Hold" not in view.status()[0]


def test_the_task_the_last_stop_cut_short_is_the_active_error_after_a_restart() -> None:
    view = WorkerView()
    now = time.time()
    aborted = TaskOutcome(task(), TaskResult.ABORTED, now - 1, now, error="Aborted: the IOC was shut down")
    view.recovered([aborted], aborted)
    assert view.errors.active == view.errors.latest == f"{aborted.task.task_id}: Aborted: the IOC was shut down"
    assert view.errors.count == 1 and view.last == aborted


def test_a_stop_is_no_error_and_a_refusal_does_not_replace_the_active_failure() -> None:
    view = WorkerView()
    stopped, aborted = task(), task()
    view.apply(ended(stopped, TaskResult.STOPPED, "Stopped: stopped by STOP"))
    assert view.errors.count == 0 and view.errors.active is None
    view.apply(ended(aborted, TaskResult.ABORTED, "Aborted: aborted by ABORT"))
    view.errors.record("RESUME: CommandRefused: nothing is paused (state IDLE)")
    line, alarm = view.status()
    assert alarm and line.endswith(f"; error: {aborted.task_id}: Aborted: aborted by ABORT")
    assert view.errors.latest.startswith("RESUME: CommandRefused")
    assert view.errors.count == 2


def test_success_clears_the_failure_unless_its_documents_were_lost() -> None:
    view = WorkerView()
    view.apply(ended(task(), TaskResult.FAILED, "ValueError: boom"))
    second = task()
    view.apply(TaskStarted(second, time.time()))
    view.apply(StoreFailed("run store: OSError: disk full"))
    view.apply(ended(second, TaskResult.SUCCESS))
    assert view.errors.active == "run store: OSError: disk full"
    view.apply(ended(task(), TaskResult.SUCCESS))
    assert view.errors.active is None


def test_history_window_and_the_last_task() -> None:
    view = WorkerView()
    tasks = [task() for _ in range(HISTORY_SHOWN + 5)]
    for each in tasks:
        view.apply(ended(each, TaskResult.SUCCESS))
    shown = view.newest_first()
    assert len(shown) == HISTORY_SHOWN and shown[0].task is tasks[-1]
    assert view.last is not None and view.last.task is tasks[-1]

    async def ends() -> list[bool]:  # a RUN of a task in the window is answered at once
        return [view.task_end(each.task_id).done() for each in tasks]

    assert asyncio.run(ends()) == [False] * 5 + [True] * HISTORY_SHOWN


def test_run_waits_end_with_the_outcome_or_none_when_removed() -> None:
    async def scenario() -> None:
        view = WorkerView()
        done, removed = task(), task()
        done_end, removed_end = view.task_end(done.task_id), view.task_end(removed.task_id)
        view.apply(TaskRemoved(removed))
        assert removed_end.result() is None
        assert view.errors.latest == f"{removed.task_id}: Removed: taken off the queue before it ran"
        report = ended(done, TaskResult.SUCCESS)
        view.apply(report)
        assert not done_end.done()  # released only once the PVs are written
        view.release(report.outcome)
        assert done_end.result() is report.outcome

    asyncio.run(scenario())


def test_a_run_that_asks_after_its_task_ended_gets_the_outcome_at_once() -> None:
    async def scenario() -> None:
        view = WorkerView()
        quick = task()
        report = ended(quick, TaskResult.SUCCESS)
        view.apply(report)  # the task ran and ended before its RUN putter asked
        view.release(report.outcome)
        end = view.task_end(quick.task_id)
        assert end.done() and end.result() is report.outcome

    asyncio.run(scenario())
