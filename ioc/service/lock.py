"""One IOC at a time owns a state directory: an `fcntl` lock on a file in it, held for the
IOC's life (the kernel drops it when the process ends, `kill -9` included).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "ioc.lock"  # holds the pid of the IOC that owns the directory


class StateDirInUse(Exception):
    """Another IOC holds the state directory, or its lock file cannot be opened."""


class StateDirLock:
    """The lock of one state directory, held until `release` (or the process ends)."""

    def __init__(self, state_dir: Path) -> None:
        """Take the lock of `state_dir` (created if missing); raise `StateDirInUse` naming the
        pid that holds it (or why the lock file cannot be opened). Nothing in the
        directory is changed unless the lock is taken.
        """
        self.path = state_dir / LOCK_FILE
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as error:
            raise StateDirInUse(f"state directory {state_dir}: cannot open {self.path}: {error}") from error
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _holder(self._fd)
            os.close(self._fd)
            raise StateDirInUse(
                f"state directory {state_dir} is in use by another IOC (pid {holder}, see "
                f"{self.path}); give each IOC a --state-dir of its own"
            ) from None
        mine = f"{os.getpid()}\n".encode()
        os.pwrite(self._fd, mine, 0)  # written over, then cut: never an empty file
        os.ftruncate(self._fd, len(mine))

    def release(self) -> None:
        """Give the directory up."""
        os.close(self._fd)


def _holder(fd: int) -> str:
    """The pid written in the lock file, as text (`unknown` if there is none)."""
    text = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip()
    return text if text.isdigit() else "unknown"
