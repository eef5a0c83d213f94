"""The IOC side of the worker: requests in, the queue and its journal, tasks out to the
worker process, reports out to the views. Nothing here knows Channel Access or bluesky.

Threads: the caller's (the CA loop) for requests and commands; the worker's reader
thread, which records what the worker reports. The next pending task is handed to the
worker by whichever thread lets it start (its acceptance, the end of the task before it,
the queue set to Run), with no thread of its own in between. Views get `Report`s from any
of these threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

from ..config import Settings
from ..errors import RequestError
from ..identity import NOBODY, Writer
from ..messages import (
    BusChanged,
    Catalog,
    CatalogChanged,
    DocumentEmitted,
    QueueChanged,
    Report,
    ShownState,
    StateChanged,
    StoreFailed,
    Suspended,
    TaskFinished,
    TaskRejected,
    TaskRemoved,
    TaskSubmitted,
    Validated,
    WorkerChanged,
    WorkerReport,
)
from ..models import (
    FAILURES,
    BusStatus,
    Command,
    Task,
    TaskOutcome,
    TaskRequest,
    TaskResult,
    WorkerState,
    describe_exception,
    parse_request,
)
from .bus import OFF, BusView, Publisher
from .commands import Commands, holding
from .open_runs import ABORT, FAIL, OpenRuns
from .permissions import PermissionRefused
from .policy import Policy
from .queue import TaskQueue
from .runstore import DocumentWriter, RunFiles, Sink
from .store import Recovery, StateStore, StoreError, fresh_copy
from .supervisor import Batch, Supervisor

log = logging.getLogger(__name__)

Listener = Callable[[Report], None]
SHUT_DOWN = (TaskResult.ABORTED, "the IOC was shut down")
SHUT_DOWN_ERROR = f"{SHUT_DOWN[0]}: {SHUT_DOWN[1]}"  # the error a task the shutdown ended has
# Why the queue is on hold (STATUS: "queue on Hold: <why>"), besides the task that holds it.
OPERATOR_HOLD = "set by an operator"
PENDING_AT_START = "tasks were pending when the IOC started"
BEAT = 1.0  # seconds between notes in the state database that the IOC is alive
ENDED_BY_COMMAND = (TaskResult.STOPPED, TaskResult.ABORTED, TaskResult.HALTED)
BUS_FLUSH = 2.0  # seconds the message bus has at shutdown to deliver what is left


class PendingRequest:
    """A request being validated: `future` gives its task, or its `RequestError`.
    `expire` refuses it if the worker has not answered yet (the answer is then ignored).
    """

    def __init__(self, rejected: Callable[[RequestError], RequestError]) -> None:
        self.future: Future[Task] = Future()
        self._rejected = rejected
        self._claim = threading.Lock()

    def settle(self, accept: Callable[..., Task], *args: Any) -> None:
        """Accept the request with `accept(*args)` unless it has expired."""
        if self._claim.acquire(blocking=False):
            try:
                self.future.set_result(accept(*args))
            except RequestError as error:
                self.future.set_exception(self._rejected(error))
            except Exception as error:  # a fault of the IOC's: the request still gets an answer
                log.exception("a request could not be taken")
                fault = RequestError(f"the IOC could not take the request: {describe_exception(error)}")
                self.future.set_exception(self._rejected(fault))

    def expire(self, waited: float) -> None:
        """Refuse the request: the worker did not answer within `waited` seconds."""
        if self._claim.acquire(blocking=False):
            error = RequestError(
                f"the worker did not validate the request within {waited:g} s"
                " (a plan may be holding it); try again"
            )
            self.future.set_exception(self._rejected(error))


class WorkerService:
    """Validates (through the worker) and queues requests, runs them one at a time on the
    worker process, records every outcome, carries out commands; tells listeners.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: StateStore,
        run_store: Sequence[Sink] = (),
        run_files: RunFiles | None = None,
        policy: Policy | None = None,
        bus: Publisher | None = None,
    ) -> None:
        """A service over `store`: pending tasks found there wait, with the queue on hold.
        Every document goes to each of the `run_store` sinks, on a writer thread of its own;
        blueapi's events go to the message `bus`, if any.
        The runs of a task a crash interrupted get their stop documents in `run_files`.
        `policy` holds the access and permission rules (default: everything allowed).
        """
        self._settings = settings
        self.policy = policy or Policy()
        self._store = store
        self._listeners: list[Listener] = []
        self._batches: list[Batch] = []
        self.recovery = store.recover()
        if self.recovery.interrupted is not None and run_files is not None:
            _close_cut_short(run_files, self.recovery.interrupted)
        self.cut_short = _cut_short(self.recovery)
        self.queue = TaskQueue(
            self._queue_changed,
            enabled=not self.recovery.pending,  # nothing moves until an operator says Run
            held_by=(
                held_since(self.cut_short, f"was {_cause(self.cut_short)}") if self.cut_short
                else PENDING_AT_START
            ),
            journal=store,
            pending=self.recovery.pending,
        )
        self.supervisor = Supervisor(
            settings,
            on_report=self._worker_report,
            on_task_ended=self._task_ended,
            on_worker=self._worker_changed,
            on_catalog=lambda catalog: self._tell(CatalogChanged(catalog)),
            on_load_failed=self._load_failed,
            scan_id=store.scan_id,
            batch=self._batch,
        )
        self._runner_lock = threading.Lock()  # held from a task's start to its end
        self.commands = Commands(
            self.supervisor,
            set_latched=self._set_latched,
            idle=self._idle,
            halt_timeout=settings.halt_timeout,
            policy=self.policy,
        )
        # One writer thread per sink: a slow Tiled server never holds up the run files.
        self._writers = [DocumentWriter([sink], self._store_failed) for sink in run_store]
        self._open_runs = OpenRuns()  # the runs of the running task that have not stopped
        self._worker_state = WorkerState.UNKNOWN
        self._suspended = False  # a suspender holds the running task
        self._shutting_down = False
        self._stopped = threading.Event()
        self._bus = bus
        self.bus_health = OFF if bus is None else BusChanged(BusStatus.DISCONNECTED, 0)
        if bus is not None:
            self.subscribe(BusView(bus.publish))

    @property
    def catalog(self) -> Catalog:
        """The plans and devices of the current worker (empty until one is up)."""
        return self.supervisor.catalog or Catalog()

    @property
    def state(self) -> WorkerState:
        """The state `STATE` shows: the panic latch, no worker, `SUSPENDING` while a
        suspender holds the running task (the RunEngine says `RUNNING` then), or the
        RunEngine's state.
        """
        if self.commands.panicked:
            return WorkerState.PANICKED
        if not self.supervisor.pid:
            return WorkerState.UNKNOWN
        if self._suspended and self._worker_state is WorkerState.RUNNING:
            return WorkerState.SUSPENDING
        return self._worker_state

    def subscribe(self, listener: Listener, *, batch: Batch | None = None) -> None:
        """Report to `listener` from now on; `batch()`, if given, is open while the reports
        of one message of the worker's are told (the listener may act once per message).
        """
        self._listeners.append(listener)
        if batch is not None:
            self._batches.append(batch)

    @contextmanager
    def _batch(self) -> Iterator[None]:
        """Open every listener's `batch()` (on the reader thread, around one message)."""
        with ExitStack() as stack:
            for batch in self._batches:
                stack.enter_context(batch())
            yield

    def start(self) -> Future[Catalog]:
        """Start the worker process; the future gives the first worker's catalog, or fails
        with the reason it could not load.
        """
        if self._bus is not None:
            self._bus.start(self._bus_changed)
        loaded = self.supervisor.start()
        self._start_next()
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()
        return loaded

    def submit(self, text: str, writer: Writer = NOBODY) -> PendingRequest:
        """Validate the request `text` of `writer` (through the worker), check that the
        permissions let them make it, and queue it; raise `RequestError` at once if it is
        refused without asking the worker.
        """
        if self._shutting_down:
            raise self._rejected(RequestError("the IOC is shutting down: no new requests"))
        try:
            request = parse_request(text)
        except RequestError as error:
            raise self._rejected(error) from None
        pending = PendingRequest(self._rejected)
        validated = self.supervisor.validate(request.name, request.params)
        validated.add_done_callback(lambda done: self._settle(pending, request, done, writer))
        return pending

    def _settle(
        self, pending: PendingRequest, request: TaskRequest, validated: Future[Validated], writer: Writer
    ) -> None:
        """Answer `pending` with the validated request queued, or taken to start at once
        (or refused); then start it, or the next pending task if that may start now.
        """
        taken: list[Task] = []
        pending.settle(self._accept, request, validated, writer, taken)
        self._start_next(*taken)

    def _accept(
        self, request: TaskRequest, validated: Future[Validated], writer: Writer, taken: list[Task]
    ) -> Task:
        """Queue the validated request (journaled first); raise `RequestError` if refused.
        If no task runs and none is pending, the task is taken at once (its start journaled
        in place of its queueing, one write less before it runs) and added to `taken`, with
        the runner lock held for it.
        """
        answer = validated.result()
        group = self.policy.authorize(writer, request.name, answer.devices)
        task = Task.create(request, answer.params or {}, writer=writer, user_group=group, devices=answer.devices)
        runner_free = self._runner_lock.acquire(blocking=False)
        try:
            if self.queue.append(task, take=runner_free):
                taken.append(task)
        except StoreError as error:
            raise RequestError(f"cannot keep the request: {error}") from None
        finally:
            if runner_free and not taken:
                self._runner_lock.release()
        self._tell(TaskSubmitted(task))
        return task

    def remove(self, task_id: str, writer: Writer = NOBODY) -> Task:
        """Take the pending task `task_id` (or the one whose id starts with it) off the queue;
        `NotPending` if no single pending task fits.
        """
        task = self.queue.remove(task_id)
        log.info("task %s removed by %s", task.task_id, writer)
        self._tell(TaskRemoved(task))
        return task

    def clear(self, writer: Writer = NOBODY) -> list[Task]:
        """Take every pending task off the queue."""
        removed = self.queue.clear()
        if removed:
            log.info("%d pending task(s) removed by %s", len(removed), writer)
        for task in removed:
            self._tell(TaskRemoved(task))
        return removed

    def set_enabled(self, enabled: bool, writer: Writer = NOBODY) -> None:
        """`writer` lets the pending tasks run (`enabled`), or holds them (a queue on hold
        already keeps the reason it has).
        """
        log.info("queue set to %s by %s", "Run" if enabled else "Hold", writer)
        if enabled or self.queue.enabled:  # a queue on hold already keeps the reason it has
            self.queue.set_enabled(enabled, OPERATOR_HOLD)
        self._start_next()

    def command(self, command: Command, writer: Writer = NOBODY) -> Future[None]:
        """Carry out `command` of `writer`; the future completes when the worker has
        reached its target state, or fails with `CommandRefused`.
        """
        log.info("%s written by %s", command, writer)
        return self.commands.execute(command, writer)

    def shutdown(self, timeout: float) -> None:
        """Take no new requests; end the running task as ABORT would, record it, put a copy
        at the head of the queue; stop the worker. After `timeout` s, stop anyway: the
        task is then recorded as after a crash when the IOC starts again.
        """
        self._shutting_down = True
        self._stopped.set()
        self.queue.close()
        ended = self.supervisor.ended_future()
        if ended is not None:
            self.supervisor.command(Command.ABORT, SHUT_DOWN)
            try:
                ended.result(timeout)
            except Exception:
                log.warning("the running task did not end within %g s of the shutdown", timeout)
        self.supervisor.close()
        if self._bus is not None:
            self._bus.close(BUS_FLUSH)
        for writer in self._writers:
            writer.close()
        self._store.close()

    # --- starting tasks -------------------------------------------------------------------
    def _start_next(self, taken: Task | None = None) -> None:
        """Hand the next pending task to the worker if none runs and the queue lets one
        start (any thread; called wherever either may have changed), or the task `taken`
        already, for which the runner lock is held. Whoever holds the runner lock calls
        this again once they let it go, so no task is left waiting.
        """
        while taken is not None or self._runner_lock.acquire(blocking=False):
            try:
                if self._start(taken or self.queue.take()):
                    return
            except Exception as error:  # the start cannot be journaled, or a fault of the IOC's
                self._runner_lock.release()
                if isinstance(error, StoreError):
                    reason = f"cannot start the next task: {error}"
                else:
                    log.exception("could not start the next task")
                    reason = f"cannot start the next task: {describe_exception(error)}"
                self._store_failed(reason)
                self.queue.set_enabled(False, reason)
                return
            taken = None
            self._runner_lock.release()
            if not self.queue.ready():  # else it became ready while the lock was held here
                return

    def _start(self, task: Task | None) -> bool:
        """Hand `task` to the worker (runner lock held); False if there is none, or if the
        rules, which may have changed since it was queued, now refuse it (recorded so).
        """
        if task is None:
            return False
        try:
            self.policy.recheck(task)
        except PermissionRefused as error:
            now = time.time()
            refused = TaskOutcome(task, TaskResult.FAILED, now, now, error=f"PermissionRefused: {error}")
            self._task_ended(refused, died=False)
            return False
        self.supervisor.run(task).add_done_callback(self._task_done)
        return True

    def _task_done(self, ended: Future[TaskOutcome]) -> None:
        """The running task's end is recorded (`_task_ended`): start the next one."""
        self._runner_lock.release()
        self._start_next()

    @contextmanager
    def _idle(self) -> Iterator[bool]:
        """Yield whether no task runs (nor another RELOAD); none starts meanwhile."""
        with holding(self._runner_lock) as idle:
            yield idle
        self._start_next()

    # --- what the worker reports (its reader thread) ---------------------------------------
    def _worker_report(self, report: WorkerReport) -> None:
        if isinstance(report, StateChanged):
            self._worker_state = report.state
            self._tell(ShownState(self.state))
            return
        if isinstance(report, Suspended):
            self._suspended = bool(report.reason)
            self._tell(report)
            self._tell(ShownState(self.state))
            return
        if isinstance(report, DocumentEmitted):
            self._store_document(report)
            running = self.supervisor.running
            if report.name == "start" and running is not None:
                self._keep(self._store.run_opened, running.task_id, report.doc["uid"],
                           int(report.doc.get("scan_id") or 0))
        self._tell(report)  # type: ignore[arg-type]

    def _task_ended(self, outcome: TaskOutcome, died: bool) -> None:
        """Record how the running task ended; a task cut short by a worker's death or by the
        shutdown goes again, first in the queue. A task whose worker was killed or died keeps
        the uids of the runs it opened, as after a crash.
        """
        again = died or (self._shutting_down and outcome.result is TaskResult.ABORTED)
        self._close_open_runs(outcome)
        ender = self.commands.ended_by(outcome.task.task_id)
        if ender is not None and outcome.result in ENDED_BY_COMMAND:
            outcome = replace(outcome, ended_by=str(ender))
        try:
            if not outcome.run_uids:
                outcome = replace(outcome, run_uids=self._store.run_uids(outcome.task.task_id))
            self._store.finish(outcome)
            if again:
                self.queue.put_first(fresh_copy(outcome.task))
        except StoreError as error:
            self._store_failed(f"cannot record the end of task {outcome.task.task_id}: {error}")
        if died or (outcome.result in FAILURES and not self._settings.continue_on_error):
            self.queue.set_enabled(False, held_since(outcome, f"was {outcome.error}" if died else None))
        self._tell(TaskFinished(outcome))

    def _store_document(self, report: DocumentEmitted) -> None:
        self._open_runs(report.name, report.doc)
        for writer in self._writers:
            writer(report.name, report.doc)

    def _close_open_runs(self, outcome: TaskOutcome) -> None:
        """Stop the runs the task left open (its worker died or was killed), as bluesky
        would have: `exit_status` abort for a halt or abort, fail otherwise.
        """
        exit_status = ABORT if outcome.result in (TaskResult.ABORTED, TaskResult.HALTED) else FAIL
        reason = outcome.error or "the task ended without stopping this run"
        for stop in self._open_runs.close(reason, exit_status):
            report = DocumentEmitted("stop", stop)
            self._store_document(report)
            self._tell(report)

    def _keep(self, write: Callable[..., None], *args: Any) -> None:
        """Write to the state database; a failure is reported, never raised."""
        try:
            write(*args)
        except StoreError as error:
            self._store_failed(str(error))

    def _beat(self) -> None:
        """Note every second that the IOC is alive (end time of a task a crash cuts short)."""
        while not self._stopped.wait(BEAT):
            try:
                self._store.beat()
            except StoreError as error:
                log.warning("cannot note the heartbeat: %s", error)

    def _worker_changed(self, pid: int) -> None:
        self._worker_state = WorkerState.IDLE if pid else WorkerState.UNKNOWN
        if self._suspended:  # the worker that was held is gone
            self._suspended = False
            self._tell(Suspended(""))
        self._tell(WorkerChanged(pid, self.supervisor.restarts))
        self._tell(ShownState(self.state))

    def _load_failed(self, error: str, restarting: bool) -> None:
        self._store_failed(f"the new worker process could not load: {error}")

    def _set_latched(self, latched: bool) -> None:
        self.queue.set_latched(latched)
        self._tell(ShownState(self.state))
        self._start_next()

    def _queue_changed(self, tasks: list[Task], enabled: bool) -> None:
        self._tell(QueueChanged(tasks, enabled, self.queue.held_by))

    def _bus_changed(self, health: BusChanged) -> None:
        self.bus_health = health
        self._tell(health)

    def _store_failed(self, error: str) -> None:
        log.error("%s", error)
        self._tell(StoreFailed(error))

    def _rejected(self, error: RequestError) -> RequestError:
        self._tell(TaskRejected(str(error)))
        return error

    def _tell(self, report: Report) -> None:
        for listener in self._listeners:
            try:
                listener(report)
            except Exception:  # a listener's fault never stops the service
                log.exception("a listener failed on %r", report)


