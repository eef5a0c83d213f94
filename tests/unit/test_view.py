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
    assert view.status() == ("idle, 2 queued (queue on hold)", False)
    running = task("scan")
    view.apply(TaskStarted(running, time.time()))
    view.apply(ShownState(WorkerState.RUNNING))
    assert view.status() == (f"running scan (task {running.task_id[:8]}) 0%", False)


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
