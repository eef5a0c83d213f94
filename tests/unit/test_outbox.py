"""The bus's outbox: order, confirmation by receipt, resending after a reconnect, the bound."""

import threading

import pytest

from ioc.service.outbox import Outbox
from ioc.service.stomp import broker_address


def take(outbox: Outbox[str], count: int) -> list[str]:
    taken = [outbox.next_unsent(0) for _ in range(count)]
    return [envelope.message for envelope in taken if envelope is not None]


def test_messages_go_out_in_order_and_stay_until_confirmed() -> None:
    outbox: Outbox[str] = Outbox(10)
    for message in "abcd":
        outbox.put(message)
    first = outbox.next_unsent(0)
    assert first is not None and first.message == "a"
    assert take(outbox, 2) == ["b", "c"]
    outbox.confirm(first.seq + 1)  # the receipt of "b": "a" and "b" are with the broker
    assert len(outbox) == 2
    outbox.rewind()  # a new connection: "c" was never confirmed, it goes again
    assert outbox.has_unsent()
    assert take(outbox, 3) == ["c", "d"]
    assert outbox.next_unsent(0) is None and not outbox.has_unsent()


def test_a_full_outbox_drops_the_oldest_and_counts_them() -> None:
    outbox: Outbox[int] = Outbox(3)
    for message in range(5):
        outbox.put(message)
    assert outbox.dropped == 2 and len(outbox) == 3
    sent = outbox.next_unsent(0)
    assert sent is not None and sent.message == 2
    outbox.put(5)  # pushes out 2, which was in flight: 3 is next, nothing is skipped
    assert outbox.dropped == 3
    assert [e.message for e in (outbox.next_unsent(0), outbox.next_unsent(0)) if e] == [3, 4]
    outbox.rewind()
    assert [e.message for e in (outbox.next_unsent(0),) if e] == [3]


def test_the_sender_is_woken_by_a_message_and_by_closing() -> None:
    outbox: Outbox[str] = Outbox(2)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(outbox.next_unsent(10)))
    waiter.start()
    outbox.put("x")
    waiter.join(5)
    assert not waiter.is_alive() and got[0] is not None
    waiter = threading.Thread(target=lambda: got.append(outbox.next_unsent(10)))
    waiter.start()
    outbox.close()
    waiter.join(5)
    assert not waiter.is_alive() and got[1] is None


def test_wait_empty_returns_once_everything_is_confirmed() -> None:
    outbox: Outbox[str] = Outbox(5)
    assert outbox.wait_empty(0)
    outbox.put("x")
    assert not outbox.wait_empty(0.01)
    sent = outbox.next_unsent(0)
    assert sent is not None
    threading.Timer(0.05, outbox.confirm, (sent.seq,)).start()
    assert outbox.wait_empty(5)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Outbox(0)


@pytest.mark.parametrize(
    ("url", "problem"),
    [("stomp://h:1", "tcp://host:port"), ("tcp://broker", "port is missing"),
     ("tcp://broker:abc", "port is missing"), ("broker:61613", "tcp://host:port")],
)
def test_a_broker_url_must_be_tcp_host_port(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        broker_address(url)
    assert broker_address("tcp://127.0.0.1:61613") == ("127.0.0.1", 61613)
