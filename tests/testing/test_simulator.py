"""The simulated NFM-P server on a real ActiveMQ broker, observed with plain stomp.py subscribers.

The library's own client is not used here: the simulator has to be proven on its own.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
import stomp

from nfmp_client import (
    Event,
    FindFaultsRequest,
    FindRequest,
    JmsMissedEvents,
    KeepAliveEvent,
    ObjectCreation,
    SystemInfoEvent,
    TerminateClientSession,
)
from nfmp_client.codec import decode_message
from nfmp_client.testing import (
    PORT_CLASS,
    ActiveMQAdmin,
    FaultProxy,
    NetworkModel,
    ServerIdentity,
    SimulatedServer,
    SimulatorError,
    SnapshotServer,
)
from nfmp_client.xmlapi import decode_response, encode_request

from ..conftest import BrokerFactory, BrokerInfo, process_alive
from .test_snapshot import post

pytestmark = pytest.mark.integration

MAIN = "5620-SAM-topic-xml"
FAULT = "5620-SAM-topic-xml-fault"
WAIT = 10.0  # seconds: the longest any expected message may take


class Oss(stomp.ConnectionListener):  # type: ignore[misc]
    """A plain stomp.py NFM-P subscriber: selector on its client id, client-individual acks."""

    def __init__(self, broker: BrokerInfo, client_id: str | None = None) -> None:
        self.broker = broker
        self.client_id = client_id or f"oss-{uuid.uuid4().hex[:8]}@1"
        self.events: queue.Queue[tuple[str, Event]] = queue.Queue()
        self.disconnected = threading.Event()
        self.conn: Any = None

    def on_message(self, frame: Any) -> None:
        topic = frame.headers["destination"].removeprefix("/topic/")
        self.events.put((topic, decode_message(frame.headers, frame.body)))
        self.conn.ack(frame.headers["ack"])

    def on_disconnected(self) -> None:
        self.disconnected.set()

    def connect(self, *topics: str, durable: bool = True) -> Oss:
        self.disconnected.clear()
        deadline = time.monotonic() + WAIT
        while True:  # the broker may still hold the client id of a connection it just closed
            self.conn = stomp.Connection12(self.broker.hosts, heartbeats=(0, 0), reconnect_attempts_max=1)
            self.conn.set_listener("oss", self)
            try:
                self.conn.connect(wait=True, headers={"client-id": self.client_id})
                break
            except stomp.exception.ConnectFailedException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for topic in topics or (MAIN,):
            headers = {"selector": f"ALA_clientId in ('{self.client_id}','')", "receipt": f"sub-{topic}"}
            if durable:
                headers["activemq.subscriptionName"] = f"{self.client_id}-{topic}"
            self.conn.subscribe(f"/topic/{topic}", id=topic, ack="client-individual", headers=headers)
        return self

    def disconnect(self) -> None:
        if self.conn is not None and self.conn.is_connected():
            self.conn.disconnect(receipt=f"bye-{uuid.uuid4()}")

    def next(self, kind: type[Any], *, timeout: float = WAIT, strict: bool = True) -> tuple[str, Any]:
        """The next event of *kind*; keep-alives and SystemInfoEvents met on the way are skipped, other
        kinds fail the test (or are skipped too when not *strict*)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.client_id} got no {kind.__name__} within {timeout} s")
            try:
                topic, event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(event, kind):
                return topic, event
            if strict and not isinstance(event, (KeepAliveEvent, SystemInfoEvent)):
                raise AssertionError(f"{self.client_id} expected {kind.__name__}, got {event!r}")

    def drain(self, seconds: float) -> list[Event]:
        """Everything that arrives within *seconds*."""
        got: list[Event] = []
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got.append(self.events.get(timeout=remaining)[1])
            except queue.Empty:
                break
        return got


@pytest.fixture
def oss(broker: BrokerInfo) -> Iterator[Oss]:
    client = Oss(broker)
    yield client
    client.disconnect()


