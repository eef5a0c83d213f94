"""The thread that owns the RunEngine: runs the tasks the IOC hands over, one at a time."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any

from bluesky import RunEngine
from bluesky.run_engine import RunEngineResult
from bluesky.utils import RunEngineInterrupted
from pydantic import PydanticSchemaGenerationError, TypeAdapter
from pydantic_core import PydanticSerializationError

from ..messages import (
    DeviceProgress,
    DocumentEmitted,
    RunProgressed,
    StateChanged,
    TaskEnded,
    TaskStarted,
    WorkerReport,
)
from ..models import PlanReturn, Task, TaskOutcome, TaskResult, WorkerState
from .context import PlanContext
from .failures import describe_failure
from .progress import ProgressWatcher
from .suspenders import Suspenders
from .tracker import RunTracker

log = logging.getLogger(__name__)

Send = Callable[[WorkerReport], None]
Step = Callable[[], Any]  # RE(plan), RE.resume, RE.stop...: a RunEngineResult
NO_CHECKPOINT = "could not pause: the plan has no checkpoint, so bluesky aborted it"


def make_run_engine() -> RunEngine:
    """A RunEngine fit for a server: no signal handlers, results returned, and no point
    taken twice after a pause or a suspension (`rewind_past_saved_points`).
    """
    run_engine = RunEngine(context_managers=[], call_returns_result=True)
    rewind_past_saved_points(run_engine)
    return run_engine


def rewind_past_saved_points(run_engine: RunEngine) -> None:
    """Make every saved event a point the RunEngine rewinds to, as to a checkpoint.

    On resume (after a pause or a suspension) bluesky replays the messages since the last
    `checkpoint`. A plan that reads and then sleeps before its next checkpoint (`count`
    with `delay`) would read its last point again, under the same `seq_num`: the event
    is emitted twice. Forgetting the messages up to each `save` replays only what follows
    it. Nothing else of a checkpoint is done (no deferred pause is taken there), nothing
    happens while another run is bundling an event, and a plan that cleared its
    checkpoint stays one that cannot be rewound.
    """
    save = run_engine._command_registry["save"]

    async def save_then_forget(msg: Any) -> Any:
        result = await save(msg)
        if not any(bundler.bundling for bundler in run_engine._run_bundlers.values()):
            run_engine._reset_checkpoint_state_meth()
        return result

    run_engine.register_command("save", save_then_forget)


class Engine:
    """Runs each task handed to it (`run`) to its end on the RunEngine, reporting through `send`.

    A paused task keeps the engine thread: it waits for the next step (`continue_with`:
    resume, stop, abort or halt), which only this thread may run.
    """

    def __init__(
        self,
        run_engine: RunEngine,
        context: PlanContext,
        send: Send,
        suspenders: Suspenders | None = None,
    ) -> None:
        self._run_engine = run_engine
        self._context = context
        self._send = send
        self._suspenders = suspenders
        self._tracker = RunTracker(lambda progress: send(RunProgressed(progress)))
        self._inbox: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._steps: queue.SimpleQueue[Step] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="run-engine", daemon=True)
        self._ending: tuple[TaskResult, str] | None = None
        self._start_gate = threading.Lock()  # the RunEngine call begins, or a task is ended
        self._engine_started = False
        self.current: Task | None = None
        run_engine.state_hook = self._state_changed  # type: ignore[assignment]
        watcher = ProgressWatcher(lambda views: send(DeviceProgress(views)))
        run_engine.waiting_hook = watcher  # type: ignore[assignment]
        run_engine.subscribe(self._document)
        if suspenders is not None:
            run_engine.msg_hook = suspenders.on_message  # type: ignore[assignment]

    @property
    def run_engine(self) -> RunEngine:
        """The RunEngine this engine owns."""
        return self._run_engine

    @property
    def state(self) -> WorkerState:
        """The RunEngine's state."""
        return WorkerState(str(self._run_engine.state).upper())

    def start(self) -> None:
        """Start taking tasks."""
        self._thread.start()

    def run(self, task: Task) -> None:
        """Run `task` once the one before it has ended."""
        self._inbox.put(task)

    def continue_with(self, step: Step) -> None:
        """Hand the paused task's next step (`RE.resume`, `RE.stop`, ...) to the engine thread."""
        self._steps.put(step)

    @contextmanager
    def ending(self, result: TaskResult, reason: str) -> Iterator[bool]:
        """Record how the current task is to end; yield whether its RunEngine call has begun
        (if so, the caller then ends it with stop/abort/halt). A task whose call has not
        begun never runs: the engine ends it as recorded.
        """
        with self._start_gate:
            self._ending = (result, reason)
            yield self._engine_started

    def _serve(self) -> None:
        while (task := self._inbox.get()) is not None:
            with self._start_gate:
                self._ending, self.current = None, task
            outcome = self._run(task)
            self.current, self._engine_started = None, False
            self._send(TaskEnded(outcome))

    def _run(self, task: Task) -> TaskOutcome:
        started = time.time()
        self._send(TaskStarted(task, started))
        self._tracker.begin_task()
        try:
            plan = self._context.build_plan(task.name, task.params)
            step: Step = partial(self._run_engine, plan, **task.run_metadata())
            with self._start_gate:
                if self._ending is not None:  # ended before it began: it never runs
                    return self._outcome(task, started, *self._ended_by_operator())
                self._engine_started = True
            while True:
                try:
                    result = step()
                    break
                except RunEngineInterrupted:
                    if self._run_engine.state != "paused":  # ended while running
                        return self._outcome(task, started, *self._ended_by_operator())
                    step = self._steps.get()
        except Exception as error:  # the plan's own failure: record it, go on with the next
            failure = describe_failure(error, self._context.devices)
            log.warning("task %s failed: %s", task.task_id, failure)
            return self._outcome(task, started, TaskResult.FAILED, failure)
        if result.interrupted and self._ending is not None:
            return self._outcome(task, started, *self._ended_by_operator())
        return self._outcome(task, started, *_result_of(result), returned=plan_return(result.plan_result))

    def _ended_by_operator(self) -> tuple[TaskResult, str]:
        # Interrupted with no stop/abort/halt asked for: a pause the plan could not take.
        result, reason = self._ending or (TaskResult.ABORTED, NO_CHECKPOINT)
        return result, f"{result}: {reason}"

    def _outcome(
        self, task: Task, started: float, result: TaskResult, error: str | None = None,
        returned: PlanReturn | None = None,
    ) -> TaskOutcome:  # fmt: skip
        return TaskOutcome(
            task=task,
            result=result,
            started=started,
            finished=time.time(),
            run_uids=tuple(self._tracker.run_uids),
            error=error,
            returned=returned or PlanReturn(),
        )

    def _document(self, name: str, doc: dict[str, Any]) -> None:
        self._tracker(name, doc)
        self._send(DocumentEmitted(name, doc))

    def _state_changed(self, new: str, old: str) -> None:
        if self._suspenders is not None:  # a suspension is told before the state it brings
            self._suspenders.on_state(new, old)
        self._send(StateChanged(WorkerState(new.upper())))


def plan_return(value: Any) -> PlanReturn:
    """What a plan returned, as blueapi's `TaskResult.from_result` sees it: its type's name
    and its JSON form, or None where pydantic has none.
    """
    kind: Any = type(value)
    try:
        as_json = _adapter(kind).dump_python(value, mode="json")
    except (PydanticSchemaGenerationError, PydanticSerializationError):
        as_json = None
    return PlanReturn(type(value).__name__, as_json)


@lru_cache(maxsize=64)  # a plan returns one or two types
def _adapter(kind: Any) -> TypeAdapter[Any]:
    """The adapter pydantic builds for the type `kind`, built once (each build ~0.1 ms)."""
    return TypeAdapter(kind)


def _result_of(result: RunEngineResult) -> tuple[TaskResult, str | None]:
    """The task result and error text of a RunEngine call that returned on its own."""
    if result.exit_status == "success":
        return TaskResult.SUCCESS, None
    if result.exit_status == "abort":
        return TaskResult.ABORTED, f"Aborted: {result.reason or 'the RunEngine aborted the plan'}"
    return TaskResult.FAILED, result.reason or result.exit_status

