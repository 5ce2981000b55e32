"""Latency: publish -> handler at a steady 1,000 events/s, and the time to drain a stored backlog.

Both are measured for the client and, in the same run, for what a user writes by hand: a stomp.py listener
that parses each message with lxml (the hardened parser options of nfmp_client's decoder, as in
``benchmarks/parse.py``) and acknowledges it (``client-individual``, the same prefetch).

Stream: a publisher process sends ~2 KB persistent alarms at 1,000 events/s for 30 s (after 2 s of warm-up,
not counted) to a durable subscription, each stamped with ``time.time_ns()`` when sent (a STOMP header; the
same clock in both processes, on the same machine); the consumer takes the difference as it gets the event
(the client: in ``on_event``; by hand: once parsed). The client is connected and in sync before the stream
starts. Target: the client's p99 <= 10 ms.

Backlog: 100,000 alarms are stored for an offline durable subscription, then the consumer connects and the
time until all were received and acknowledged is measured, with the CPU time the consumer process and the
broker used meanwhile. ``drain_ratio`` is the client's rate over the hand-written one.

Each measurement runs in a fresh process of its own (the consumer's), the publisher in another one. When
the machine has two cores, the broker's threads are pinned to core 0 (with the publisher) and the consumer to
core 1, as in production where the broker is another host; the JSON says whether it could pin.

Needs the project's broker: ``scripts/broker start`` (this script starts it if it is not running).
Usage: python benchmarks/latency.py [--seconds S] [--rate R] [--backlog N]   (the last line: one JSON object)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import stomp
from lxml import etree

from nfmp_client import DataEvent, Handler, NfmpClient
from nfmp_client.codec import encode_event
from nfmp_client.selector import build_selector

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory import (  # the publisher process, the broker and the cores, shared with the memory benchmark
    BROKER_CORE,
    CLIENT_CORE,
    PORT,
    SENT_HEADER,
    TOPIC,
    Publisher,
    cpu_seconds,
    new_config,
    own_only,
    pin_broker,
    remove_subscription,
    run_isolated,
    started_client,
)
from parse import ALARM, BASELINE_PARSER  # the typical alarm; lxml with the decoder's hardened options
from pinning import broker_pid, ensure_broker
from throughput import Counter  # counts events until the last

TARGET_P99_MS = 10.0
PREFETCH = 100  # the client's default, for the hand-written consumer too


# ------------------------------------------------------------------------------------------ stream


class Stamps(Handler):
    """Takes each event's latency: now against the send time it carries."""

    def __init__(self, expected: int) -> None:
        """Expect *expected* events."""
        self.expected = expected
        self.latencies_ns: list[int] = []
        self.done = threading.Event()

    def on_event(self, event: DataEvent) -> None:
        """Record the latency of *event*."""
        self.latencies_ns.append(time.time_ns() - int(event.header.stomp_headers[SENT_HEADER]))
        if len(self.latencies_ns) == self.expected:
            self.done.set()


