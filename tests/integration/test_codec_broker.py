"""The codec through a real ActiveMQ broker: what encode_event writes, decode_message reads back."""

from __future__ import annotations

import queue
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import stomp
from hypothesis import HealthCheck, given, settings

from nfmp_client import Event, EventHeader, FileAvailableEvent, KeepAliveEvent
from nfmp_client.codec import decode_message, encode_event

from ..conftest import BrokerInfo
from ..strategies import events
from ..test_codec import cesu8, received

TOPIC = "/topic/5620-SAM-topic-xml"
pytestmark = pytest.mark.integration


class Inbox(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.frames: queue.Queue[Any] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()

    def on_message(self, frame: Any) -> None:
        self.frames.put(frame)

    def on_receipt(self, frame: Any) -> None:
        self.receipts.put(frame.headers["receipt-id"])


@pytest.fixture(scope="module")
def link(broker: BrokerInfo) -> Iterator[tuple[stomp.Connection12, stomp.Connection12, Inbox]]:
    """A durable subscriber (client-individual ack) and a publisher on the session broker."""
    client_id = f"codec-{uuid.uuid4().hex[:8]}@1"
    inbox = Inbox()
    # Bodies stay bytes, as the client's transport reads them.
    consumer = stomp.Connection12(broker.hosts, heartbeats=(2000, 2000), auto_decode=False)
    consumer.set_listener("inbox", inbox)
    consumer.connect(wait=True, headers={"client-id": client_id})
    consumer.subscribe(
        TOPIC,
        id="1",
        ack="client-individual",
        headers={"activemq.subscriptionName": client_id, "receipt": "sub"},
    )
    assert inbox.receipts.get(timeout=10) == "sub"
    producer = stomp.Connection12(broker.hosts)
    producer.connect(wait=True)
    yield consumer, producer, inbox
    producer.disconnect()
    consumer.unsubscribe("1")
    consumer.unsubscribe("1", headers={"activemq.subscriptionName": client_id})
    consumer.disconnect()


def through_broker(
    link: tuple[stomp.Connection12, stomp.Connection12, Inbox], event: Event
) -> tuple[Event, Any]:
    consumer, producer, inbox = link
    message = encode_event(event)
    producer.send(TOPIC, message.body, headers={**message.headers, "persistent": "true"})
    frame = inbox.frames.get(timeout=10)
    consumer.ack(frame.headers["ack"])
    return decode_message(frame.headers, frame.body), frame


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=events)
def test_any_event_survives_the_broker(
    link: tuple[stomp.Connection12, stomp.Connection12, Inbox], event: Event
) -> None:
    """Every event class, with any text XML can carry, decodes to the value that was encoded."""
    decoded, frame = through_broker(link, event)

    assert decoded == attrs.evolve(event, header=attrs.evolve(event.header, stomp_headers=frame.headers))


def test_properties_arrive_as_stomp_headers(
    link: tuple[stomp.Connection12, stomp.Connection12, Inbox],
) -> None:
    """The JMS properties reach the subscriber as frame headers, next to the broker's own headers."""
    decoded, frame = through_broker(link, KeepAliveEvent())

    assert frame.headers["MTOSI_objectType"] == ""
    assert {"message-id", "destination", "subscription"} <= set(frame.headers)
    assert decoded.header.stomp_headers["destination"] == TOPIC


def test_a_cesu8_body_decodes_after_the_broker(
    link: tuple[stomp.Connection12, stomp.Connection12, Inbox],
) -> None:
    """A body as ActiveMQ's OpenWire writes it (CESU-8), sent as raw bytes, arrives unchanged and decodes."""
    consumer, producer, inbox = link
    event = FileAvailableEvent(
        header=EventHeader(event_name="FileAvailableEvent"), file_name="clef-\U0001d11e-\U0001f600.xml"
    )
    message = encode_event(event)
    body = cesu8(message.body.decode())
    producer.send(TOPIC, body, headers={**message.headers, "persistent": "true"})
    frame = inbox.frames.get(timeout=10)
    consumer.ack(frame.headers["ack"])

    assert frame.body == body
    assert decode_message(frame.headers, frame.body) == received(event, frame.headers)
