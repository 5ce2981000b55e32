"""Memory: the growth of the client process's resident set (VmRSS) in two situations that pile events up.

(a) A slow handler. A publisher process streams ~2 KB alarms at 1,000 events/s (one every 1 ms) for two
    minutes to a durable subscription; the handler sleeps 100 ms per event, so it is 100 times slower than
    the stream. A message is acknowledged only once the handler returned, so the broker sends no more than
    the prefetch window ahead: what waits must wait on the broker, and the client's memory must stay flat.
(b) A resync that holds. The application's ``on_resync_required`` defers the request (a retrieval under way)
    and completes it only once 100,000 events were published, as fast as the publisher can, and received.
    With ``ResyncMode.HOLD_AND_REPLAY`` (the default) they are held for replay, bounded by
    ``ClientConfig.hold_limit`` (events) and ``hold_limit_bytes`` (bytes as received): past either, the
    hold is dropped and the resync starts over (``HOLD_OVERFLOW``). The table says how many were held at
    most, whether and at which count the hold overflowed, and the memory a held event takes.

Each situation runs in a fresh process of its own (the client's), and the publisher in another one: only the
client's memory is measured, sampled every 50 ms from ``/proc/self/status``; the growth is the peak against
the level just before the events start (MB here are 2**20 bytes, as in ``hold_limit_bytes``). When the
machine has two cores, the broker's threads are pinned to core 0 (with the publisher) and the client to
core 1, as in production where the broker is another host; the JSON says whether it could pin.
Target: growth <= 50 MB in each.

Needs the project's broker: ``scripts/broker start`` (this script starts it if it is not running).
Usage: python benchmarks/memory.py [--slow-seconds S] [--hold-events N]   (the last line is one JSON object)
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import gc
import json
import logging
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import attrs
import stomp

from nfmp_client import (
    ClientConfig,
    ConnectionState,
    DataEvent,
    EventHeader,
    Handler,
    NfmpClient,
    ResyncRequest,
    SystemInfoEvent,
)
from nfmp_client.codec import encode_event

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse import ALARM  # the same typical alarm as the parse benchmark
from pinning import broker_pid, ensure_broker

PORT = int(os.environ.get("NFMP_BROKER_PORT", "61613"))
TOPIC = "5620-SAM-topic-xml"
BROKER_CORE, CLIENT_CORE = 0, 1
TARGET_MB = 50
MB = 1 << 20
SEQ_HEADER = "benchSeq"  # the event's number in its stream, as a STOMP header (JMS property)
SENT_HEADER = "benchSentNs"  # time.time_ns() when the publisher sent it: comparable across processes


# ------------------------------------------------------------------------------ broker and cores


def cpu_seconds(pid: int | str) -> float:
    """The CPU time, user and system, that process *pid* ("self": this one) has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int | str, core: int) -> None:
    """Put every thread of process *pid* ("self": this one) on *core*; threads started later inherit it."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {core})


def pin_broker() -> bool:
    """Pin the broker to BROKER_CORE so that CLIENT_CORE is the client's alone; return whether it could."""
    if not {BROKER_CORE, CLIENT_CORE} <= os.sched_getaffinity(0):
        return False
    pid = broker_pid()
    if pid is None:
        return False
    try:
        before = os.sched_getaffinity(pid)
        pin(pid, BROKER_CORE)
    except OSError:
        return False
    atexit.register(unpin, pid, before)  # the broker outlives this run: leave it as it was
    return True


def unpin(pid: int, cores: set[int]) -> None:
    """Put every thread of process *pid* back on *cores*."""
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), cores)


def run_isolated(function: Callable[..., Any], *args: Any, core: int | None) -> Any:
    """Run ``function(*args)`` in a new process (on *core*, if given) and return its result.

    A fresh process per measurement: no memory or threads left over from an earlier one.
    """
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_isolated, args=(sender, core, function, args))
    process.start()
    sender.close()
    try:
        outcome, value = receiver.recv()
    except EOFError:
        raise RuntimeError(f"the measuring process died (exit code {process.exitcode})") from None
    finally:
        process.join()
    if outcome == "error":
        raise RuntimeError(f"the measuring process failed: {value}")
    return value