def percentile(ordered: list[int], fraction: float) -> int:
    """The nearest-rank percentile of an ordered list."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary(latencies_ns: list[int], prefix: str = "") -> dict[str, float]:
    """p50, p99, max and mean in milliseconds, under keys that start with *prefix*."""
    ordered = sorted(latencies_ns)
    return {
        f"{prefix}p50_ms": round(percentile(ordered, 0.50) / 1e6, 2),
        f"{prefix}p99_ms": round(percentile(ordered, 0.99) / 1e6, 2),
        f"{prefix}max_ms": round(ordered[-1] / 1e6, 2),
        f"{prefix}mean_ms": round(sum(ordered) / len(ordered) / 1e6, 2),
    }


def client_stream(
    seconds: float, rate: float, warmup: float, persistent: bool, publisher_core: int | None
) -> dict[str, Any]:
    """The stream to NfmpClient, in its own process: the figures."""
    warm, measured = round(warmup * rate), round(seconds * rate)
    stamps = Stamps(warm + measured)
    publisher = Publisher(publisher_core)
    with tempfile.TemporaryDirectory() as state_dir:
        config = new_config("latency", state_dir)
        client = started_client(config, stamps, publisher)
        try:
            publisher.stream(warm + measured, rate, to=config.client_id, persistent=persistent)
            published, publish_seconds = publisher.wait(warmup + seconds * 2 + 60)
            if not stamps.done.wait(60):
                raise RuntimeError(f"the client got {len(stamps.latencies_ns)} of {published} events")
        finally:
            client.decommission(timeout=30)
            publisher.close()
    return {
        **summary(stamps.latencies_ns[warm:]),
        "latency_events": measured,
        "latency_published_per_s": round(published / publish_seconds),
    }


def handwritten_stream(
    seconds: float, rate: float, warmup: float, persistent: bool, publisher_core: int | None
) -> dict[str, Any]:
    """The same stream to the hand-written consumer, in its own process: the figures."""
    warm, measured = round(warmup * rate), round(seconds * rate)
    client_id = f"bench-handlat-{uuid.uuid4().hex[:6]}@1"
    consumer = HandWritten(warm + measured, stamps=[])
    conn = connected(client_id, consumer)
    publisher = Publisher(publisher_core)
    try:
        publisher.stream(warm + measured, rate, to=client_id, persistent=persistent)
        publisher.wait(warmup + seconds * 2 + 60)
        if not consumer.done.wait(60):
            raise RuntimeError(f"the hand-written consumer got {consumer.received} of {warm + measured}")
    finally:
        publisher.close()
        conn.disconnect(receipt="bye")
        remove_subscription(client_id)
    assert consumer.stamps is not None
    return summary(consumer.stamps[warm:], "handwritten_")


# ------------------------------------------------------------------------------------------- drain


def selector(client_id: str) -> str:
    """The client's selector for *client_id*, hence the hand-written consumer's too."""
    return build_selector(client_id, own_only(client_id))


def subscribe_offline(client_id: str) -> None:
    """Create the durable subscription, then leave, so that what is published next is stored for it."""
    conn = stomp.Connection12([("127.0.0.1", PORT)])
    conn.connect(wait=True, headers={"client-id": client_id})
    conn.subscribe(
        f"/topic/{TOPIC}",
        id="1",
        ack="client-individual",
        # The client's own selector: a durable subscription re-created with another one loses its backlog.
        headers={"activemq.subscriptionName": client_id, "selector": selector(client_id)},
    )
    conn.disconnect(receipt="subscribed")


def stored(client_id: str, count: int, publisher_core: int | None, *, greet: bool) -> None:
    """Store *count* alarms for a new offline durable subscription of *client_id*.

    *greet*: then a SystemInfoEvent, as NFM-P greets a subscriber (after what was stored for it).
    """
    subscribe_offline(client_id)
    publisher = Publisher(publisher_core)
    try:
        publisher.stream(count, to=client_id)
        publisher.wait(count / 100 + 120)
        if greet:
            publisher.system_info(client_id)
    finally:
        publisher.close()


class HandWritten(stomp.ConnectionListener):  # type: ignore[misc]
    """What a user writes by hand: parse each message with lxml (hardened), acknowledge it.

    *stamps*: a list to record each message's latency in (nanoseconds), or None.
    """

    def __init__(self, count: int, stamps: list[int] | None = None) -> None:
        """Expect *count* messages."""
        self.count = count
        self.stamps = stamps
        self.received = 0
        self.done = threading.Event()
        self.subscribed = threading.Event()
        self.conn: Any = None

    def on_receipt(self, frame: Any) -> None:
        """Note that the subscription is in place."""
        if frame.headers.get("receipt-id") == "subscribed":
            self.subscribed.set()

    def on_message(self, frame: Any) -> None:
        """Parse, acknowledge, count."""
        etree.fromstring(frame.body, BASELINE_PARSER)
        if self.stamps is not None:
            self.stamps.append(time.time_ns() - int(frame.headers[SENT_HEADER]))
        self.conn.ack(frame.headers["ack"])
        self.received += 1
        if self.received == self.count:
            self.done.set()


def connected(client_id: str, consumer: HandWritten) -> Any:
    """Connect *consumer* to the durable subscription of *client_id* (created if there is none)."""
    conn = stomp.Connection12([("127.0.0.1", PORT)], heartbeats=(10_000, 10_000), auto_decode=False)
    consumer.conn = conn
    conn.set_listener("hand", consumer)
    conn.connect(wait=True, headers={"client-id": client_id})
    conn.subscribe(
        f"/topic/{TOPIC}",
        id="1",
        ack="client-individual",
        headers={
            "activemq.subscriptionName": client_id,
            "selector": selector(client_id),
            "activemq.prefetchSize": str(PREFETCH),
            "receipt": "subscribed",
        },
    )
    if not consumer.subscribed.wait(30):
        raise RuntimeError("the broker did not confirm the subscription")
    return conn


class Drain:
    """Times a drain: seconds, and the CPU seconds of this process and of the broker (if known) meanwhile."""

    def __init__(self, broker: int | None) -> None:
        """Start the clocks; *broker*: the broker's process id, or None."""
        self.broker = broker
        self.started = time.perf_counter()
        self.cpu = time.process_time()
        self.broker_cpu = cpu_seconds(broker) if broker else 0.0

    def figures(self) -> dict[str, float | None]:
        """Stop the clocks: seconds, consumer_cpu_s, broker_cpu_s."""
        return {
            "seconds": time.perf_counter() - self.started,
            "consumer_cpu_s": time.process_time() - self.cpu,
            "broker_cpu_s": cpu_seconds(self.broker) - self.broker_cpu if self.broker else None,
        }


