"""The IOC process's side of the worker: intake, queue, state database, run store, and the
supervisor of the worker process. Neither caproto nor bluesky is imported here.
"""

from .build import build
from .commands import CommandRefused
from .lock import StateDirInUse
from .policy import Policy, PolicyError
from .queue import NotPending
from .store import StoreError
from .worker_service import WorkerService

__all__ = [
    "CommandRefused",
    "NotPending",
    "Policy",
    "PolicyError",
    "StateDirInUse",
    "StoreError",
    "WorkerService",
    "build",
]
