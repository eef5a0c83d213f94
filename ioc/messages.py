"""The typed messages between the IOC process and the worker process, one class per
report or command. Both processes import this module: no bluesky, no caproto here.

Worker → IOC: `WorkerReport`. IOC → worker: `WorkerCommand`. What the IOC side tells
its views (the PVs, tests) is `Report`: the worker's reports it passes on plus its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .config import Settings
from .models import BusStatus, Command, RunProgress, Task, TaskOutcome, TaskResult, WorkerState


@dataclass(frozen=True)
class Catalog:
    """What a worker can run, and on what: the content of `PLANS`, `PLANS:NAMES`, `DEVICES`,
    and the suspenders of its device file (`SUSPENDERS`).
    """

    plans: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    suspenders: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plan_names(self) -> list[str]:
        """The plan names, in catalog order."""
        return [plan["name"] for plan in self.plans]

    @property
    def unavailable(self) -> list[str]:
        """The names of the devices that could not be built or connected."""
        return [device["name"] for device in self.devices if not device.get("available", True)]

    def summary(self) -> str:
        """What was loaded, for the log: `n plans, n devices (n unavailable: ...)`."""
        loaded = f"{len(self.plans)} plans, {len(self.devices)} devices"
        down = self.unavailable
        if down:
            loaded += f" ({len(down)} unavailable: {', '.join(down)}; RELOAD connects them once they are up)"
        return loaded


# --- worker → IOC ---------------------------------------------------------------------
@dataclass(frozen=True)
class Ready:
    """The worker loaded its plans and devices and takes commands."""

    pid: int
    catalog: Catalog


@dataclass(frozen=True)
class LoadFailed:
    """The worker could not load its plans or device file; it exits."""

    error: str


@dataclass(frozen=True)
class StateChanged:
    """The RunEngine's state changed."""

    state: WorkerState


@dataclass(frozen=True)
class TaskStarted:
    """A task left the queue and is about to run."""

    task: Task
    started: float


@dataclass(frozen=True)
class RunProgressed:
    """A run of the current task opened, moved on or closed."""

    progress: RunProgress


@dataclass(frozen=True)
class DocumentEmitted:
    """The RunEngine emitted an event-model document."""

    name: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class DeviceProgress:
    """The statuses the plan waits on moved: device name → progress view."""

    views: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Suspended:
    """A suspender holds the running task (`reason`), or none does any more (empty)."""

    reason: str


@dataclass(frozen=True)
class SuspendersChanged:
    """A declared suspender tripped or cleared: every one as `SUSPENDERS` shows them."""

    suspenders: list[dict[str, Any]]


@dataclass(frozen=True)
class TaskEnded:
    """The current task ended (as the worker saw it)."""

    outcome: TaskOutcome


@dataclass(frozen=True)
class Validated:
    """The answer to `Validate`: the params with defaults filled in and the device names
    they pass (by path, e.g. `params.motor`), or why not.
    """

    request_id: int
    params: dict[str, Any] | None
    error: str | None = None
    devices: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CommandDone:
    """The answer to `Control`: the target state was reached (`error` None) or not."""

    command_id: int
    error: str | None = None


WorkerReport = (
    Ready | LoadFailed | StateChanged | TaskStarted | RunProgressed | DocumentEmitted
    | DeviceProgress | Suspended | SuspendersChanged | TaskEnded | Validated | CommandDone
)  # fmt: skip


# --- IOC → worker ---------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerStart:
    """The first message to a new worker: what to load, and the scan id to go on from."""

    settings: Settings
    scan_id: int = 0


@dataclass(frozen=True)
class Validate:
    """Check `params` of plan `name` against the plan's parameter model."""

    request_id: int
    name: str
    params: dict[str, Any]


@dataclass(frozen=True)
class RunTask:
    """Run `task` to its end."""

    task: Task


@dataclass(frozen=True)
class Control:
    """Carry out an operator command; `ending` overrides how an ended task is recorded."""

    command_id: int
    command: Command
    ending: tuple[TaskResult, str] | None = None


@dataclass(frozen=True)
class Shutdown:
    """Exit the worker process."""


WorkerCommand = WorkerStart | Validate | RunTask | Control | Shutdown


# --- IOC side → its views -----------------------------------------------------------------
@dataclass(frozen=True)
class QueueChanged:
    """The pending tasks (run order) or the hold/run gate changed; `held_by` says why the
    queue is on hold (empty while it runs).
    """

    tasks: list[Task]
    enabled: bool
    held_by: str = ""


@dataclass(frozen=True)
class TaskSubmitted:
    """A request was accepted and queued."""

    task: Task


@dataclass(frozen=True)
class TaskRejected:
    """A request was refused; `error` says why."""

    error: str


@dataclass(frozen=True)
class TaskRemoved:
    """A task was taken off the queue before it ran."""

    task: Task


@dataclass(frozen=True)
class TaskFinished:
    """A task's end was recorded in the history (its outcome as `HISTORY` shows it)."""

    outcome: TaskOutcome


@dataclass(frozen=True)
class CatalogChanged:
    """A new worker brought its plans and devices."""

    catalog: Catalog


@dataclass(frozen=True)
class WorkerChanged:
    """A worker process came up (`pid`) or went away (0); `restarts` so far."""

    pid: int
    restarts: int


@dataclass(frozen=True)
class StoreFailed:
    """The run store or the state database could not keep something; the IOC goes on."""

    error: str


@dataclass(frozen=True)
class ShownState:
    """The state `STATE` shows: the worker's, or the IOC's latch / absence of a worker."""

    state: WorkerState


@dataclass(frozen=True)
class BusChanged:
    """The message bus connected or lost its broker, or dropped messages (`dropped` so far)."""

    status: BusStatus
    dropped: int


Report = (
    ShownState | TaskStarted | RunProgressed | DocumentEmitted | DeviceProgress | Suspended
    | SuspendersChanged | QueueChanged | TaskSubmitted | TaskRejected | TaskRemoved | TaskFinished
    | CatalogChanged | WorkerChanged | StoreFailed | BusChanged
)  # fmt: skip