class TestServing:
    def test_system_info_on_subscribe(self, server: SimulatedServer, oss: Oss) -> None:
        """A new subscriber gets a SystemInfoEvent addressed to it with the server's identity."""
        oss.connect()
        server.wait_for_subscriber(oss.client_id)

        topic, info = oss.next(SystemInfoEvent)

        assert topic == MAIN
        assert info.header.client_id == oss.client_id
        assert info.sys_start_time == server.identity.sys_start_time
        assert info.jms_start_time == server.identity.jms_start_time
        assert info.sys_primary_ip == server.identity.primary_ip

    def test_subscriber_is_seen_by_the_broker_advisories(self, server: SimulatedServer, oss: Oss) -> None:
        """The simulator knows each subscription's client id, topic, durable name and selector."""
        oss.connect(MAIN, FAULT)

        sub = server.wait_for_subscriber(oss.client_id, topic=FAULT)

        assert sub.durable
        assert sub.subscription_name == f"{oss.client_id}-{FAULT}"
        assert sub.selector == f"ALA_clientId in ('{oss.client_id}','')"

    def test_keepalives_on_every_topic(self, server: SimulatedServer, oss: Oss) -> None:
        """KeepAliveEvents arrive on each subscribed topic at the configured interval."""
        oss.connect(MAIN, FAULT, durable=False)
        server.wait_for_subscriber(oss.client_id, topic=FAULT)

        topics = [topic for topic, event in _collect(oss, 1.5) if isinstance(event, KeepAliveEvent)]

        assert topics.count(MAIN) >= 3
        assert topics.count(FAULT) >= 3

    def test_generated_events_reach_main_and_category_topics(self, server: SimulatedServer, oss: Oss) -> None:
        """Generated events arrive decoded, alarms on the fault topic as well, and change the model."""
        oss.connect(MAIN, FAULT, durable=False)
        server.wait_for_subscriber(oss.client_id, topic=FAULT)
        before = server.model.snapshot()

        sent = server.generate(20)
        received = [
            (t, e) for t, e in _collect(oss, 2.0) if not isinstance(e, (KeepAliveEvent, SystemInfoEvent))
        ]

        assert [bare(e) for t, e in received if t == MAIN] == sent
        fault = [e for e in sent if e.header.category == "FAULT"]
        assert fault
        assert [bare(e) for t, e in received if t == FAULT] == fault
        assert server.model.snapshot() != before

    def test_silence_stops_everything_but_keeps_the_connection(
        self, server: SimulatedServer, oss: Oss
    ) -> None:
        """While silent nothing is sent and the connection stays open; resume brings keep-alives back."""
        oss.connect(durable=False)
        server.wait_for_subscriber(oss.client_id)
        oss.next(KeepAliveEvent)

        server.silence()
        oss.drain(0.3)  # what was in flight
        quiet = oss.drain(1.0)  # five keep-alive intervals
        server.resume()

        assert quiet == []
        assert oss.conn.is_connected()
        assert not oss.disconnected.is_set()
        oss.next(KeepAliveEvent, timeout=2.0)

    def test_a_silent_server_waits_instead_of_spinning(self, server: SimulatedServer) -> None:
        """Silent (a hung server, or the standby of a redundant pair for minutes), its worker thread sleeps:
        it used the whole of a core before (it kept waking for the keep-alive it does not send)."""
        server.silence()
        time.sleep(0.2)
        before = _worker_cpu_seconds()
        time.sleep(1.0)
        used = _worker_cpu_seconds() - before
        server.resume()

        assert used < 0.2


