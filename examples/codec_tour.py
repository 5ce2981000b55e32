"""The nfmp_client demo: NFM-P-shaped events through a real ActiveMQ broker, decoded into typed values.

What it shows, in about two seconds:

1. A durable subscription to ``5620-SAM-topic-xml`` with the selector NFM-P requires
   (``ALA_clientId in ('<client id>', '')``): events addressed to another client never arrive.
2. Every kind of NFM-P event (system info, keep-alive, alarm raised / changed / cleared, an event vessel,
   a file notification, missed events) published on the wire and decoded into a typed event.
3. A malformed message: reported with its reason and kept for inspection; the stream goes on.
4. Durability: the subscriber disconnects, two events are published while it is away, and it gets them
   when it comes back with the same client id.

The broker must be running (``scripts/broker start``); ``scripts/demo`` does everything in one command.
This demo uses stomp.py directly: it shows the event codec. The supervised client comes later.

Usage: python examples/demo.py [--host HOST] [--port PORT] [--client-id NAME@ID]
"""

from __future__ import annotations

import argparse
import os
import queue
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import stomp

from nfmp_client import (
    AttributeChange,
    AttributeValueChange,
    Event,
    EventHeader,
    EventVessel,
    FileAvailableEvent,
    JmsMissedEvents,
    KeepAliveEvent,
    MalformedMessage,
    ObjectCreation,
    ObjectDeletion,
    SystemInfoEvent,
    TerminateClientSession,
    UnknownEvent,
)
from nfmp_client.codec import EncodedMessage, decode_message, encode_event

TOPIC = "/topic/5620-SAM-topic-xml"
RECEIVE_TIMEOUT_S = 10.0
CONNECT_RETRY_S = 10.0


class Inbox(stomp.ConnectionListener):  # type: ignore[misc]
    """Hands every frame to the main thread: nothing is decoded on stomp.py's receiver thread."""

    def __init__(self) -> None:
        self.frames: queue.Queue[Any] = queue.Queue()
        self.receipts: queue.Queue[str] = queue.Queue()
        self.errors: queue.Queue[str] = queue.Queue()

    def on_message(self, frame: Any) -> None:
        self.frames.put(frame)

    def on_receipt(self, frame: Any) -> None:
        self.receipts.put(frame.headers.get("receipt-id", ""))

    def on_error(self, frame: Any) -> None:
        self.errors.put(frame.headers.get("message", "unknown error"))


def now() -> datetime:
    return datetime.now(timezone.utc)


def header(
    event_name: str, object_type: str, nt_type: str, category: str, client_id: str = ""
) -> EventHeader:
    return EventHeader(
        event_name=event_name,
        object_type=object_type,
        nt_type=nt_type,
        category=category,
        client_id=client_id,
        os_time=now(),
    )


def story(client_id: str) -> list[Event]:
    """The events the simulated server publishes, in order."""
    alarm_name = "network:10.10.10.1|shelf-1|cardSlot-1|card|port-1/1/3|alarm-10-3-8"
    alarm = header("ObjectCreation", "fm.AlarmObject", "NT_ALARM", "FAULT")
    return [
        SystemInfoEvent(
            header=header("SystemInfoEvent", "StateChangeEvent", "ALA_OTHER", "GENERAL", client_id),
            sys_start_time="1795420000000",
            jms_start_time="1795420012345",
            sys_primary_ip="192.0.2.10",
        ),
        KeepAliveEvent(header=header("KeepAliveEvent", "KeepAliveEvent", "NT_HEARTBEAT", "GENERAL")),
        ObjectCreation(
            header=alarm,
            object_class="fm.AlarmInfo",
            attributes={
                "objectFullName": alarm_name,
                "affectedObjectFullName": "network:10.10.10.1|shelf-1|cardSlot-1|card|port-1/1/3",
                "alarmName": "LinkDown",
                "severity": "major",
                "probableCause": "linkDown",
                "isAcknowledged": "false",
            },
        ),
        AttributeValueChange(
            header=header("AttributeValueChange", "fm.AlarmObject", "NT_ATTRIBUTE_VALUE_CHANGE", "FAULT"),
            object_full_name=alarm_name,
            changes=(
                AttributeChange(name="severity", new_value="critical", old_value="major"),
                AttributeChange(name="isAcknowledged", new_value="true", old_value="false"),
            ),
        ),
        KeepAliveEvent(
            header=header("KeepAliveEvent", "KeepAliveEvent", "NT_HEARTBEAT", "GENERAL", "other@9")
        ),
        EventVessel(
            header=attrs_vessel_header(),
            events=(
                ObjectCreation(
                    header=EventHeader(event_name="ObjectCreation"),
                    object_class="equipment.PhysicalPort",
                    attributes={"objectFullName": "network:10.10.10.2|port-2/1/1", "operationalState": "up"},
                ),
                ObjectDeletion(
                    header=EventHeader(event_name="ObjectDeletion"),
                    object_full_name="network:10.10.10.2|port-2/1/9",
                ),
            ),
        ),
        FileAvailableEvent(
            header=header("FileAvailableEvent", "FileAvailableEvent", "ALA_OTHER", "GENERAL", client_id),
            file_name="/opt/nsp/nfmp/server/xml_output/inventory-ports.xml",
        ),
        ObjectDeletion(
            header=header("ObjectDeletion", "fm.AlarmObject", "NT_OBJECTDELETION", "FAULT"),
            object_full_name=alarm_name,
        ),
        JmsMissedEvents(
            header=header("JmsMissedEvents", "StateChangeEvent", "ALA_OTHER", "GENERAL", client_id)
        ),
    ]


