"""End-to-end consuming speed: NfmpClient against raw stomp.py consumers, same broker, same ~2 KB alarms.

For each consumer, N alarm ObjectCreation messages are stored on the broker for an offline durable
subscription first, then the consumer connects and the time until all N were received and acknowledged is
measured (so the figure is consumption alone, not publishing), with the consumer process's CPU time per
message. Three consumers, in alternating rounds, the best round of each kept:

* ack only: a stomp.py listener that acknowledges each message on stomp.py's receiver thread
  (``client-individual``, the same prefetch) and does nothing else: the transport's limit;
* hand-written: the same, parsing each body with lxml (the client's hardened parser options) before the
  acknowledgement: what an application writes by hand without this library;
* NfmpClient: receives, decodes into typed events, de-duplicates, dispatches to a handler, acknowledges.

Targets: the client at >= 1.0x the hand-written consumer and >= 0.8x the ack-only one. The broker and the
consumer compete for CPU on a small machine, so the broker is pinned to the first core and this process to
another (``taskset``/``sched_setaffinity``; as in production, where the broker is another host); the output
says whether pinning was possible. A fourth line gives the ceiling if decoding (measured alone, same run) were
the client's only cost on top of the ack-only consumer.

Needs the project's broker: ``scripts/broker start`` (this script starts it if it is not running).
Usage: python benchmarks/throughput.py [--messages N] [--rounds R] [--no-pin]   (last line: one JSON object)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import stomp
from lxml import etree

from nfmp_client import ClientConfig, DataEvent, Handler, NfmpClient
from nfmp_client.codec import EventCodec, encode_event
from nfmp_client.selector import build_selector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse import (
    ALARM,  # the same typical alarm as the parse benchmark
    BASELINE_PARSER as HARDENED,  # the client's hardened parser options
)
from pinning import ensure_broker, pinned

PORT = int(os.environ.get("NFMP_BROKER_PORT", "61613"))
TOPIC = "5620-SAM-topic-xml"
PREFETCH = 100
TARGET_RATIO = 0.8  # the client / the ack-only consumer
TARGET_HANDWRITTEN_RATIO = 1.0  # the client / the hand-written consumer


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


def publish(count: int, client_id: str) -> None:
    # Addressed to this round's subscription alone (ALA_clientId): another subscription on the topic (another
    # round, another run) does not store them.
    message = encode_event(attrs.evolve(ALARM, header=attrs.evolve(ALARM.header, client_id=client_id)))
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
    """Acknowledges each message on stomp.py's receiver thread; *parse*: parses the body with lxml first."""

    def __init__(self, count: int, *, parse: bool) -> None:
        self.count = count
        self.parse = parse
        self.received = 0
        self.done = threading.Event()
        self.conn: Any = None

    def on_message(self, frame: Any) -> None:
        if self.parse:
            etree.fromstring(frame.body, HARDENED)
        self.conn.ack(frame.headers["ack"])
        self.received += 1
        if self.received == self.count:
            self.done.set()


def stored_for(kind: str, count: int) -> str:
    """A new durable subscription with *count* alarms stored for it, offline; return its client id."""
    client_id = f"bench-{kind}-{uuid.uuid4().hex[:6]}@1"
    subscribe_offline(client_id)
    publish(count, client_id)
    return client_id


class Rate:
    """Messages per second and CPU microseconds per message of one round."""

    def __init__(self, count: int, seconds: float, cpu: float) -> None:
        self.per_s = count / seconds
        self.cpu_us = cpu / count * 1e6


def raw_rate(count: int, *, parse: bool) -> Rate:
    client_id = stored_for("hand" if parse else "raw", count)
    consumer = RawConsumer(count, parse=parse)
    # Bodies as bytes, as the client reads them (and lxml wants them).
    conn = stomp.Connection12([("127.0.0.1", PORT)], heartbeats=(10_000, 10_000), auto_decode=False)
    consumer.conn = conn
    conn.set_listener("raw", consumer)
    cpu, started = time.process_time(), time.perf_counter()
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
    rate = Rate(count, time.perf_counter() - started, time.process_time() - cpu)
    conn.disconnect(receipt="bye")
    remove(client_id)
    return rate


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


