"""A real STOMP broker for tests and the bench: Debian's ActiveMQ, run in the foreground.

Debian's `activemq` package (apt-get install activemq; it pulls in a JRE) ships a config
with no STOMP connector and an init script that wants systemd. Here its jar runs with a
config of our own: one `stomp://127.0.0.1:<free port>` connector, no persistence, no JMX,
base/conf/data in a temporary directory; ready in 1-3 s. It runs in its own process
group and is stopped by that group only. `BrokerUnavailable` names what is missing.

The broker also copies every message of the bus's topic into the queue `COPY`, so that a
test sees every message the broker took, whenever it subscribes (a topic gives a
subscriber only what arrives after it subscribed: across a broker restart, the IOC may
resend before a test's subscriber is back). `Listener` reads that queue (or the topic)
with stomp-py and keeps every message.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.harness import LOOPBACK, free_port, wait_for

ACTIVEMQ_HOME = Path("/usr/share/activemq")
ACTIVEMQ_JAR = ACTIVEMQ_HOME / "bin" / "activemq.jar"
TOPIC = "/topic/public.worker.event"
COPY = "/queue/test.bus.copy"  # every message of TOPIC, kept until a test reads it
READY_TIMEOUT = 60.0  # a loaded 2-core machine may take many seconds to start a JVM

CONFIG = """<beans xmlns="http://www.springframework.org/schema/beans"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://www.springframework.org/schema/beans
    http://www.springframework.org/schema/beans/spring-beans-2.0.xsd
    http://activemq.apache.org/schema/core
    http://activemq.apache.org/schema/core/activemq-core.xsd">
  <broker xmlns="http://activemq.apache.org/schema/core" brokerName="test"
          persistent="false" useJmx="false" dataDirectory="{data}">
    <destinationInterceptors>
      <virtualDestinationInterceptor>
        <virtualDestinations>
          <compositeTopic name="public.worker.event" forwardOnly="false">
            <forwardTo><queue physicalName="test.bus.copy"/></forwardTo>
          </compositeTopic>
        </virtualDestinations>
      </virtualDestinationInterceptor>
    </destinationInterceptors>
    <transportConnectors>
      <transportConnector name="stomp" uri="stomp://{host}:{port}"/>
    </transportConnectors>
  </broker>
</beans>
"""


class BrokerUnavailable(RuntimeError):
    """ActiveMQ (or Java) is not installed here; the message says which package to install."""


def missing() -> str | None:
    """What the broker needs and this machine lacks, or None."""
    if not ACTIVEMQ_JAR.is_file():
        return f"{ACTIVEMQ_JAR} (Debian package activemq: apt-get install activemq)"
    if shutil.which("java") is None:
        return "java (a JRE; Debian's activemq package depends on one)"
    return None


def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


class Broker:
    """ActiveMQ with one STOMP connector on 127.0.0.1:`port` (a free one unless given);
    `start`/`kill`/`stop` can be repeated on the same port (a broker restart).
    """

    def __init__(self, port: int | None = None, work: Path | None = None) -> None:
        problem = missing()
        if problem:
            raise BrokerUnavailable(f"no ActiveMQ broker: missing {problem}")
        self.port = port or free_port()
        self.work = work or Path(tempfile.mkdtemp(prefix="bluesky-ioc-broker-"))
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        """`tcp://127.0.0.1:<port>`, as `--stomp` takes it."""
        return f"tcp://{LOOPBACK}:{self.port}"

    def launch(self) -> Broker:
        """Start the broker without waiting for it to be ready."""
        assert self.popen is None or self.popen.poll() is not None, "the broker runs already"
        conf, data = self.work / "conf", self.work / "data"
        conf.mkdir(parents=True, exist_ok=True)
        data.mkdir(exist_ok=True)
        config = conf / "activemq.xml"
        config.write_text(CONFIG.format(host=LOOPBACK, port=self.port, data=data))
        self.starts += 1
        log = open(self.work / f"activemq-{self.starts}.log", "wb")  # noqa: SIM115
        self.popen = subprocess.Popen(
            ["java", "-Xms64M", "-Xmx256M", f"-Dactivemq.home={ACTIVEMQ_HOME}",
             f"-Dactivemq.base={self.work}", f"-Dactivemq.conf={conf}", f"-Dactivemq.data={data}",
             "-jar", str(ACTIVEMQ_JAR), "start", f"xbean:file:{config}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped by that group only
        )
        log.close()
        return self

    def start(self, timeout: float = READY_TIMEOUT) -> Broker:
        """Start the broker and wait until its STOMP port accepts connections."""
        self.launch()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Wait until the STOMP port accepts connections (raise if the broker exits)."""
        assert self.popen is not None
        popen = self.popen
        wait_for(lambda: popen.poll() is not None or port_open(self.port), timeout,
                 interval=0.05, message=f"ActiveMQ on port {self.port}")
        if popen.poll() is not None:
            raise RuntimeError(f"ActiveMQ exited {popen.returncode}: {self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the broker's process group (a crash: every connection drops at once)."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM the broker's process group; SIGKILL it if it has not gone in 10 s."""
        self._signal(signal.SIGTERM)

    def _signal(self, signum: int) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signum)
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)
        wait_for(lambda: not port_open(self.port), 10, message=f"port {self.port} released")

    def log_tail(self, lines: int = 20) -> str:
        path = self.work / f"activemq-{self.starts}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Message:
    """One message as a subscriber got it."""

    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body)


class Listener:
    """A stomp-py subscriber of `destination` (the broker's copy of the bus's topic) that
    keeps every message.
    """

    def __init__(self, broker: Broker, destination: str = COPY) -> None:
        import stomp

        self.messages: list[Message] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        outer = self

        class _Keep(stomp.ConnectionListener):
            def on_message(self, frame: Any) -> None:
                with outer._lock:
                    outer.messages.append(Message(dict(frame.headers), frame.body))

            def on_receipt(self, frame: Any) -> None:
                subscribed.set()

        self._connection = stomp.Connection12([(LOOPBACK, broker.port)])
        self._connection.set_listener("keep", _Keep())
        self._connection.connect(wait=True)
        self._connection.subscribe(destination, id="1", ack="auto", headers={"receipt": "subscribed"})
        if not subscribed.wait(10):  # the broker takes SUBSCRIBE in order: later messages reach us
            raise TimeoutError("the broker did not confirm the subscription within 10 s")

    def snapshot(self) -> list[Message]:
        with self._lock:
            return list(self.messages)

    def bodies(self) -> list[Any]:
        return [message.json() for message in self.snapshot()]

    def close(self) -> None:
        try:
            self._connection.disconnect()
        except Exception:  # noqa: BLE001 - the broker may be gone already
            pass