def _isolated(
    sender: Connection, core: int | None, function: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    if core is not None:
        pin("self", core)
    try:
        sender.send(("ok", function(*args)))
    except Exception as exc:  # noqa: BLE001  # reported to the parent, which raises
        sender.send(("error", f"{type(exc).__name__}: {exc}"))


# ------------------------------------------------------------------------------------- publisher


class Publisher:
    """A publishing process of its own (on the broker's core when pinned): its memory and CPU are not the
    client's. Every alarm carries its number (``benchSeq``) and the time it was sent (``benchSentNs``)."""

    def __init__(self, core: int | None) -> None:
        """Start the process; *core*: the core to run on, or None."""
        context = multiprocessing.get_context("spawn")
        self._commands, child = context.Pipe()
        self._process = context.Process(target=_publisher, args=(child, PORT, core), daemon=True)
        self._process.start()
        child.close()

    def system_info(self, client_id: str) -> None:
        """Greet *client_id* with a SystemInfoEvent, as NFM-P greets a new subscriber; wait for the broker."""
        self._commands.send(("system-info", client_id))
        self._reply(30)

    def stream(self, count: int, rate: float = 0.0, *, to: str, persistent: bool = True) -> None:
        """Start publishing *count* alarms, *rate* per second (0: as fast as possible); returns at once.

        They are addressed to the client id *to* (``ALA_clientId``): the broker may be shared, and another
        durable subscription on the topic must neither store them nor send its own to this benchmark's.
        """
        self._commands.send(("stream", count, rate, to, persistent))

    def wait(self, timeout: float) -> tuple[int, float]:
        """Wait until the stream is published and the broker confirmed it; return (count, seconds)."""
        count, seconds = self._reply(timeout)
        return int(count), float(seconds)

    def close(self) -> None:
        """End the process."""
        with contextlib.suppress(OSError):
            self._commands.send(("quit",))
        self._process.join(10)
        if self._process.is_alive():
            self._process.terminate()

    def _reply(self, timeout: float) -> Any:
        if not self._commands.poll(timeout):
            raise RuntimeError(f"the publisher did not answer within {timeout:g} s")
        outcome, value = self._commands.recv()
        if outcome == "error":
            raise RuntimeError(f"the publisher failed: {value}")
        return value


def _publisher(commands: Connection, port: int, core: int | None) -> None:
    if core is not None:
        pin("self", core)
    conn = stomp.Connection12([("127.0.0.1", port)])
    receipts: list[str] = []
    done = threading.Condition()

    class Receipts(stomp.ConnectionListener):  # type: ignore[misc]
        def on_receipt(self, frame: Any) -> None:
            with done:
                receipts.append(frame.headers["receipt-id"])
                done.notify_all()

    def confirmed() -> None:
        receipt = uuid.uuid4().hex
        # A receipt on another destination: the broker took every frame sent before it (one connection).
        conn.send("/topic/bench-sync", b"", headers={"receipt": receipt, "persistent": "false"})
        with done:
            if not done.wait_for(lambda: receipt in receipts, 300):
                raise RuntimeError("the broker did not confirm the publishing")

    conn.set_listener("receipts", Receipts())
    conn.connect(wait=True)
    # The publisher stands for NFM-P, whose JMS server hands each message on at once; stomp.py leaves Nagle's
    # algorithm on, which holds a small send back until the last one is acknowledged (about 13 ms here).
    conn.transport.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        command = commands.recv()
        try:
            if command[0] == "quit":
                break
            if command[0] == "system-info":
                message = encode_event(system_info_event(command[1]))
                conn.send(f"/topic/{TOPIC}", message.body, headers={**message.headers, "persistent": "true"})
                confirmed()
                commands.send(("ok", None))
            elif command[0] == "stream":
                _, count, rate, to, persistent = command
                alarm = encode_event(attrs.evolve(ALARM, header=attrs.evolve(ALARM.header, client_id=to)))
                started = time.perf_counter()
                for seq in range(count):
                    if rate:
                        ahead = started + seq / rate - time.perf_counter()
                        if ahead > 0:
                            time.sleep(ahead)
                    headers = {
                        **alarm.headers,
                        "persistent": "true" if persistent else "false",
                        SEQ_HEADER: str(seq),
                        SENT_HEADER: str(time.time_ns()),
                    }
                    conn.send(f"/topic/{TOPIC}", alarm.body, headers=headers)
                confirmed()
                commands.send(("ok", (count, time.perf_counter() - started)))
        except Exception as exc:  # noqa: BLE001  # reported to the parent, which raises
            commands.send(("error", f"{type(exc).__name__}: {exc}"))
    conn.disconnect()


def system_info_event(client_id: str) -> SystemInfoEvent:
    """The SystemInfoEvent NFM-P sends a new subscriber: the server's identity (here, an unchanging one)."""
    return SystemInfoEvent(
        header=EventHeader(
            event_name="SystemInfoEvent",
            object_type="StateChangeEvent",
            nt_type="ALA_OTHER",
            category="GENERAL",
            client_id=client_id,
            os_time=datetime.now(timezone.utc).replace(microsecond=0),
        ),
        sys_start_time="1795420000000",
        jms_start_time="1795420000000",
        sys_primary_ip="192.0.2.10",
    )


def started_client(
    config: ClientConfig, handler: Handler, publisher: Publisher, *, in_sync: bool = True
) -> NfmpClient:
    """Start a client, subscribed and greeted (so that its first resync is asked); *in_sync*: wait until that
    resync completed (the handler must not defer it)."""
    client = NfmpClient(config, handler)
    client.start()
    if not client.wait_for_state(ConnectionState.CONNECTED, timeout=60):
        client.stop()
        raise RuntimeError(f"the client did not connect: {client.last_loss}")
    publisher.system_info(config.client_id)
    deadline = time.monotonic() + 60
    while in_sync and not client.in_sync:
        if time.monotonic() > deadline:
            client.stop()
            raise RuntimeError("the first resync did not complete")
        time.sleep(0.02)
    return client


def new_config(kind: str, state_dir: str, **settings: Any) -> ClientConfig:
    """A configuration with a client id of its own, a fresh state directory and :func:`own_only`."""
    client_id = f"bench-{kind}-{uuid.uuid4().hex[:6]}@1"
    return ClientConfig(
        servers=[f"127.0.0.1:{PORT}"],
        client_id=client_id,
        state_dir=state_dir,
        filter=own_only(client_id),
        **settings,
    )


def own_only(client_id: str) -> str:
    """The application filter that admits only the data events addressed to *client_id*: on a shared broker,
    not those another benchmark or test publishes to every client (``ALA_clientId`` empty)."""
    return f"ALA_clientId = '{client_id}'"


def data_received(client: NfmpClient) -> int:
    """Data events the client received so far, handed over or held (system events and notices aside)."""
    stats = client.statistics
    return stats.messages - stats.system_events - stats.ignored_notices - stats.queue_depth


def remove_subscription(client_id: str, timeout: float = 600) -> None:
    """Delete the durable subscription of *client_id* (named after it), with what is stored for it.

    ActiveMQ takes minutes to delete 100,000 stored messages, longer than ``NfmpClient.decommission`` waits
    for its confirmation; this waits up to *timeout* seconds.
    """
    confirmed = threading.Event()

    class Receipt(stomp.ConnectionListener):  # type: ignore[misc]
        def on_receipt(self, frame: Any) -> None:
            if frame.headers.get("receipt-id") == "removed":
                confirmed.set()

    conn = stomp.Connection12([("127.0.0.1", PORT)])
    conn.set_listener("removal", Receipt())
    conn.connect(wait=True, headers={"client-id": client_id})
    conn.unsubscribe("1", headers={"activemq.subscriptionName": client_id, "receipt": "removed"})
    removed = confirmed.wait(timeout)
    conn.disconnect()
    if not removed:
        raise RuntimeError(f"the broker did not confirm the removal of {client_id}'s subscription")


# ------------------------------------------------------------------------------------------ memory


def rss() -> int:
    """This process's resident set in bytes (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssPeak:
    """Samples this process's VmRSS every *interval* seconds from :meth:`start` on, keeping the highest."""

    def __init__(self, interval: float = 0.05) -> None:
        """Prepare; nothing is sampled before :meth:`start`."""
        self.interval = interval
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="rss", daemon=True)

    def start(self) -> None:
        """Take the level now (after a garbage collection) as the base, and start sampling."""
        gc.collect()
        self.base = self.peak = rss()
        self._thread.start()

    def stop(self) -> float:
        """Stop sampling; return the growth, peak against base, in MB."""
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss())
        return (self.peak - self.base) / MB

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss())