def handwritten_drain(count: int, broker: int | None, publisher_core: int | None) -> dict[str, float | None]:
    """The hand-written consumer drains *count* stored alarms, in its own process: the times."""
    client_id = f"bench-hand-{uuid.uuid4().hex[:6]}@1"
    try:
        stored(client_id, count, publisher_core, greet=False)
        consumer = HandWritten(count)
        drain = Drain(broker)
        conn = connected(client_id, consumer)
        if not consumer.done.wait(count / 100 + 120):
            raise RuntimeError(f"the hand-written consumer got {consumer.received} of {count}")
        figures = drain.figures()
        conn.disconnect(receipt="bye")
    finally:
        remove_subscription(client_id)
    return figures


def client_drain(count: int, broker: int | None, publisher_core: int | None) -> dict[str, float | None]:
    """NfmpClient drains *count* stored alarms, in its own process: the times."""
    with tempfile.TemporaryDirectory() as state_dir:
        config = new_config("drain", state_dir, prefetch=PREFETCH)
        counter = Counter(count)
        client = NfmpClient(config, counter)
        try:
            stored(config.client_id, count, publisher_core, greet=True)
            drain = Drain(broker)
            client.start()
            if not counter.done.wait(count / 100 + 120):
                raise RuntimeError(f"the client got {counter.received} of {count}")
            figures = drain.figures()
        finally:
            client.decommission(timeout=30)
    return figures


