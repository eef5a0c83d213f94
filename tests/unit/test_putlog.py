"""The put log's lines (caPutLog's format) and the iocLogServer client (never blocks,
drops while the server is away, reconnects by itself).
"""

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ioc import ioclog
from ioc.identity import Writer
from ioc.putlog import FILE_NAME, open_put_log, put_log, record_put

DEADLINE = 10.0


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def put_log_file(tmp_path: Path) -> Iterator[Path]:
    handler = open_put_log(tmp_path)
    yield tmp_path / FILE_NAME
    put_log.removeHandler(handler)
    handler.close()


def test_lines_in_caputlog_format(put_log_file: Path) -> None:
    record_put(Writer("alice", "ws3"), "BL:SUBMIT", '{"name": "count"}', old="")
    record_put(Writer("bob", "ws4"), "BL:QUEUE:REMOVE", "abc", refused="no pending task")
    record_put(Writer("bob", "ws4"), "BL:SUBMIT", "x" * 500 + "\nsecond line", old="y")
    accepted, refused, long = put_log_file.read_text().splitlines()
    stamp = r"\d\d-[A-Z][a-z]{2}-\d\d \d\d:\d\d:\d\d"
    assert re.fullmatch(rf'{stamp} ws3 alice BL:SUBMIT new={{"name": "count"}} old=', accepted)
    assert re.fullmatch(rf"{stamp} ws4 bob BL:QUEUE:REMOVE new=abc refused=no pending task", refused)
    assert re.fullmatch(rf"{stamp} ws4 bob BL:SUBMIT new=x{{197}}\.\.\. old=y", long)


class LineServer:
    """A TCP server on loopback that collects the lines it receives, until stopped."""

    def __init__(self, port: int = 0) -> None:
        self.socket = socket.create_server(("127.0.0.1", port))
        self.port = self.socket.getsockname()[1]
        self.text = ""
        self._connection: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            connection, _ = self.socket.accept()
        except OSError:
            return
        self._connection = connection
        connection.shutdown(socket.SHUT_WR)  # as iocLogServer does: it never sends
        with connection:
            while data := connection.recv(4096):
                self.text += data.decode()

    def stop(self) -> None:
        for open_socket in (self.socket, self._connection):
            if open_socket is not None:
                try:
                    open_socket.shutdown(socket.SHUT_RDWR)  # wakes the accept or the recv
                except OSError:
                    pass
        self.socket.close()
        self._thread.join(DEADLINE)


def test_the_log_client_drops_while_the_server_is_away_and_reconnects() -> None:
    away = LineServer()
    port = away.port
    away.stop()  # nothing listens on the port now
    handler = ioclog.IocLogHandler("127.0.0.1", port, capacity=100)
    logger = logging.getLogger("test.ioclog")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        begun = time.monotonic()
        for index in range(5000):
            logger.warning("line %d", index)
        assert time.monotonic() - begun < DEADLINE  # emit never waits for the server
        wait_until(lambda: handler.dropped >= 4900, "lines dropped while the server is away")
        server = LineServer(port)
        try:
            def arrived() -> bool:
                logger.warning("after the restart")
                time.sleep(0.1)
                return "after the restart\n" in server.text
            wait_until(arrived, "a line at the restarted server")
        finally:
            server.stop()
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_from_environment() -> None:
    assert ioclog.from_environment({}) is None
    handler = ioclog.from_environment({"EPICS_IOC_LOG_INET": "127.0.0.1"})
    assert handler is not None and handler.address == ("127.0.0.1", 7004)
    handler.close()
    handler = ioclog.from_environment({"EPICS_IOC_LOG_INET": "127.0.0.1", "EPICS_IOC_LOG_PORT": "7011"})
    assert handler is not None and handler.address == ("127.0.0.1", 7011)
    handler.close()