# ---------------------------------------------------------------------------------- (a) slow handler


class SlowHandler(Handler):
    """Takes *seconds* per event (asleep, as if waiting for a database), until told to hurry."""

    def __init__(self, seconds: float) -> None:
        """Sleep *seconds* in each ``on_event``."""
        self.seconds = seconds
        self.hurry = False
        self.handled = 0

    def on_event(self, event: DataEvent) -> None:
        """Count the event and take the time."""
        self.handled += 1
        if not self.hurry:
            time.sleep(self.seconds)


def slow_handler(seconds: float, rate: float, slowdown: float, publisher_core: int | None) -> dict[str, Any]:
    """Situation (a), in the client's process: the figures."""
    handler = SlowHandler(slowdown / rate)
    publisher = Publisher(publisher_core)
    with tempfile.TemporaryDirectory() as state_dir:
        config = new_config("slow", state_dir)
        client = started_client(config, handler, publisher)
        try:
            handled_before = handler.handled
            memory = RssPeak()
            memory.start()
            publisher.stream(round(seconds * rate), rate, to=config.client_id)
            published, publish_seconds = publisher.wait(seconds * 2 + 120)
            growth = memory.stop()
            handled = handler.handled - handled_before
        finally:
            handler.hurry = True
            client.stop()
            publisher.close()
            remove_subscription(config.client_id)  # with the backlog left on the broker
    return {
        "slow_handler_rss_growth_mb": round(growth, 1),
        "slow_handler_base_rss_mb": round(memory.base / MB, 1),
        "slow_seconds": round(publish_seconds, 1),
        "slow_published": published,
        "slow_stream_per_s": round(published / publish_seconds),
        "slow_handler_s_per_event": handler.seconds,
        "slow_handled": handled,
        "slow_waiting_on_broker": published - handled,
        "prefetch": config.prefetch,
    }