class TestKeepAlives:
    def test_each_keepalive_is_stamped_with_its_send_time(self, server: SimulatedServer, oss: Oss) -> None:
        """MTOSI_osTime of every keep-alive is the moment it went out: just before the broker took it."""
        oss.connect(durable=False)
        server.wait_for_subscriber(oss.client_id)

        keepalives = [e for _, e in _collect(oss, 1.0) if isinstance(e, KeepAliveEvent)]

        assert len(keepalives) >= 3
        for event in keepalives:
            assert event.header.os_time is not None
            sent_ms = int(event.header.os_time.timestamp() * 1000)
            assert 0 <= int(event.header.stomp_headers["timestamp"]) - sent_ms < 500
        stamps = [e.header.os_time for e in keepalives if e.header.os_time is not None]
        assert stamps == sorted(stamps)

    @pytest.mark.parametrize("persistent", [True, False], ids=["persistent", "not-persistent"])
    def test_keepalives_for_an_away_durable_subscriber(
        self, broker: BrokerInfo, admin: ActiveMQAdmin, oss: Oss, persistent: bool
    ) -> None:
        """Persistent keep-alives (the default) are stored for an away durable subscriber, every one of its
        absence, without expiry; non-persistent ones expire after four intervals: it finds only the last."""
        interval = 0.2
        with SimulatedServer(
            broker.host,
            broker.port,
            admin=admin,
            keepalive_interval=interval,
            keepalive_persistent=persistent,
            client_id=f"sim-{uuid.uuid4().hex[:8]}",
        ) as sim:
            oss.connect()
            sim.wait_for_subscriber(oss.client_id)
            oss.next(KeepAliveEvent)
            oss.disconnect()
            _wait_away(admin, oss.client_id)
            oss.drain(0.1)
            left = datetime.now(timezone.utc)
            time.sleep(10 * interval)
            sim.sync()
            back = datetime.now(timezone.utc)
            oss.connect()
            sim.wait_for_subscriber(oss.client_id)
            got = _collect(oss, 1.0)

        stored = [
            e
            for _, e in got
            if isinstance(e, KeepAliveEvent)
            and e.header.os_time is not None
            and left < e.header.os_time < back
        ]
        assert stored
        if persistent:
            assert len(stored) >= 7  # ten intervals away
            assert stored[0].header.os_time is not None
            assert stored[0].header.os_time - left < timedelta(seconds=2 * interval)
            assert {e.header.stomp_headers["persistent"] for e in stored} == {"true"}
            assert {e.header.stomp_headers.get("expires", "0") for e in stored} == {"0"}
        else:
            oldest = back - timedelta(seconds=4 * interval + 0.1)
            assert all(e.header.os_time is not None and e.header.os_time > oldest for e in stored), stored
            assert {e.header.stomp_headers.get("persistent", "false") for e in stored} == {"false"}
            assert all(e.header.stomp_headers["expires"] != "0" for e in stored)


class TestVirtualTopic:
    def test_events_reach_the_consumer_queues_of_a_virtual_topic(
        self, broker: BrokerInfo, admin: ActiveMQAdmin, oss: Oss
    ) -> None:
        """Published into VirtualTopic.5620-SAM-topic-xml, events and keep-alives reach a consumer of
        Consumer.<name>.VirtualTopic.5620-SAM-topic-xml; only topic subscribers are welcomed."""
        virtual = f"VirtualTopic.{MAIN}"
        reader = QueueReader(broker, f"Consumer.t{uuid.uuid4().hex[:8]}.{virtual}")
        with (
            SimulatedServer(
                broker.host,
                broker.port,
                admin=admin,
                seed=3,
                keepalive_interval=0.2,
                topics=(virtual,),
                client_id=f"sim-{uuid.uuid4().hex[:8]}",
            ) as sim,
            contextlib.closing(reader),
        ):
            sent = sim.generate(5)
            got = _collect(reader, 1.0)
            assert sim.subscribers() == []  # a queue consumer is never seen, so never welcomed

            oss.connect(virtual, durable=False)  # a subscriber on the virtual topic itself
            sub = sim.wait_for_subscriber(oss.client_id)
            _, welcome = oss.next(SystemInfoEvent)
            got += _collect(reader, 0.5)

        assert sub.topic == virtual
        assert welcome.header.client_id == oss.client_id
        events = [e for _, e in got]
        assert [bare(e) for e in events if not isinstance(e, (KeepAliveEvent, SystemInfoEvent))] == sent
        assert any(isinstance(e, KeepAliveEvent) for e in events)
        # The one SystemInfoEvent in the queue is the topic subscriber's, carried along like any event.
        assert [e.header.client_id for e in events if isinstance(e, SystemInfoEvent)] == [oss.client_id]
        assert {t for t, _ in got} == {f"/queue/{reader.queue}"}

    def test_only_nfmp_topics_and_their_virtual_topics_are_served(self) -> None:
        """A topic that is not NFM-P's, virtual or not, is refused when the server is built."""
        SimulatedServer(topics=("VirtualTopic.5620-SAM-topic-xml-fault", "5620-SAM-topic-xml"))
        for wrong in ("other", "VirtualTopic.other", "Consumer.a.VirtualTopic.5620-SAM-topic-xml"):
            with pytest.raises(ValueError, match="virtual topics named after them"):
                SimulatedServer(topics=(wrong,))


