"""The message bus's STOMP client (stomp-py): one sender thread delivers the outbox to the
broker, in order, at least once.

The last message of every burst, and at least every `RECEIPT_EVERY`th, is sent with a
STOMP `receipt` header; the broker's RECEIPT (it handles a connection's frames in order)
confirms it and every message before it, and only then do they leave the outbox. When the connection is lost, the sender connects again (an
attempt every `RETRY` seconds) and sends every unconfirmed message again, in order: a
message may arrive twice across a reconnect, none is lost unless the outbox overflows.
The thread that publishes never waits: it only puts into the outbox.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import stomp
from stomp.exception import StompException

from ..config import DEFAULT_STOMP_BUFFER
from ..messages import BusChanged
from ..models import BusStatus
from .bus import DESTINATION, BusMessage
from .outbox import Outbox

log = logging.getLogger(__name__)
logging.getLogger("stomp.py").setLevel(logging.ERROR)  # it warns of every failed attempt; we say it once

PASSWORD_ENV = "BLUESKY_IOC_STOMP_PASSWORD"  # the broker password: never on the command line
RETRY = 0.5  # seconds between connection attempts while the broker is away
CONNECT_TIMEOUT = 3.0  # seconds for the TCP connection and for the broker's CONNECTED
HEARTBEAT_MS = 4000  # STOMP heart-beats both ways: a silent broker counts as lost
POLL = 0.25  # seconds: how often the sender looks at the connection and the drop count
RECEIPT_EVERY = 50  # messages: a long burst is confirmed piecewise, not only at its end


def broker_address(url: str) -> tuple[str, int]:
    """(host, port) of a broker URL `tcp://host:port`; `ValueError` says what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "tcp" or not parts.hostname:
        raise ValueError(f"{url!r}: expected tcp://host:port")
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is None:
        raise ValueError(f"{url!r}: expected tcp://host:port (the port is missing or not a number)")
    return parts.hostname, port


class _Connection(stomp.ConnectionListener):
    """One connection to the broker and what its receiving thread learns."""

    def __init__(self, address: tuple[str, int], outbox: Outbox[BusMessage]) -> None:
        self._outbox = outbox
        self.connected = threading.Event()
        self.lost = threading.Event()
        self.stomp = stomp.Connection12(
            [address],
            reconnect_attempts_max=1,  # the sender retries, with a fresh connection
            timeout=CONNECT_TIMEOUT,
            heartbeats=(HEARTBEAT_MS, HEARTBEAT_MS),
            auto_content_length=False,  # no content-length: ActiveMQ keeps it a text message
        )
        self.stomp.set_listener("bus", self)

    def open(self, user: str | None, password: str | None) -> bool:
        """Connect and log in; whether the broker said CONNECTED in time."""
        try:
            self.stomp.connect(username=user, passcode=password, wait=False)
        except (StompException, OSError) as error:
            log.debug("cannot connect to the broker: %r", error)
            return False
        if self.connected.wait(CONNECT_TIMEOUT) and not self.lost.is_set():
            return True
        self.close()
        return False

    def close(self) -> None:
        """Say goodbye if the broker still listens; drop the connection."""
        with contextlib.suppress(StompException, OSError):
            self.stomp.disconnect()
        with contextlib.suppress(StompException, OSError):
            self.stomp.transport.disconnect_socket()

    def on_connected(self, frame: stomp.utils.Frame) -> None:
        self.connected.set()

    def on_disconnected(self) -> None:
        self.lost.set()

    def on_heartbeat_timeout(self) -> None:
        self.lost.set()

    def on_receipt(self, frame: stomp.utils.Frame) -> None:
        receipt = frame.headers.get("receipt-id", "")
        if receipt.isdigit():  # not the DISCONNECT's
            self._outbox.confirm(int(receipt))

    def on_error(self, frame: stomp.utils.Frame) -> None:
        log.warning("message bus: the broker says %s %s", frame.headers.get("message"), frame.body)


class StompPublisher:
    """Publishes `BusMessage`s to `DESTINATION` on the broker at `url` (`tcp://host:port`)."""

    def __init__(
        self, url: str, *, user: str | None = None, password: str | None = None,
        capacity: int = DEFAULT_STOMP_BUFFER,
    ) -> None:  # fmt: skip
        self._address = broker_address(url)
        self._url = url
        self._user = user
        self._password = password
        self._outbox: Outbox[BusMessage] = Outbox(capacity)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bus-sender", daemon=True)
        self._on_health: Callable[[BusChanged], None] = lambda change: None
        self._health = BusChanged(BusStatus.DISCONNECTED, 0)
        self._said_unreachable = False  # the broker's absence was logged (once per outage)

    def publish(self, message: BusMessage) -> None:
        """Queue `message` (any thread; never waits; the oldest goes if the outbox is full)."""
        self._outbox.put(message)

    def start(self, on_health: Callable[[BusChanged], None]) -> None:
        """Start the sender thread; `on_health` hears of every change of connection or drops."""
        self._on_health = on_health
        self._thread.start()

    def close(self, timeout: float) -> None:
        """Give the sender up to `timeout` seconds to have everything confirmed, then stop."""
        if not self._outbox.wait_empty(timeout):
            log.warning("%d bus message(s) not confirmed by the broker at shutdown", len(self._outbox))
        self._stopping.set()
        self._outbox.close()
        self._thread.join(CONNECT_TIMEOUT + 1)

    # --- the sender thread -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stopping.is_set():
            connection = _Connection(self._address, self._outbox)
            if not connection.open(self._user, self._password):
                if not self._said_unreachable:
                    log.warning("message bus: cannot reach the broker at %s; trying again every %g s",
                                self._url, RETRY)
                    self._said_unreachable = True
                self._tell(BusStatus.DISCONNECTED)
                self._stopping.wait(RETRY)
                continue
            self._said_unreachable = False
            log.info("message bus: connected to %s", self._url)
            self._outbox.rewind()
            self._tell(BusStatus.CONNECTED)
            self._send_until_lost(connection)
            connection.close()
            if not self._stopping.is_set():
                log.warning("message bus: lost the broker at %s; reconnecting", self._url)
                self._tell(BusStatus.DISCONNECTED)

    def _send_until_lost(self, connection: _Connection) -> None:
        unconfirmed = 0  # messages sent since the last one with a receipt
        while not (self._stopping.is_set() or connection.lost.is_set()):
            envelope = self._outbox.next_unsent(POLL)
            self._tell(self._health.status)  # the drop count may have moved
            if envelope is None:
                continue
            message = envelope.message
            headers = dict(message.headers)
            unconfirmed += 1
            if unconfirmed >= RECEIPT_EVERY or not self._outbox.has_unsent():
                headers["receipt"] = str(envelope.seq)
                unconfirmed = 0
            try:
                connection.stomp.send(
                    DESTINATION, message.body, headers=headers, content_type="application/json"
                )
            except (StompException, OSError):
                return

    def _tell(self, status: BusStatus) -> None:
        health = BusChanged(status, self._outbox.dropped)
        if health != self._health:
            self._health = health
            self._on_health(health)