# ------------------------------------------------------------------------------------- (b) the hold


class HoldingApp(Handler):
    """Defers every resync request (a retrieval under way); counts the held events replayed after it."""

    def __init__(self) -> None:
        """Nothing asked yet."""
        self.requests: list[ResyncRequest] = []
        self.asked = threading.Event()
        self.replayed = 0
        self.first_replayed: int | None = None

    def on_resync_required(self, request: ResyncRequest) -> None:
        """Keep the request open: completed by the benchmark once every event was published."""
        request.defer()
        self.requests.append(request)
        self.asked.set()

    def on_event(self, event: DataEvent) -> None:
        """Count a replayed event; note the number of the first."""
        if self.first_replayed is None:
            self.first_replayed = int(event.header.stomp_headers[SEQ_HEADER])
        self.replayed += 1


class OverflowCount(logging.Handler):
    """Counts the client's warnings that a hold overflowed (its log line is the only sign of each one)."""

    def __init__(self) -> None:
        """None counted yet."""
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        """Count a record that says a resync starts over because too much arrived."""
        if "arrived during resync" in record.getMessage():
            self.count += 1


def hold(events: int, hold_limit: int, hold_limit_bytes: int, publisher_core: int | None) -> dict[str, Any]:
    """Situation (b), in the client's process: the figures."""
    app = HoldingApp()
    overflows = OverflowCount()
    logging.getLogger("nfmp_client").addHandler(overflows)
    publisher = Publisher(publisher_core)
    with tempfile.TemporaryDirectory() as state_dir:
        config = new_config("hold", state_dir, hold_limit=hold_limit, hold_limit_bytes=hold_limit_bytes)
        client = started_client(config, app, publisher, in_sync=False)
        try:
            if not app.asked.wait(60):
                raise RuntimeError("no resync was asked")
            received_before = data_received(client)
            memory = RssPeak()
            memory.start()
            started = time.monotonic()
            publisher.stream(events, to=config.client_id)
            published, publish_seconds = publisher.wait(events / 100 + 120)
            while data_received(client) - received_before < events:
                if time.monotonic() > started + events / 100 + 120:
                    raise RuntimeError("the client did not receive every event")
                time.sleep(0.05)
            receive_seconds = time.monotonic() - started
            growth = memory.stop()
            deadline = time.monotonic() + 120
            while app.first_replayed is None or app.replayed < events - app.first_replayed:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the held events were not replayed ({app.replayed} so far)")
                latest = app.requests[-1]  # the hold is for the latest request; earlier ones were replaced
                if not latest.settled:
                    latest.complete()
                time.sleep(0.05)
        finally:
            logging.getLogger("nfmp_client").removeHandler(overflows)
            client.decommission(timeout=30)
            publisher.close()
    dropped = app.first_replayed  # each overflow drops the hold and the event that overflowed it
    held_at_overflow = dropped // overflows.count - 1 if overflows.count and dropped else None
    held_most = held_at_overflow if held_at_overflow is not None else app.replayed
    return {
        "hold_rss_growth_mb": round(growth, 1),
        "hold_base_rss_mb": round(memory.base / MB, 1),
        "hold_events": published,
        "hold_publish_per_s": round(published / publish_seconds),
        "hold_receive_seconds": round(receive_seconds, 1),
        "hold_limit": hold_limit,
        "hold_limit_bytes": hold_limit_bytes,
        "hold_overflow": bool(dropped),
        "hold_overflows": overflows.count,
        "held_at_overflow": held_at_overflow,
        "held_at_end": app.replayed,
        "held_most": held_most,
        "hold_rss_bytes_per_held_event": round(growth * MB / held_most) if held_most else None,
        # Reached the byte limit: the RSS the hold takes per byte of it (what to divide a memory budget by).
        "hold_rss_per_limit_byte": round(growth * MB / hold_limit_bytes, 2) if dropped else None,
        "hold_requests": len(app.requests),
    }