class QueueReader(Oss):
    """A consumer of one queue (a virtual topic's), client-individual acks; events as Oss gets them."""

    def __init__(self, broker: BrokerInfo, queue_name: str) -> None:
        super().__init__(broker)
        self.queue = queue_name
        self.subscribed = threading.Event()
        self.conn = stomp.Connection12(broker.hosts, heartbeats=(0, 0))
        self.conn.set_listener("oss", self)
        self.conn.connect(wait=True)
        self.conn.subscribe(
            f"/queue/{queue_name}", id="q", ack="client-individual", headers={"receipt": "subscribed"}
        )
        assert self.subscribed.wait(WAIT)

    def on_receipt(self, frame: Any) -> None:
        if frame.headers.get("receipt-id") == "subscribed":
            self.subscribed.set()

    def close(self) -> None:
        self.disconnect()


def _worker_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by the simulators' worker threads of this process."""
    ticks = 0
    for thread in threading.enumerate():
        if thread.name == "nfmp-simulator" and thread.native_id is not None:
            stat = Path(f"/proc/self/task/{thread.native_id}/stat").read_text()
            fields = stat.rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the whole line)
    return ticks / os.sysconf("SC_CLK_TCK")


class TestTruth:
    def test_mirror_from_snapshot_and_events_equals_the_model(
        self, server: SimulatedServer, oss: Oss
    ) -> None:
        """A mirror that reads the XML API snapshot while events flow, then applies them, ends equal to the truth."""
        oss.connect()
        server.wait_for_subscriber(oss.client_id)
        server.set_rate(200)
        with SnapshotServer(server.model, latency=0.2) as xmlapi:
            time.sleep(0.2)
            mirror = NetworkModel(decode_response(post(xmlapi.url, encode_request(FindFaultsRequest()))[1]))
            for port in decode_response(
                post(xmlapi.url, encode_request(FindRequest(full_class_name=PORT_CLASS)))[1]
            ):
                mirror.put(port)
            time.sleep(0.2)
        server.set_rate(0)

        last = server.generate(1)[0]  # everything before it has been published
        while True:
            _, event = oss.events.get(timeout=WAIT)
            mirror.apply(event)
            if bare(event) == last:
                break

        assert mirror.snapshot() == server.model.snapshot()
        assert len(mirror) > 10