def attrs_vessel_header() -> EventHeader:
    return EventHeader(
        event_name="EventVessel",
        object_type="EventVessel",
        category="GENERAL",
        os_time=now(),
        extra={"ALA_isVessel": "true", "ALA_vesselSize": "2"},
    )


def describe(event: Event) -> str:
    """One readable line per event."""
    match event:
        case KeepAliveEvent():
            return "KeepAliveEvent            the server is alive"
        case SystemInfoEvent():
            started = event.sys_start_datetime
            since = f", server started {started:%Y-%m-%d %H:%M:%S}" if started else ""
            return f"SystemInfoEvent           primary {event.sys_primary_ip}{since}"
        case JmsMissedEvents():
            return f"JmsMissedEvents           events were lost for {event.header.client_id}: resync needed"
        case TerminateClientSession():
            return f"TerminateClientSession    session of {event.client_id} is being closed"
        case ObjectCreation():
            kind = "alarm raised" if event.is_alarm else f"{event.object_class} created"
            severity = f" [{event.attributes.get('severity')}]" if event.is_alarm else ""
            return f"ObjectCreation            {kind}{severity} {event.object_full_name}"
        case AttributeValueChange():
            changes = ", ".join(f"{c.name}: {c.old_value} -> {c.new_value}" for c in event.changes)
            return f"AttributeValueChange      {changes} on {event.object_full_name}"
        case ObjectDeletion():
            kind = event.object_class or "object"
            return f"ObjectDeletion            {kind} deleted: {event.object_full_name}"
        case FileAvailableEvent():
            return f"FileAvailableEvent        {event.file_name}"
        case EventVessel():
            inner = "; ".join(describe(member).split(None, 1)[1].strip() for member in event.events)
            return f"EventVessel ({len(event.events)} events)    {inner}"
        case UnknownEvent():
            return f"UnknownEvent              <{event.element_name}> kept as XML"
        case _:
            return type(event).__name__


def publish(conn: stomp.Connection12, message: EncodedMessage) -> None:
    conn.send(TOPIC, message.body, headers={**message.headers, "persistent": "true"})


def connect(host: str, port: int, client_id: str, inbox: Inbox | None = None) -> stomp.Connection12:
    """Connect with *client_id*, retrying briefly while the broker still holds that id.

    ActiveMQ refuses a second connection with a client id it believes is still connected
    (``InvalidClientIDException``); right after a disconnect it may not have released the id yet.
    The library's client (not this demo) does this with a full backoff policy.
    """
    deadline = time.monotonic() + CONNECT_RETRY_S
    while True:
        conn = stomp.Connection12([(host, port)], heartbeats=(4000, 4000), reconnect_attempts_max=1)
        if inbox is not None:
            conn.set_listener("inbox", inbox)
        try:
            conn.connect(wait=True, headers={"client-id": client_id})
        except stomp.exception.ConnectFailedException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
        else:
            return conn


