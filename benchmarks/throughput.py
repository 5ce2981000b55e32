"""End-to-end consuming speed: raw stomp.py against NfmpClient, same broker, same ~2 KB alarm events.

For each consumer, N alarm ObjectCreation messages are stored on the broker for an offline durable
subscription first, then the consumer connects and the time until all N were received and acknowledged is
measured (so the figure is consumption alone, not publishing). The baseline is a bare stomp.py listener that
acknowledges each message on stomp.py's receiver thread (``client-individual``, the same prefetch); the client
receives, decodes, de-duplicates, dispatches to a handler and acknowledges. Rounds alternate between the two.
Target: ratio >= 0.9.

A third row shows the ceiling if decoding (measured alone, same run) were the only extra cost: it tells how
much of the gap is the codec and how much the client's own machinery (threads, queue, bookkeeping).

Needs the project's broker: ``scripts/broker start`` (this script starts it if it is not running).
Usage: python benchmarks/throughput.py [--messages N] [--rounds R]   (the last line is one JSON object)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import stomp

from nfmp_client import ClientConfig, DataEvent, Handler, NfmpClient
from nfmp_client.codec import EventCodec, encode_event
from nfmp_client.selector import build_selector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse import ALARM  # the same typical alarm as the parse benchmark

REPO = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("NFMP_BROKER_PORT", "61613"))
TOPIC = "5620-SAM-topic-xml"
PREFETCH = 100
TARGET_RATIO = 0.9


def ensure_broker() -> None:
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "broker"), "start"], check=True, capture_output=True
    )


def subscribe_offline(client_id: str) -> None:
    """Create the durable subscription, then leave, so that what is published next is stored for it."""
    conn = stomp.Connection12([("127.0.0.1", PORT)])
    conn.connect(wait=True, headers={"client-id": client_id})
    conn.subscribe(
        f"/topic/{TOPIC}",
        id="1",
        ack="client-individual",
        # The client's own selector: a durable subscription re-created with another one loses its backlog.
        headers={"activemq.subscriptionName": client_id, "selector": build_selector(client_id)},
    )
    conn.disconnect(receipt="subscribed")


def publish(count: int) -> None:
    message = encode_event(ALARM)
    conn = stomp.Connection12([("127.0.0.1", PORT)])
    conn.connect(wait=True)
    for _ in range(count):
        conn.send(f"/topic/{TOPIC}", message.body, headers={**message.headers, "persistent": "true"})
    conn.disconnect(receipt="published")


def remove(client_id: str) -> None:
    conn = stomp.Connection12([("127.0.0.1", PORT)])
    conn.connect(wait=True, headers={"client-id": client_id})
    conn.unsubscribe("1", headers={"activemq.subscriptionName": client_id, "receipt": "removed"})
    conn.disconnect(receipt="bye")


class RawConsumer(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self, count: int) -> None:
        self.count = count
        self.received = 0
        self.done = threading.Event()
        self.conn: Any = None

    def on_message(self, frame: Any) -> None:
        self.conn.ack(frame.headers["ack"])
        self.received += 1
        if self.received == self.count:
            self.done.set()


def stored_for(kind: str, count: int) -> str:
    """A new durable subscription with *count* alarms stored for it, offline; return its client id."""
    client_id = f"bench-{kind}-{uuid.uuid4().hex[:6]}@1"
    subscribe_offline(client_id)
    publish(count)
    return client_id


def raw_rate(count: int) -> float:
    client_id = stored_for("raw", count)
    consumer = RawConsumer(count)
    conn = stomp.Connection12([("127.0.0.1", PORT)], heartbeats=(10_000, 10_000))
    consumer.conn = conn
    conn.set_listener("raw", consumer)
    started = time.perf_counter()
    conn.connect(wait=True, headers={"client-id": client_id})
    conn.subscribe(
        f"/topic/{TOPIC}",
        id="1",
        ack="client-individual",
        headers={
            "activemq.subscriptionName": client_id,
            "selector": build_selector(client_id),
            "activemq.prefetchSize": str(PREFETCH),
        },
    )
    if not consumer.done.wait(300):
        raise RuntimeError(f"raw consumer got {consumer.received} of {count}")
    elapsed = time.perf_counter() - started
    conn.disconnect(receipt="bye")
    remove(client_id)
    return count / elapsed


def decode_cost(headers: Mapping[str, str], body: bytes, count: int = 5000) -> float:
    """Seconds to decode one message, best of three runs: the part of the gap the codec accounts for."""
    codec = EventCodec()
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(count):
            codec.decode(headers, body)
        best = min(best, (time.perf_counter() - started) / count)
    return best


class Counter(Handler):
    def __init__(self, count: int) -> None:
        self.count = count
        self.received = 0
        self.done = threading.Event()

    def on_event(self, event: DataEvent) -> None:
        self.received += 1
        if self.received == self.count:
            self.done.set()


def client_rate(count: int) -> float:
    client_id = stored_for("client", count)
    counter = Counter(count)
    config = ClientConfig(servers=[f"127.0.0.1:{PORT}"], client_id=client_id, prefetch=PREFETCH)
    client = NfmpClient(config, counter)
    started = time.perf_counter()
    client.start()
    if not counter.done.wait(300):
        raise RuntimeError(f"client got {counter.received} of {count}")
    elapsed = time.perf_counter() - started
    client.decommission()
    return count / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000, help="messages per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best of each is kept (default 3)")
    args = parser.parse_args()
    ensure_broker()
    raws, ours = [], []
    for _ in range(args.rounds):  # interleaved, so that a change of load on the machine hits both alike
        raws.append(raw_rate(args.messages))
        ours.append(client_rate(args.messages))
    raw, client = max(raws), max(ours)
    ratio = client / raw
    message = encode_event(ALARM)
    decode_us = decode_cost(message.headers, message.body) * 1e6
    ceiling = 1 / (1 / raw + decode_us / 1e6)
    print(f"{'consumer':<34} {'messages/s':>12}")
    print(f"{'raw stomp.py (ack only)':<34} {raw:>12,.0f}")
    print(f"{'NfmpClient (decode+handler)':<34} {client:>12,.0f}")
    print(f"{'raw + decoding alone (ceiling)':<34} {ceiling:>12,.0f}   decode {decode_us:.1f} us/message")
    print(f"ratio {ratio:.2f} (target >= {TARGET_RATIO}: {'MET' if ratio >= TARGET_RATIO else 'MISSED'})")
    print(f"{args.messages} messages of {len(message.body)} bytes per round, best of {args.rounds}")
    print(
        json.dumps(
            {
                "message_bytes": len(message.body),
                "messages": args.messages,
                "raw_per_s": round(raw),
                "client_per_s": round(client),
                "ratio": round(ratio, 3),
                "decode_us": round(decode_us, 1),
                "decode_ceiling_per_s": round(ceiling),
                "target_ratio": TARGET_RATIO,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