class TestScenarios:
    def test_missed_events(self, server: SimulatedServer, oss: Oss) -> None:
        """missed_events sends a JmsMissedEvents addressed to that client only."""
        other = Oss(oss.broker).connect()
        oss.connect()
        server.wait_for_subscriber(oss.client_id)
        server.wait_for_subscriber(other.client_id)

        server.missed_events(oss.client_id)

        _, missed = oss.next(JmsMissedEvents)
        assert missed.header.client_id == oss.client_id
        assert not [e for e in other.drain(0.5) if isinstance(e, JmsMissedEvents)]
        other.disconnect()

    def test_overflow_really_drops_events_for_one_client(self, server: SimulatedServer, oss: Oss) -> None:
        """overflow: the client gets none of the N events (others get all of them), then JmsMissedEvents."""
        other = Oss(oss.broker).connect()
        oss.connect()
        server.wait_for_subscriber(oss.client_id)
        server.wait_for_subscriber(other.client_id)
        before = server.model.snapshot()

        dropped = server.overflow(oss.client_id, 15)

        mine = [
            e
            for e in _until(oss, JmsMissedEvents)
            if not isinstance(e, (KeepAliveEvent, SystemInfoEvent, JmsMissedEvents))
        ]
        assert mine == []
        theirs = [e for e in other.drain(1.5) if isinstance(e, (ObjectCreation,)) or hasattr(e, "changes")]
        assert len(theirs) >= len([e for e in dropped if isinstance(e, ObjectCreation)])
        assert server.model.snapshot() != before
        other.disconnect()

    def test_terminate_keeps_the_durable_subscription(
        self, server: SimulatedServer, oss: Oss, admin: ActiveMQAdmin
    ) -> None:
        """terminate: TerminateClientSession, then the connection closes; the durable subscription stays."""
        oss.connect()
        server.wait_for_subscriber(oss.client_id)

        server.terminate(oss.client_id)

        _, notice = oss.next(TerminateClientSession)
        assert notice.client_id == oss.client_id
        assert oss.disconnected.wait(WAIT)
        subs = [s for s in admin.durable_subscriptions() if s.client_id == oss.client_id]
        assert [s.subscription_name for s in subs] == [f"{oss.client_id}-{MAIN}"]

    def test_terminate_remove_then_missed_events_on_reconnect(
        self, server: SimulatedServer, oss: Oss, admin: ActiveMQAdmin
    ) -> None:
        """terminate --remove deletes the subscription; the next connect gets SystemInfo then JmsMissedEvents."""
        oss.connect()
        server.wait_for_subscriber(oss.client_id)
        oss.next(SystemInfoEvent)

        server.terminate(oss.client_id, remove=True)
        oss.next(TerminateClientSession)
        assert oss.disconnected.wait(WAIT)
        assert not [s for s in admin.durable_subscriptions() if s.client_id == oss.client_id]

        oss.connect()
        oss.next(SystemInfoEvent)
        oss.next(JmsMissedEvents)

    def test_restart_keeps_durable_backlog_and_changes_start_times(
        self, server: SimulatedServer, oss: Oss
    ) -> None:
        """restart: connections dropped, new start times; a durable subscriber gets what was sent meanwhile."""
        oss.connect()
        server.wait_for_subscriber(oss.client_id)
        _, first = oss.next(SystemInfoEvent)

        server.restart()
        assert oss.disconnected.wait(WAIT)
        while not oss.events.empty():  # what came before the restart (a second SystemInfoEvent, keep-alives)
            oss.events.get_nowait()
        sent = server.generate(3)
        server.sync()
        oss.connect()
        # The stored backlog and the fresh SystemInfoEvent may come in either order (the broker dispatches
        # new messages while it pages the stored ones in); the backlog's own order holds.
        got: list[Event] = []
        deadline = time.monotonic() + WAIT
        while not (
            any(isinstance(e, SystemInfoEvent) for e in got)
            and sum(not isinstance(e, (KeepAliveEvent, SystemInfoEvent)) for e in got) >= len(sent)
        ):
            assert time.monotonic() < deadline, f"got only {got!r}"
            with contextlib.suppress(queue.Empty):
                got.append(oss.events.get(timeout=0.1)[1])
        (info,) = [e for e in got if isinstance(e, SystemInfoEvent)]
        backlog = [e for e in got if not isinstance(e, (KeepAliveEvent, SystemInfoEvent))]

        assert [bare(e) for e in backlog] == sent
        assert info.sys_start_time != first.sys_start_time
        assert info.jms_start_time != first.jms_start_time
        assert info.sys_primary_ip == first.sys_primary_ip

    def test_restart_wipe_loses_the_backlog(self, server: SimulatedServer, oss: Oss) -> None:
        """restart with wiped durable subscriptions: what was sent meanwhile never arrives."""
        oss.connect()
        server.wait_for_subscriber(oss.client_id)
        oss.next(SystemInfoEvent)

        server.restart(keep_durable_subscriptions=False)
        assert oss.disconnected.wait(WAIT)
        server.generate(3)
        server.sync()
        oss.connect()
        got = _until(oss, SystemInfoEvent)

        assert [e for e in got if not isinstance(e, (KeepAliveEvent, SystemInfoEvent))] == []

    def test_switchover_changes_primary_and_unsubscribes(
        self, server: SimulatedServer, oss: Oss, admin: ActiveMQAdmin
    ) -> None:
        """switchover: every client dropped and unsubscribed; SystemInfo names the new primary."""
        oss.connect()
        server.wait_for_subscriber(oss.client_id)
        _, first = oss.next(SystemInfoEvent)

        server.switchover("192.0.2.77")

        assert oss.disconnected.wait(WAIT)
        assert not [s for s in admin.durable_subscriptions() if s.client_id == oss.client_id]
        oss.connect()
        _, info = oss.next(SystemInfoEvent)
        assert info.sys_primary_ip == "192.0.2.77" != first.sys_primary_ip
        assert info.sys_start_time == first.sys_start_time

    def test_remove_subscription_of_an_away_client(
        self, server: SimulatedServer, oss: Oss, admin: ActiveMQAdmin
    ) -> None:
        """remove_subscription deletes an away client's subscription; its next one gets SystemInfo, then
        JmsMissedEvents addressed to it."""
        oss.connect()
        server.wait_for_subscriber(oss.client_id)
        oss.next(SystemInfoEvent)
        oss.disconnect()
        _wait_away(admin, oss.client_id)

        removed = server.remove_subscription(oss.client_id)

        assert removed == 1
        assert not [s for s in admin.durable_subscriptions() if s.client_id == oss.client_id]
        oss.connect()
        got = [e for e in _until(oss, JmsMissedEvents) if not isinstance(e, KeepAliveEvent)]
        assert [type(e) for e in got] == [SystemInfoEvent, JmsMissedEvents]
        assert got[1].header.client_id == oss.client_id

    def test_remove_subscription_of_a_connected_client_closes_it_first(
        self, server: SimulatedServer, oss: Oss, admin: ActiveMQAdmin
    ) -> None:
        """remove_subscription on a client that is connected after all: its connection is closed, then its
        subscriptions are removed."""
        oss.connect(MAIN, FAULT)
        server.wait_for_subscriber(oss.client_id, topic=FAULT)

        removed = server.remove_subscription(oss.client_id)

        assert removed == 2
        assert oss.disconnected.wait(WAIT)
        assert not [s for s in admin.durable_subscriptions() if s.client_id == oss.client_id]

    def test_adopt_is_told_to_the_next_subscriber(self, server: SimulatedServer, oss: Oss) -> None:
        """adopt: the next SystemInfoEvent tells the adopted identity; open connections are left alone."""
        other = Oss(oss.broker).connect()
        server.wait_for_subscriber(other.client_id)
        identity = ServerIdentity(
            sys_start_time="1790000000000", jms_start_time="1790000002000", primary_ip="192.0.2.42"
        )
        assert server.identity != identity

        server.adopt(identity)
        oss.connect()
        server.wait_for_subscriber(oss.client_id)

        _, info = oss.next(SystemInfoEvent)
        assert server.identity == identity
        assert (info.sys_start_time, info.jms_start_time, info.sys_primary_ip) == (
            "1790000000000",
            "1790000002000",
            "192.0.2.42",
        )
        assert other.conn.is_connected()
        assert not other.disconnected.is_set()
        other.disconnect()

    @pytest.mark.parametrize("keepalive_interval", [0.2, 0.0], ids=["keep-alives", "no-keep-alives"])
    def test_broker_restarted_after_a_kill(
        self, broker_factory: BrokerFactory, caplog: pytest.LogCaptureFixture, keepalive_interval: float
    ) -> None:
        """The broker is killed and started again: the simulator keeps retrying until it is back (with or
        without keep-alives to wake it), and a returning subscriber gets the new jmsStartTime."""
        caplog.set_level(logging.INFO, logger="nfmp_client.testing")
        info = broker_factory()
        oss = Oss(info)
        sim = SimulatedServer(
            info.host,
            info.port,
            admin=ActiveMQAdmin(info.jmx_url),
            seed=7,
            keepalive_interval=keepalive_interval,
            client_id=f"sim-{uuid.uuid4().hex[:8]}",
            connect_timeout=0.5,  # shorter than the broker's start: the first reconnect round fails
        )
        with sim, contextlib.ExitStack() as cleanup:
            cleanup.callback(oss.disconnect)
            oss.connect()
            sim.wait_for_subscriber(oss.client_id)
            _, first = oss.next(SystemInfoEvent)

            pid = info.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            _wait_for(lambda: not process_alive(pid), "the broker process to go")
            assert oss.disconnected.wait(WAIT)
            _wait_for(lambda: _logged(caplog, "retrying"), "a failed reconnect round")
            info.start()
            identity = sim.broker_restarted()
            oss.connect()
            sim.wait_for_subscriber(oss.client_id)

            # A SystemInfoEvent whose ack the killed broker did not store may come again first: skip it.
            deadline = time.monotonic() + WAIT
            while (info_event := oss.next(SystemInfoEvent)[1]).jms_start_time == first.jms_start_time:
                assert time.monotonic() < deadline
            if keepalive_interval:
                oss.next(KeepAliveEvent)

        assert info_event.jms_start_time == identity.jms_start_time
        assert int(identity.jms_start_time) > int(first.jms_start_time)
        assert info_event.sys_start_time == first.sys_start_time == identity.sys_start_time
        assert info_event.sys_primary_ip == first.sys_primary_ip
        failures = [
            r for r in caplog.records if r.name == "nfmp_client.testing" and r.levelno >= logging.ERROR
        ]
        assert not failures, [r.getMessage() for r in failures]

    def test_back_on_a_broker_stopped_for_seconds(
        self, broker_factory: BrokerFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The broker is stopped for seconds and started again, and events are generated while the
        worker's reconnect is under way: they are published on the worker's connection and reach a durable
        subscriber within seconds. A publisher that connected beside the worker, under the lock, would be
        refused ("already connected") for the whole connect timeout, the client id held by the worker's new
        connection, itself waiting for that lock to be installed.

        The simulator reaches the broker through a proxy that delays each way by a second, so the worker's
        CONNECT is known to have reached the broker a second before its answer comes back: the window of
        the race, which a broker slow to answer at start-up opens too."""
        caplog.set_level(logging.INFO, logger="nfmp_client.testing")
        info = broker_factory()
        oss = Oss(info)
        with contextlib.ExitStack() as cleanup:
            proxy = cleanup.enter_context(FaultProxy(info.host, info.port))
            sim = cleanup.enter_context(
                SimulatedServer(
                    *proxy.address, seed=11, keepalive_interval=0.2, client_id=f"sim-{uuid.uuid4().hex[:8]}"
                )
            )
            cleanup.callback(oss.disconnect)
            oss.connect()
            sim.wait_for_subscriber(oss.client_id)
            oss.next(SystemInfoEvent)
            oss.disconnect()

            info.stop()
            proxy.delay(1.0)
            time.sleep(0.5)
            before = proxy.stats().bytes_to_target
            info.start()
            proxy.wait_until(lambda s: s.bytes_to_target > before)  # the worker's CONNECT is there
            sim.broker_restarted()
            started = time.monotonic()
            sent = sim.generate(5)
            oss.connect()
            got: list[Event] = []
            while len(got) < len(sent) and (remaining := started + 5.0 - time.monotonic()) > 0:
                with contextlib.suppress(queue.Empty):
                    event = oss.events.get(timeout=remaining)[1]
                    if not isinstance(event, (KeepAliveEvent, SystemInfoEvent)):
                        got.append(bare(event))

        assert got == sent
        refused = [r.getMessage() for r in caplog.records if "already connected" in r.getMessage()]
        assert not refused, refused

    def test_scenarios_need_admin(self, broker: BrokerInfo) -> None:
        """Without broker admin access the session scenarios say what is missing."""
        with (
            SimulatedServer(
                broker.host, broker.port, keepalive_interval=0, client_id=f"sim-{uuid.uuid4().hex}"
            ) as sim,
            pytest.raises(SimulatorError, match="admin"),
        ):
            sim.restart()
        with pytest.raises(SimulatorError, match="admin"):
            SimulatedServer(broker.host, broker.port, keepalive_interval=0).remove_subscription("oss@1")


def bare(event: Any) -> Any:
    """*event* without the STOMP headers it was received with: comparable to what was sent."""
    return attrs.evolve(event, header=attrs.evolve(event.header, stomp_headers={}))


def _collect(oss: Oss, seconds: float) -> list[tuple[str, Event]]:
    got: list[tuple[str, Event]] = []
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            got.append(oss.events.get(timeout=remaining))
        except queue.Empty:
            break
    return got


def _until(oss: Oss, kind: type[Any], timeout: float = WAIT) -> list[Event]:
    """Every event up to and including the first of *kind*."""
    got: list[Event] = []
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {kind.__name__} within {timeout} s; got {got!r}"
        try:
            event = oss.events.get(timeout=remaining)[1]
        except queue.Empty:
            continue
        got.append(event)
        if isinstance(event, kind):
            return got


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in list(caplog.records) if r.name == "nfmp_client.testing")


def _wait_away(admin: ActiveMQAdmin, client_id: str) -> None:
    """Until the broker lists the client's durable subscriptions as detached (it frees them shortly after
    the client disconnects)."""

    def away() -> bool:
        subs = [s for s in admin.durable_subscriptions() if s.client_id == client_id]
        return bool(subs) and not any(s.active for s in subs)

    _wait_for(away, f"the subscriptions of {client_id} to be detached")