def _close_cut_short(run_files: RunFiles, interrupted: TaskOutcome) -> None:
    """Give the runs of the `interrupted` task that have no stop document theirs, written
    when the IOC was last known alive; a run file that cannot be read is logged.
    """
    for uid in interrupted.run_uids:
        try:
            run_files.close_cut_short(uid, interrupted.error or "", interrupted.finished)
        except (OSError, ValueError) as error:
            log.error("run store: cannot close run %s: %s: %s", uid, type(error).__name__, error)


def held_since(outcome: TaskOutcome, cause: str | None = None) -> str:
    """Why the queue is on hold after `outcome`: its task, and `cause` or how it ended."""
    return f"task {outcome.task.task_id[:8]} ({outcome.task.name}) {cause or f'ended {outcome.result}'}"


def _cut_short(recovery: Recovery) -> TaskOutcome | None:
    """The task the IOC's last stop cut short (a crash, or a shutdown that aborted it),
    if its copy waits in the queue.
    """
    if recovery.interrupted is not None:
        return recovery.interrupted
    newest = recovery.history[0] if recovery.history else None
    if recovery.pending and newest is not None and newest.error == SHUT_DOWN_ERROR:
        return newest
    return None


def _cause(outcome: TaskOutcome) -> str:
    """How a stop of the IOC cut `outcome`'s task short."""
    return "aborted by the shutdown of the IOC" if outcome.error == SHUT_DOWN_ERROR else str(outcome.error)
