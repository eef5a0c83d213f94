"""A client of EPICS base's `iocLogServer`: log records as plain text lines over TCP,
as an IOC's logClient sends them (`EPICS_IOC_LOG_INET`, `EPICS_IOC_LOG_PORT`).

Logging never waits for the server: `emit` only puts the line in a bounded queue; a
thread of its own connects, sends and reconnects. While the server is away (or the
queue is full) lines are dropped and counted, as logClient does.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import socket
import threading
import time
from collections.abc import Mapping

DEFAULT_PORT = 7004  # EPICS_IOC_LOG_PORT's default, as in EPICS base
CAPACITY = 1000  # lines waiting to be sent, at most
RETRY = 1.0  # seconds between attempts to connect while the server is away
TIMEOUT = 2.0  # seconds a connect or a send may take before the connection is given up

log = logging.getLogger(__name__)


class IocLogHandler(logging.Handler):
    """Sends each record, formatted, as one line to an iocLogServer; never blocks."""

    def __init__(self, host: str, port: int = DEFAULT_PORT, capacity: int = CAPACITY) -> None:
        super().__init__()
        self.address = (host, port)
        self.dropped = 0  # lines lost while the server was away or the queue full
        self._lines: queue.Queue[str | None] = queue.Queue(capacity)
        self._socket: socket.socket | None = None
        self._next_attempt = 0.0
        self._thread = threading.Thread(target=self._send_lines, name="ioc-log-client", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record's line; drop it if the queue is full."""
        try:
            line = " ".join(self.format(record).splitlines()) + "\n"
            self._lines.put_nowait(line)
        except queue.Full:
            self.dropped += 1
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        """Stop the sending thread once the queued lines are sent (or dropped)."""
        try:
            self._lines.put(None, timeout=TIMEOUT)
        except queue.Full:
            pass
        self._thread.join(TIMEOUT)
        super().close()

    def _send_lines(self) -> None:
        while (line := self._lines.get()) is not None:
            connection = self._connection()
            if connection is None:
                self.dropped += 1
                continue
            try:
                connection.sendall(line.encode("utf-8", errors="replace"))
            except OSError:
                self.dropped += 1
                self._disconnect()
        self._disconnect()

    def _connection(self) -> socket.socket | None:
        """The connection to the server, made again if it was lost (at most every `RETRY` s)."""
        if self._socket is not None and _closed_by_peer(self._socket):
            self._disconnect()
        if self._socket is None and time.monotonic() >= self._next_attempt:
            self._next_attempt = time.monotonic() + RETRY
            try:
                self._socket = socket.create_connection(self.address, timeout=TIMEOUT)
            except OSError:
                return None
        return self._socket

    def _disconnect(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _closed_by_peer(connection: socket.socket) -> bool:
    """Whether the connection is gone. iocLogServer shuts down its side for writing at
    once (end-of-file is no news); a server that went away answers the next send with a
    reset, which a peek then reports.
    """
    try:
        readable, _, _ = select.select([connection], [], [], 0)
        if readable:
            connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return False


def from_environment(environ: Mapping[str, str] = os.environ) -> IocLogHandler | None:
    """A handler for the server `EPICS_IOC_LOG_INET` (port `EPICS_IOC_LOG_PORT`), or None
    when it is not set.
    """
    host = environ.get("EPICS_IOC_LOG_INET", "").strip()
    if not host:
        return None
    text = environ.get("EPICS_IOC_LOG_PORT", "").strip()
    try:
        port = int(text) if text else DEFAULT_PORT
    except ValueError:
        log.warning("EPICS_IOC_LOG_PORT %r is no port number; using %d", text, DEFAULT_PORT)
        port = DEFAULT_PORT
    return IocLogHandler(host, port)