def subscribe(conn: stomp.Connection12, inbox: Inbox, client_id: str, subscription: str) -> None:
    receipt = f"sub-{uuid.uuid4()}"
    conn.subscribe(
        TOPIC,
        id="demo",
        ack="client-individual",
        headers={
            "activemq.subscriptionName": subscription,
            "selector": f"ALA_clientId in ('{client_id}', '')",
            "receipt": receipt,
        },
    )
    if inbox.receipts.get(timeout=RECEIVE_TIMEOUT_S) != receipt:
        raise RuntimeError("subscription not confirmed by the broker")


def receive(conn: stomp.Connection12, inbox: Inbox, count: int) -> list[Event | MalformedMessage]:
    """Receive *count* messages, print each, acknowledge each after it was handled."""
    results: list[Event | MalformedMessage] = []
    for _ in range(count):
        frame = inbox.frames.get(timeout=RECEIVE_TIMEOUT_S)
        try:
            event = decode_message(frame.headers, frame.body)
        except MalformedMessage as error:
            print(f"  MalformedMessage          {error.reason} (kept: {len(error.payload)} bytes)")
            results.append(error)
        else:
            print(f"  {describe(event)}")
            results.append(event)
        conn.ack(frame.headers["ack"])
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("NFMP_BROKER_PORT", "61613")))
    parser.add_argument("--client-id", default="nfmp-demo@1", help="the OSS client id, name@ID")
    args = parser.parse_args()
    client_id: str = args.client_id
    subscription = client_id  # NFM-P's samples name the durable subscription after the client id
    started = time.monotonic()

    print(f"Connecting to the broker at {args.host}:{args.port} as {client_id} (durable subscription)")
    inbox = Inbox()
    consumer = connect(args.host, args.port, client_id, inbox)
    subscribe(consumer, inbox, client_id, subscription)
    producer = connect(args.host, args.port, f"nfmp-demo-server-{uuid.uuid4().hex[:8]}")

    events = story(client_id)
    print(f"\nThe simulated NFM-P server publishes {len(events)} events; one is addressed to another client.")
    for event in events:
        publish(producer, encode_event(event))
    producer.send(TOPIC, b"<SOAP:Envelope><truncated", headers={"ALA_clientId": "", "persistent": "true"})
    expected = len(events) - 1 + 1  # minus the one for other@9 (selector), plus the malformed one
    print(f"\nReceived and decoded (after the selector: {expected} messages):")
    received = receive(consumer, inbox, expected)

    print("\nThe OSS disconnects; the server publishes two more events while it is away.")
    consumer.disconnect(receipt=f"bye-{uuid.uuid4()}")  # waits until the broker has processed it
    away: list[Event] = [
        ObjectCreation(
            header=header("ObjectCreation", "fm.AlarmObject", "NT_ALARM", "FAULT"),
            object_class="fm.AlarmInfo",
            attributes={"objectFullName": "network:10.10.10.3|alarm-7", "severity": "minor"},
        ),
        KeepAliveEvent(header=header("KeepAliveEvent", "KeepAliveEvent", "NT_HEARTBEAT", "GENERAL")),
    ]
    for event in away:
        publish(producer, encode_event(event))
    producer.disconnect(receipt=f"flush-{uuid.uuid4()}")

    print("The OSS reconnects with the same client id; the durable subscription kept them:")
    inbox = Inbox()
    consumer = connect(args.host, args.port, client_id, inbox)
    subscribe(consumer, inbox, client_id, subscription)
    received += receive(consumer, inbox, len(away))

    # A demo leaves nothing behind on the broker: detach, then delete the durable subscription.
    for step in ({}, {"activemq.subscriptionName": subscription}):
        receipt = f"unsub-{uuid.uuid4()}"
        consumer.unsubscribe("demo", headers={**step, "receipt": receipt})
        if inbox.receipts.get(timeout=RECEIVE_TIMEOUT_S) != receipt:
            raise RuntimeError("the broker did not confirm the unsubscribe")
    consumer.disconnect(receipt=f"bye-{uuid.uuid4()}")

    decoded = sum(1 for r in received if not isinstance(r, MalformedMessage))
    malformed = len(received) - decoded
    ok = decoded == len(events) - 1 + len(away) and malformed == 1
    print(
        f"\n{decoded} events decoded, {malformed} malformed message reported and kept, "
        f"0 lost, in {time.monotonic() - started:.1f} s: {'OK' if ok else 'UNEXPECTED RESULT'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