def client_rate(count: int) -> Rate:
    client_id = stored_for("client", count)
    counter = Counter(count)
    config = ClientConfig(servers=[f"127.0.0.1:{PORT}"], client_id=client_id, prefetch=PREFETCH)
    client = NfmpClient(config, counter)
    cpu, started = time.process_time(), time.perf_counter()
    client.start()
    if not counter.done.wait(300):
        raise RuntimeError(f"client got {counter.received} of {count}")
    rate = Rate(count, time.perf_counter() - started, time.process_time() - cpu)
    client.decommission()
    return rate


def best(rates: list[Rate]) -> Rate:
    return max(rates, key=lambda rate: rate.per_s)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=5000, help="messages per round (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best of each is kept (default 3)")
    parser.add_argument("--no-pin", action="store_true", help="leave the broker and this process unpinned")
    args = parser.parse_args()
    ensure_broker()
    raws: list[Rate] = []
    hands: list[Rate] = []
    ours: list[Rate] = []
    with pinned(not args.no_pin) as not_pinned:
        for _ in range(args.rounds):  # interleaved, so that a change of load on the machine hits all alike
            raws.append(raw_rate(args.messages, parse=False))
            hands.append(raw_rate(args.messages, parse=True))
            ours.append(client_rate(args.messages))
    raw, hand, client = best(raws), best(hands), best(ours)
    ratio, hand_ratio = client.per_s / raw.per_s, client.per_s / hand.per_s
    message = encode_event(ALARM)
    decode_us = decode_cost(message.headers, message.body) * 1e6
    ceiling = 1 / (1 / raw.per_s + decode_us / 1e6)
    print(f"{'consumer':<40} {'messages/s':>12} {'CPU us/message':>15}")
    for name, rate in (
        ("stomp.py, ack each (the transport)", raw),
        ("stomp.py + lxml parse + ack each", hand),
        ("NfmpClient (decode, dedup, handler)", client),
    ):
        print(f"{name:<40} {rate.per_s:>12,.0f} {rate.cpu_us:>15.1f}")
    print(
        f"{'ack only + decoding alone (ceiling)':<40} {ceiling:>12,.0f}   decode {decode_us:.1f} us/message"
    )
    for label, value, target in (
        ("client / hand-written", hand_ratio, TARGET_HANDWRITTEN_RATIO),
        ("client / ack only", ratio, TARGET_RATIO),
    ):
        verdict = "MET" if value >= target else "MISSED"
        print(f"{label:<22} {value:.2f} (target >= {target}: {verdict})")
    print(
        f"{args.messages} messages of {len(message.body)} bytes per round, best of {args.rounds}; "
        + ("broker and consumer pinned to separate cores" if not not_pinned else f"not pinned: {not_pinned}")
    )
    print(
        json.dumps(
            {
                "message_bytes": len(message.body),
                "messages": args.messages,
                "raw_per_s": round(raw.per_s),
                "raw_cpu_us": round(raw.cpu_us, 1),
                "handwritten_per_s": round(hand.per_s),
                "handwritten_cpu_us": round(hand.cpu_us, 1),
                "client_per_s": round(client.per_s),
                "client_cpu_us": round(client.cpu_us, 1),
                "ratio": round(ratio, 3),
                "handwritten_ratio": round(hand_ratio, 3),
                "decode_us": round(decode_us, 1),
                "decode_ceiling_per_s": round(ceiling),
                "target_ratio": TARGET_RATIO,
                "target_handwritten_ratio": TARGET_HANDWRITTEN_RATIO,
                "pinned": not not_pinned,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