# -------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="stream: measured seconds (default 30)")
    parser.add_argument("--rate", type=float, default=1000.0, help="stream: events/s (default 1000)")
    parser.add_argument("--warmup", type=float, default=2.0, help="stream: seconds not counted (default 2)")
    parser.add_argument(
        "--non-persistent",
        action="store_true",
        help="stream: publish non-persistent (the broker stores none)",
    )
    parser.add_argument("--backlog", type=int, default=100_000, help="drain: stored events (default 100000)")
    parser.add_argument("--skip-stream", action="store_true", help="measure the drains only")
    parser.add_argument("--skip-drain", action="store_true", help="measure the stream only")
    args = parser.parse_args()
    ensure_broker()
    pinned = pin_broker()
    consumer_core, publisher_core = (CLIENT_CORE, BROKER_CORE) if pinned else (None, None)
    figures: dict[str, Any] = {"pinned": pinned, "message_bytes": len(encode_event(ALARM).body)}
    if not args.skip_stream:
        stream = (args.seconds, args.rate, args.warmup, not args.non_persistent, publisher_core)
        figures.update(run_isolated(handwritten_stream, *stream, core=consumer_core))
        figures.update(run_isolated(client_stream, *stream, core=consumer_core))
        figures.update(
            {
                "latency_seconds": args.seconds,
                "latency_rate_per_s": args.rate,
                "warmup_seconds": args.warmup,
                "persistent": not args.non_persistent,
                "target_p99_ms": TARGET_P99_MS,
            }
        )
    if not args.skip_drain:
        broker = broker_pid()
        figures["backlog"] = args.backlog
        for name, drain in (("handwritten", handwritten_drain), ("client", client_drain)):
            timed = run_isolated(drain, args.backlog, broker, publisher_core, core=consumer_core)
            figures[f"{name}_drain_s"] = round(timed["seconds"], 2)
            figures[f"{name}_drain_per_s"] = round(args.backlog / timed["seconds"])
            figures[f"{name}_drain_cpu_us"] = round(timed["consumer_cpu_s"] / args.backlog * 1e6, 1)
            if timed["broker_cpu_s"] is not None:  # the share of its core the broker used meanwhile
                figures[f"{name}_drain_broker_busy"] = round(timed["broker_cpu_s"] / timed["seconds"], 2)
        figures["drain_ratio"] = round(figures["handwritten_drain_s"] / figures["client_drain_s"], 3)

    f = figures
    if not args.skip_stream:
        kind = "persistent" if f["persistent"] else "non-persistent"
        print(
            f"stream: {f['latency_rate_per_s']:g} {kind} events/s for {f['latency_seconds']:g} s "
            f"({f['latency_events']:,} events; the client's published at {f['latency_published_per_s']:,}/s)"
        )
        print(f"{'publish -> handler, ms':<44} {'p50':>8} {'p99':>8} {'max':>8} {'mean':>8}")
        for label, prefix in (
            ("stomp.py + lxml parse + ack (hand-written)", "handwritten_"),
            ("NfmpClient", ""),
        ):
            row = [f[f"{prefix}{key}"] for key in ("p50_ms", "p99_ms", "max_ms", "mean_ms")]
            print(f"{label:<44}" + "".join(f" {value:>8.2f}" for value in row))
        verdict = "meets" if f["p99_ms"] <= TARGET_P99_MS else "MISSES"
        print(f"target: the client's p99 <= {TARGET_P99_MS:g} ms: {verdict}")
    if not args.skip_drain:
        print(f"drain of {f['backlog']:,} stored alarms of {f['message_bytes']:,} bytes")
        print(f"{'consumer':<44} {'seconds':>8} {'messages/s':>11} {'CPU/message':>12} {'broker busy':>12}")
        for label, name in (
            ("stomp.py + lxml parse + ack (hand-written)", "handwritten"),
            ("NfmpClient", "client"),
        ):
            busy = f.get(f"{name}_drain_broker_busy")
            print(
                f"{label:<44} {f[f'{name}_drain_s']:>8.1f} {f[f'{name}_drain_per_s']:>11,} "
                f"{f[f'{name}_drain_cpu_us']:>9.1f} us {'?' if busy is None else f'{busy:.0%}':>12}"
            )
        print(f"drain ratio (client / hand-written) {f['drain_ratio']:.2f}")
    print(f"broker and consumer pinned to cores of their own: {pinned}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
