"""Why the queue is on hold, as the service tells it, and a request that always gets an
answer. The service is built on a state database but not started: no worker process."""

from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from ioc.config import Settings
from ioc.errors import RequestError
from ioc.models import Task, TaskOutcome, TaskResult, parse_request
from ioc.service import WorkerService
from ioc.service.store import INTERRUPTED, StateStore, fresh_copy
from ioc.service.worker_service import PendingRequest, held_since


def make_task(name: str = "count") -> Task:
    return Task.create(parse_request(f'{{"name": "{name}"}}'), {})


def ended(task: Task, result: TaskResult, error: str | None = None) -> TaskOutcome:
    return TaskOutcome(task, result, 1.0, 2.0, error=error)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def service_on(state_dir: Path) -> Iterator[WorkerService]:
    store = StateStore.in_directory(state_dir)
    try:
        yield WorkerService(Settings(devices=Path("unused.yaml"), state_dir=state_dir), store=store)
    finally:
        store.close()


def restarted(state_dir: Path) -> WorkerService:
    """The service of an IOC started on `state_dir` (its database closed at once)."""
    services = service_on(state_dir)
    service = next(services)
    services.close()
    return service


def test_held_since_names_the_task_and_how_it_ended() -> None:
    task = make_task("scan")
    assert held_since(ended(task, TaskResult.HALTED)) == f"task {task.task_id[:8]} (scan) ended Halted"
    died = ended(task, TaskResult.FAILED, "interrupted: the worker process died (signal SIGKILL)")
    assert held_since(died, f"was {died.error}") == (
        f"task {task.task_id[:8]} (scan) was interrupted: the worker process died (signal SIGKILL)"
    )


def test_after_a_shutdown_the_aborted_task_holds_the_queue(state_dir: Path) -> None:
    store = StateStore.in_directory(state_dir)
    task = make_task("sleep")
    store.start(task)
    store.finish(ended(task, TaskResult.ABORTED, "Aborted: the IOC was shut down"))
    store.prepend(fresh_copy(task))
    store.close()
    service = restarted(state_dir)
    assert not service.queue.enabled
    assert service.queue.held_by == f"task {task.task_id[:8]} (sleep) was aborted by the shutdown of the IOC"
    assert service.cut_short is not None and service.cut_short.task == task


def test_after_a_crash_the_interrupted_task_holds_the_queue(state_dir: Path) -> None:
    store = StateStore.in_directory(state_dir)
    task = make_task("scan")
    store.start(task)
    store.close()
    service = restarted(state_dir)
    assert service.queue.held_by == f"task {task.task_id[:8]} (scan) was {INTERRUPTED}"
    assert service.cut_short is not None and service.cut_short.error == INTERRUPTED


def test_pending_tasks_alone_hold_the_queue_saying_so(state_dir: Path) -> None:
    store = StateStore.in_directory(state_dir)
    store.append(make_task())
    store.close()
    service = restarted(state_dir)
    assert service.queue.held_by == "tasks were pending when the IOC started"
    assert service.cut_short is None


def test_an_operator_hold_keeps_the_reason_of_a_queue_held_already(state_dir: Path) -> None:
    for service in service_on(state_dir):
        assert service.queue.enabled
        service.set_enabled(False)
        assert service.queue.held_by == "set by an operator"
        service.queue.set_enabled(False, "task 1234abcd (fail) ended Failed")
        service.set_enabled(False)
        assert service.queue.held_by == "task 1234abcd (fail) ended Failed"
        service.set_enabled(True)
        assert service.queue.enabled and service.queue.held_by == ""


def test_a_request_the_ioc_fails_to_take_is_refused_not_left_hanging() -> None:
    """Whatever goes wrong in accepting a request, its future gets an answer."""
    told: list[str] = []

    def rejected(error: RequestError) -> RequestError:
        told.append(str(error))
        return error

    def accept(validated: Future) -> Task:
        raise RecursionError("maximum recursion depth exceeded")

    pending = PendingRequest(rejected)
    pending.settle(accept, Future())
    with pytest.raises(RequestError) as refused:
        pending.future.result(0)
    assert str(refused.value) == "the IOC could not take the request: RecursionError: maximum recursion depth exceeded"
    assert told == [str(refused.value)]