# -------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--slow-seconds", type=float, default=120.0, help="(a): stream duration (default 120)"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="(a): events/s published (default 1000)")
    parser.add_argument(
        "--slowdown", type=float, default=100.0, help="(a): handler time / event interval (100)"
    )
    parser.add_argument(
        "--hold-events", type=int, default=100_000, help="(b): events during the hold (100000)"
    )
    defaults = ClientConfig(servers=["127.0.0.1"], client_id="defaults@1")
    parser.add_argument(
        "--hold-limit",
        type=int,
        default=defaults.hold_limit,
        help="(b): ClientConfig.hold_limit (its default)",
    )
    parser.add_argument(
        "--hold-limit-bytes",
        type=int,
        default=defaults.hold_limit_bytes,
        help="(b): ClientConfig.hold_limit_bytes (its default)",
    )
    parser.add_argument("--skip-slow", action="store_true", help="run (b) only")
    parser.add_argument("--skip-hold", action="store_true", help="run (a) only")
    args = parser.parse_args()
    ensure_broker()
    pinned = pin_broker()
    client_core, publisher_core = (CLIENT_CORE, BROKER_CORE) if pinned else (None, None)
    figures: dict[str, Any] = {
        "pinned": pinned,
        "target_mb": TARGET_MB,
        "message_bytes": len(encode_event(ALARM).body),
    }
    if not args.skip_slow:
        figures.update(
            run_isolated(
                slow_handler, args.slow_seconds, args.rate, args.slowdown, publisher_core, core=client_core
            )
        )
    if not args.skip_hold:
        figures.update(
            run_isolated(
                hold,
                args.hold_events,
                args.hold_limit,
                args.hold_limit_bytes,
                publisher_core,
                core=client_core,
            )
        )

    print(f"{'situation':<62} {'RSS growth':>10}")
    f = figures
    if not args.skip_slow:
        situation = (
            f"(a) slow handler: {f['slow_stream_per_s']:,} ev/s for {f['slow_seconds']:.0f} s, "
            f"{f['slow_handler_s_per_event'] * 1000:g} ms per event"
        )
        growth = f["slow_handler_rss_growth_mb"]
        print(f"{situation:<62} {growth:>7.1f} MB  {verdict(growth)}")
        print(
            f"    {f['slow_published']:,} published, {f['slow_handled']:,} handled, "
            f"{f['slow_waiting_on_broker']:,} left waiting on the broker (prefetch {f['prefetch']})"
        )
    if not args.skip_hold:
        situation = f"(b) a resync holding {f['hold_events']:,} arriving events"
        growth = f["hold_rss_growth_mb"]
        print(f"{situation:<62} {growth:>7.1f} MB  {verdict(growth)}")
        if f["held_at_overflow"] is not None:
            times = "once" if f["hold_overflows"] == 1 else f"{f['hold_overflows']} times"
            overflow = f"overflowed {times}, each time at {f['held_at_overflow']:,} held"
        else:
            overflow = "overflowed" if f["hold_overflow"] else "no overflow"
        print(
            f"    limits {f['hold_limit']:,} events / {f['hold_limit_bytes'] / MB:g} MB: {overflow}; "
            f"{f['held_at_end']:,} held at the end, replayed"
        )
        if f["hold_rss_bytes_per_held_event"]:
            print(
                f"    {f['hold_rss_bytes_per_held_event']:,} bytes of RSS per held event "
                f"({f['message_bytes']:,}-byte messages)"
            )
        if f["hold_rss_per_limit_byte"]:
            per_byte = f["hold_rss_per_limit_byte"]
            print(
                f"    bounded by hold_limit_bytes: {per_byte:g} bytes of RSS per byte of it; "
                f"<= {TARGET_MB} MB needs hold_limit_bytes <= {TARGET_MB / per_byte:.0f} MB"
            )
    print(f"target <= {TARGET_MB} MB each; broker and client pinned to cores of their own: {pinned}")
    print(json.dumps(figures))
    return 0


def verdict(growth: float) -> str:
    """Whether a growth in MB meets the target."""
    return "meets" if growth <= TARGET_MB else "MISSES"


if __name__ == "__main__":
    sys.exit(main())
