"""The message bus (`--stomp`) with a real IOC and a real broker (Debian's ActiveMQ): what
blueapi publishes, read by stomp-py and by blueapi's own client; at least once across a
broker crash; the bound of the buffer; no broker at start.
"""

import getpass
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from caproto import ChannelType

from tests.integration import harness
from tests.integration.broker import TOPIC, Broker, Listener, Message, missing
from tests.integration.harness import wait_for
from tests.integration.ioc_client import submit, wait_finished

pytestmark = pytest.mark.skipif(missing() is not None, reason=f"no ActiveMQ broker: missing {missing()}")

SCHEMA = json.loads((Path(__file__).parents[1] / "data" / "blueapi-1.21-event-schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
RECONNECT = 5.0  # seconds the IOC may take to connect once the broker is back


@pytest.fixture
def broker(tmp_path):
    started = Broker(work=tmp_path / "broker").start()
    yield started
    started.stop()


def bus_health(ctx, ioc) -> tuple[str, int]:
    """`BUS:STATUS` as text, with its severity."""
    response = harness.ca_read(ctx, ioc.pv("BUS:STATUS"), data_type=ChannelType.STS_STRING)
    return response.data[0].decode(), int(response.metadata.severity)


def dropped(ctx, ioc) -> int:
    return int(harness.ca_read_value(ctx, ioc.pv("BUS:DROPPED")))


def strict(text: str) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def request(name: str, correlation_id: str, **params: Any) -> str:
    return json.dumps({"name": name, "params": params, "correlation_id": correlation_id})


def completion(messages: list[Message], task_id: str) -> dict | None:
    """The WorkerEvent that says `task_id` is complete, if it came."""
    for message in messages:
        body = message.json()
        status = body.get("task_status") if "state" in body else None
        if status and status["task_id"] == task_id and status["task_complete"]:
            return body
    return None


def documents(messages: list[Message], task_id: str) -> list[tuple[str, dict]]:
    """The task's documents, each once (the first time it came), in arrival order."""
    seen: set[str] = set()
    docs = []
    for message in messages:
        body = message.json()
        if "doc" in body and body["task_id"] == task_id and body["doc"]["uid"] not in seen:
            seen.add(body["doc"]["uid"])
            docs.append((body["name"], body["doc"]))
    return docs


def check_run(docs: list[tuple[str, dict]], points: int) -> None:
    """A whole run, in order: start, descriptor, events 1..points, stop."""
    assert [name for name, _ in docs] == ["start", "descriptor"] + ["event"] * points + ["stop"]
    assert [doc["seq_num"] for name, doc in docs if name == "event"] == list(range(1, points + 1))
    assert docs[-1][1]["exit_status"] == "success"


def test_a_scan_over_the_bus_is_what_blueapi_publishes(ioc_factory, broker, ca_context, tmp_path):
    listener = Listener(broker, TOPIC)  # subscribed before the IOC starts: it gets everything
    ioc = ioc_factory("--stomp", broker.url, "--state-dir", tmp_path / "state")
    wait_for(lambda: bus_health(ca_context, ioc) == ("Connected", 0), 10, message="BUS:STATUS Connected")
    points = 7
    task_id = submit(ca_context, ioc, request(
        "scan", "bus-scan", detectors=["det1"], motor="motor1", start=-1, stop=1, num=points))
    assert wait_finished(ca_context, ioc, task_id) == "Success"
    done = wait_for(lambda: completion(listener.snapshot(), task_id), 15, message="completion on the bus")
    messages = listener.snapshot()
    listener.close()

    for message in messages:
        VALIDATOR.validate(strict(message.body))  # blueapi 1.21.1's models: nothing more, nothing less
        assert message.headers["destination"] == TOPIC
    about_task = [m for m in messages if task_id in m.body]
    assert about_task and all(m.headers.get("correlation-id") == "bus-scan" for m in about_task)
    assert all(m.headers.get("task-id") == task_id for m in about_task)
    assert all(m.headers.get("user") == getpass.getuser() for m in about_task)  # the submitter
    docs = documents(messages, task_id)
    check_run(docs, points)
    assert len([m for m in messages if '"doc":' in m.body]) == len(docs)  # each exactly once
    start = docs[0][1]
    assert (start["task_id"], start["correlation_id"]) == (task_id, "bus-scan")
    assert done["task_status"]["result"] == {"outcome": "success", "result": start["uid"], "type": "str"}
    states = [m.json()["state"] for m in messages if '"state":' in m.body]
    assert states[:2] == ["IDLE", "RUNNING"] and states[-1] == "IDLE"
    assert any('"statuses":{"motor1"' in m.body for m in about_task)  # ProgressEvents
    assert dropped(ca_context, ioc) == 0


def test_the_task_runs_on_while_the_broker_restarts_and_every_document_arrives(
    ioc_factory, broker, ca_context, tmp_path
):
    listener = Listener(broker)
    ioc = ioc_factory("--stomp", broker.url, "--state-dir", tmp_path / "state")
    wait_for(lambda: bus_health(ca_context, ioc) == ("Connected", 0), 10, message="BUS:STATUS Connected")
    points, delay = 50, 0.2  # a 10 s count

    def count(correlation_id: str) -> str:
        return submit(ca_context, ioc, request("count", correlation_id, detectors=["det1"], num=points, delay=delay))

    healthy = count("healthy")
    assert wait_finished(ca_context, ioc, healthy, timeout=60) == "Success"
    healthy_duration = float(harness.ca_read_value(ca_context, ioc.pv("LAST:DURATION")))

    disrupted = count("disrupted")
    events = lambda: [d for n, d in documents(listener.snapshot(), disrupted) if n == "event"]  # noqa: E731
    wait_for(lambda: len(events()) >= 10, 30, message="10 events on the bus")
    broker.kill()
    wait_for(lambda: bus_health(ca_context, ioc) == ("Disconnected", 2), 10, message="BUS:STATUS Disconnected, MAJOR")
    progress = lambda: float(harness.ca_read_value(ca_context, ioc.pv("CURRENT:PROGRESS")))  # noqa: E731
    down_at = progress()
    wait_for(lambda: progress() >= down_at + 20 or progress() == 0, 30, message="the task going on without the broker")
    broker.start()
    back = time.monotonic()
    wait_for(lambda: bus_health(ca_context, ioc) == ("Connected", 0), RECONNECT + 5, interval=0.05,
             message="BUS:STATUS Connected again")
    assert time.monotonic() - back <= RECONNECT
    after = Listener(broker)  # the broker's copy queue kept what the IOC resent meanwhile
    assert wait_finished(ca_context, ioc, disrupted, timeout=60) == "Success"
    wait_for(lambda: completion(after.snapshot(), disrupted), 15, message="completion on the bus")
    disrupted_duration = float(harness.ca_read_value(ca_context, ioc.pv("LAST:DURATION")))
    messages = listener.snapshot() + after.snapshot()
    after.close()

    check_run(documents(messages, disrupted), points)  # every document at least once, in order
    for message in messages:
        VALIDATOR.validate(strict(message.body))
    assert disrupted_duration <= healthy_duration * 1.3 + 2.0, (healthy_duration, disrupted_duration)
    assert dropped(ca_context, ioc) == 0


def test_without_a_broker_tasks_run_and_a_tiny_buffer_counts_what_it_drops(ioc_factory, ca_context, tmp_path):
    broker = Broker(work=tmp_path / "broker")  # not started: nothing listens on its port
    buffer = 2
    ioc = ioc_factory("--stomp", broker.url, "--stomp-buffer", buffer, "--state-dir", tmp_path / "state")
    try:
        wait_for(lambda: bus_health(ca_context, ioc) == ("Disconnected", 2), 10, message="BUS:STATUS Disconnected, MAJOR")
        tasks = []
        for n in range(3):
            tasks.append(submit(ca_context, ioc, request("sleep", f"offline-{n}", seconds=0)))
            assert wait_finished(ca_context, ioc, tasks[-1]) == "Success"
        # Published: IDLE when the worker came up, then RUNNING, IDLE and "complete" per task.
        published = 1 + 3 * len(tasks)
        wait_for(lambda: dropped(ca_context, ioc) == published - buffer, 5, message="BUS:DROPPED")
        assert bus_health(ca_context, ioc) == ("Disconnected", 2)
        broker.start()
        back = time.monotonic()
        wait_for(lambda: bus_health(ca_context, ioc) == ("Connected", 0), RECONNECT + 5, interval=0.05,
                 message="BUS:STATUS Connected once the broker is there")
        assert time.monotonic() - back <= RECONNECT
        listener = Listener(broker)
        wait_for(lambda: len(listener.snapshot()) >= buffer, 10, message="the buffered messages")
        bodies = listener.bodies()
        listener.close()
        last = tasks[-1]
        assert [(body["state"], body["task_status"]["task_complete"]) for body in bodies] == [
            ("IDLE", False), ("IDLE", True)]  # the newest two were kept
        assert all(body["task_status"]["task_id"] == last for body in bodies)
        assert dropped(ca_context, ioc) == published - buffer
    finally:
        broker.stop()


def blueapi_python() -> Path:
    """blueapi 1.21's venv, as the bench builds it (cached); skip if it cannot be had."""
    from bench.peers.envs import Unavailable, ensure_venv

    try:
        return ensure_venv("blueapi")
    except Unavailable as error:
        pytest.skip(f"blueapi unavailable: {error}")


VALIDATE_WITH_BLUEAPI = """
import sys
from pydantic import TypeAdapter
from blueapi.core import DataEvent
from blueapi.worker import ProgressEvent, WorkerEvent
adapter = TypeAdapter(WorkerEvent | ProgressEvent | DataEvent)
for line in sys.stdin:
    print(type(adapter.validate_json(line)).__name__)
"""


def test_blueapi_controller_listen_prints_the_ioc_events(ioc_factory, broker, ca_context, tmp_path):
    python = blueapi_python()
    config = tmp_path / "blueapi.yaml"
    config.write_text(f"stomp:\n  enabled: true\n  url: {broker.url}\n")  # the broker only
    output = tmp_path / "listen.out"
    with open(output, "w") as out:
        listen = subprocess.Popen(
            [str(python.parent / "blueapi"), "-c", str(config), "controller", "listen"],
            stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: "Press enter to exit" in output.read_text(), 120, message="blueapi listening")
        listener = Listener(broker)
        ioc = ioc_factory("--stomp", broker.url, "--state-dir", tmp_path / "state")
        points = 3
        task_id = submit(ca_context, ioc, request(
            "scan", "listen", detectors=["det1"], motor="motor1", start=0, stop=1, num=points))
        assert wait_finished(ca_context, ioc, task_id) == "Success"
        wait_for(lambda: completion(listener.snapshot(), task_id), 15, message="completion on the bus")
        expected = ["Worker Event: RUNNING", "Data Event: start", "Data Event: descriptor",
                    "Data Event: event", "Data Event: stop", "Worker Event: IDLE", "Progress: "]
        wait_for(lambda: all(line in output.read_text() for line in expected), 15,
                 message=f"blueapi printing {expected}")
        printed = output.read_text()
        assert printed.count("Data Event: event") == points
        assert "Error" not in printed and "Traceback" not in printed, printed
        bodies = [message.body for message in listener.snapshot()]
        listener.close()
        parsed = subprocess.run([str(python), "-c", VALIDATE_WITH_BLUEAPI], input="\n".join(bodies) + "\n",
                                capture_output=True, text=True, timeout=120)
        assert parsed.returncode == 0, parsed.stderr
        kinds = parsed.stdout.split()
        assert len(kinds) == len(bodies)
        assert kinds.count("DataEvent") == points + 3 and "ProgressEvent" in kinds and "WorkerEvent" in kinds
    finally:
        listen.terminate()
        try:
            listen.wait(10)
        except subprocess.TimeoutExpired:
            listen.kill()
            listen.wait(10)
