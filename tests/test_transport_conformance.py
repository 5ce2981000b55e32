"""One conformance suite, two transports: the in-memory broker and stomp.py on a real ActiveMQ.

The supervisor's tests trust :class:`~nfmp_client.testing.MemoryBroker` to behave like ActiveMQ Classic; a
fake is only trusted if the real thing passes the same tests (docs/style.md, rule 16). Every case here runs
against both through a ``harness``: ``memory`` (a MemoryBroker on a FakeClock, instant) and ``activemq``
(:class:`~nfmp_client.engine.StompTransport` through a FaultProxy to the session's broker, marked
``integration``). A case says what happens on the wire in terms of the transport Protocol only.

Absence is shown by order where it can be: "nothing of the backlog arrives" is checked by publishing a
marker afterwards and seeing the marker come first, which needs no waiting on the real broker.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
import stomp

from nfmp_client import BrokerEndpoint, ClientConfig, LossReason, RetryPolicy
from nfmp_client.engine import (
    AttemptFailed,
    Clock,
    FrameBatch,
    FrameReceived,
    Lost,
    MonotonicClock,
    Opened,
    Transport,
    TransportFactory,
    TransportReport,
    stomp_transport,
)
from nfmp_client.testing import (
    ActiveMQAdmin,
    FakeClock,
    FaultProxy,
    MemoryBroker,
    MemoryServer,
)

from .conftest import BrokerInfo, free_ports

WAIT = 5.0  # seconds a real broker may take for what should be at once
CONNECT_DELAY = 1.5  # seconds the proxy holds back every byte while a connect is "delayed"
HEARTBEATS = (500, 500)
GRACE = 2.5
AUTH_ERROR = "User name [oss] or password is invalid."  # ActiveMQ's words for a refused login


class Reports:
    """Every report of every transport a harness made, in arrival order (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[TransportReport] = []
        self.batches = 0

    def sink(self, report: TransportReport) -> None:
        with self._lock:
            if isinstance(report, FrameBatch):  # the messages of one read, each of the batch's epoch
                assert report.frames
                assert all(frame.epoch == report.epoch for frame in report.frames)
                self.batches += 1
                self._items.extend(report.frames)
            else:
                self._items.append(report)

    def of(self, epoch: int) -> list[TransportReport]:
        with self._lock:
            return [r for r in self._items if r.epoch == epoch]

    def opened(self, epoch: int) -> list[Opened]:
        return [r for r in self.of(epoch) if isinstance(r, Opened)]

    def frames(self, epoch: int) -> list[FrameReceived]:
        return [r for r in self.of(epoch) if isinstance(r, FrameReceived)]

    def lost(self, epoch: int) -> list[Lost]:
        return [r for r in self.of(epoch) if isinstance(r, Lost)]

    def bodies(self, epoch: int) -> list[bytes]:
        return [frame.body for frame in self.frames(epoch)]


class Harness(abc.ABC):
    """A server, a client configuration and the faults, the same way for either transport."""

    name: str
    clock: Clock
    open_attempts: int = 1
    """How often :func:`connect` may try: ActiveMQ frees the client id of an aborted connection only once it
    has seen the socket close, which can take a moment longer than the next CONNECT takes to arrive."""

    def __init__(self, server: BrokerEndpoint) -> None:
        self.config = ClientConfig(
            servers=[server],
            client_id=fresh_client_id(),
            topic=f"conformance-{uuid.uuid4().hex[:8]}",  # this test's alone: no one else's messages
            heartbeats=HEARTBEATS,
            heartbeat_grace=GRACE,
            retry=RetryPolicy(connect_timeout=2.0),
        )
        self.reports = Reports()
        self.made: list[tuple[Transport, ClientConfig]] = []
        self._numbers = itertools.count(1)

    @property
    @abc.abstractmethod
    def factory(self) -> TransportFactory:
        """The transport factory under test."""

    def configure(self, **changes: Any) -> ClientConfig:
        """The harness's configuration with *changes* (same server, client id and topic unless changed)."""
        return attrs.evolve(self.config, **changes)

    def make(
        self, epoch: int, config: ClientConfig | None = None, server: BrokerEndpoint | None = None
    ) -> Transport:
        """A new, unopened transport whose reports go to :attr:`reports`."""
        config = config or self.config
        transport = self.factory(
            config, server or config.servers[0], epoch=epoch, sink=self.reports.sink, clock=self.clock
        )
        self.made.append((transport, config))
        return transport

    def publish(self, count: int) -> list[bytes]:
        """Publish *count* broadcast messages to the topic, in order; return their bodies once stored."""
        bodies = [f"message {next(self._numbers)}".encode() for _ in range(count)]
        self._publish(bodies)
        return bodies

    @abc.abstractmethod
    def _publish(self, bodies: list[bytes]) -> None: ...

    @abc.abstractmethod
    def wait_for(self, predicate: Callable[[], object], timeout: float = WAIT) -> bool:
        """Whether *predicate* holds (memory: now; ActiveMQ: within *timeout* real seconds)."""

    @abc.abstractmethod
    def elapse(self, seconds: float) -> None:
        """Let *seconds* pass on the client's clock."""

    @abc.abstractmethod
    def settle(self) -> None:
        """Give the broker the chance to send what it should not (memory: nothing to wait for)."""

    @abc.abstractmethod
    def silence(self) -> None:
        """Kill the path silently: no heart-beat, no byte, no close."""

    @abc.abstractmethod
    def delay_connected(self) -> None:
        """From now on, CONNECTED comes late (new connections)."""

    @abc.abstractmethod
    def undelay(self) -> None:
        """CONNECTED is no longer held back (what was already delayed arrives by the end of the delay)."""

    @abc.abstractmethod
    def hang(self) -> None:
        """From now on, CONNECT is never answered."""

    @abc.abstractmethod
    def drop(self, client_id: str) -> None:
        """The broker closes the client's connection."""

    @abc.abstractmethod
    def reject_logins(self, message: str) -> None:
        """The broker answers CONNECT with an ERROR frame carrying *message*."""

    @abc.abstractmethod
    def unreachable(self) -> BrokerEndpoint:
        """A server that refuses connections."""

    def end(self) -> None:
        """Abort every transport made (a test's leftovers)."""
        for transport, _ in self.made:
            transport.abort()


def fresh_client_id() -> str:
    return f"conf-{uuid.uuid4().hex[:8]}@1"


class MemoryHarness(Harness):
    """A MemoryBroker on a FakeClock: everything happens at once, time moves only when told."""

    name = "memory"

    def __init__(self) -> None:
        self.fake_clock = FakeClock()
        self.clock = self.fake_clock
        self.broker = MemoryBroker(self.fake_clock)
        self.server: MemoryServer = self.broker.server("nfmp-a:61613")
        super().__init__(self.server.endpoint)

    @property
    def factory(self) -> TransportFactory:
        return self.broker

    def _publish(self, bodies: list[bytes]) -> None:
        for body in bodies:
            self.server.publish(body, {"ALA_clientId": ""})

    def wait_for(self, predicate: Callable[[], object], timeout: float = WAIT) -> bool:
        return bool(predicate())

    def elapse(self, seconds: float) -> None:
        self.fake_clock.advance(seconds)

    def settle(self) -> None:
        pass

    def silence(self) -> None:
        self.server.silence_heartbeats()

    def delay_connected(self) -> None:
        self.server.hold()

    def undelay(self) -> None:
        self.server.release()

    def hang(self) -> None:
        self.server.hang()

    def drop(self, client_id: str) -> None:
        self.server.drop()

    def reject_logins(self, message: str) -> None:
        self.server.reject_logins(message)

    def unreachable(self) -> BrokerEndpoint:
        down = self.broker.server("nfmp-down:61613")
        down.refuse()
        return down.endpoint


class _Receipts(stomp.ConnectionListener):  # type: ignore[misc]  # stomp.py is untyped
    def __init__(self) -> None:
        self.answered: dict[str, threading.Event] = {}

    def expect(self, receipt: str) -> threading.Event:
        return self.answered.setdefault(receipt, threading.Event())

    def on_receipt(self, frame: Any) -> None:
        self.expect(frame.headers.get("receipt-id", "")).set()


class ActiveMQHarness(Harness):
    """StompTransport through a FaultProxy to the session's ActiveMQ, on the real clock."""

    name = "activemq"
    open_attempts = 20

    def __init__(self, broker: BrokerInfo, proxy: FaultProxy) -> None:
        self.clock = MonotonicClock()
        self.broker = broker
        self.proxy = proxy
        self._receipts = _Receipts()
        self._publisher: Any = None
        super().__init__(BrokerEndpoint(host=proxy.address[0], port=proxy.address[1]))

    @property
    def factory(self) -> TransportFactory:
        return stomp_transport

    def _publish(self, bodies: list[bytes]) -> None:
        if self._publisher is None:
            self._publisher = stomp.Connection12(self.broker.hosts, auto_decode=False)
            self._publisher.set_listener("receipts", self._receipts)
            self._publisher.connect(wait=True)
        destination = f"/topic/{self.config.topic}"
        for body in bodies:
            self._publisher.send(destination, body, headers={"ALA_clientId": ""})
        # A receipt after the last: the broker has stored or dispatched every one (one connection, in order).
        receipt = f"published-{uuid.uuid4().hex[:8]}"
        answered = self._receipts.expect(receipt)
        self._publisher.send(destination, b"", headers={"ALA_clientId": "nobody@0", "receipt": receipt})
        assert answered.wait(WAIT), "the broker did not confirm the publication"

    def wait_for(self, predicate: Callable[[], object], timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                return bool(predicate())
            time.sleep(0.005)
        return True

    def elapse(self, seconds: float) -> None:
        time.sleep(seconds)

    def settle(self) -> None:
        time.sleep(0.2)  # loopback and an idle broker: a message that is due comes within milliseconds

    def silence(self) -> None:
        self.proxy.blackhole()

    def delay_connected(self) -> None:
        self.proxy.delay(CONNECT_DELAY)

    def undelay(self) -> None:
        self.proxy.passthrough()

    def hang(self) -> None:
        self.proxy.blackhole()

    def drop(self, client_id: str) -> None:
        assert ActiveMQAdmin(self.broker.jmx_url).close_connection(client_id) == 1

    def reject_logins(self, message: str) -> None:
        pytest.skip(
            "the test broker has no authentication configured (nfmp_client/testing/activemq/activemq.xml): "
            "a refused login is only checked against the memory broker"
        )

    def unreachable(self) -> BrokerEndpoint:
        return BrokerEndpoint(host=self.broker.host, port=free_ports(1)[0])

    def end(self) -> None:
        super().end()
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                self._publisher.disconnect()

    def forget_subscriptions(self) -> None:
        """Remove the durable subscriptions this test made (best effort: a blackholed one may linger)."""
        direct = BrokerEndpoint(host=self.broker.host, port=self.broker.port)
        durable = {config.client_id: config for _, config in self.made if config.durable_name is not None}
        for config in durable.values():
            remover = stomp_transport(config, direct, epoch=0, sink=lambda _report: None, clock=self.clock)
            with contextlib.suppress(AttemptFailed):
                remover.remove_subscription()


@pytest.fixture(
    params=[
        pytest.param("memory", id="memory"),
        pytest.param("activemq", id="activemq", marks=pytest.mark.integration),
    ]
)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """The same cases on the in-memory broker and on the real one."""
    if request.param == "memory":
        memory = MemoryHarness()
        yield memory
        memory.end()
        return
    broker: BrokerInfo = request.getfixturevalue("broker")
    with FaultProxy(broker.host, broker.port) as proxy:
        real = ActiveMQHarness(broker, proxy)
        try:
            yield real
        finally:
            real.end()
    real.forget_subscriptions()  # after the proxy is gone: its blackholed connections are closed with it


def connect(
    harness: Harness, epoch: int, *, config: ClientConfig | None = None, fresh: bool = False
) -> Transport:
    """Open a transport and wait until it reports Opened; return it.

    On ActiveMQ a client id may still be held for a moment by a connection just aborted: the attempt is
    repeated (with epochs ``epoch + 100``, ``epoch + 200``, ...). The memory broker frees it at once.
    """
    for attempt in range(harness.open_attempts):
        transport = harness.make(epoch + 100 * attempt, config)
        transport.open(fresh=fresh)
        number = transport.epoch
        assert harness.wait_for(functools.partial(harness.reports.of, number)), f"no report from {number}"
        lost = harness.reports.lost(number)
        if not lost:
            assert harness.reports.opened(number), harness.reports.of(number)
            return transport
        assert lost[0].reason is LossReason.CLIENT_ID_IN_USE, lost
        time.sleep(0.05)
    pytest.fail(f"the client id stayed in use over {harness.open_attempts} attempts")


def has_frames(harness: Harness, epoch: int, count: int) -> bool:
    """Whether connection *epoch* has received at least *count* messages."""
    return len(harness.reports.frames(epoch)) >= count


# ================================================================================================ cases


class TestOpen:
    def test_one_opened_then_messages_in_order(self, harness: Harness) -> None:
        """open() reports one Opened with the epoch, then each message in order, with its ids and bytes."""
        transport = harness.make(7)
        transport.open()
        assert harness.wait_for(lambda: harness.reports.opened(7))
        sent = harness.publish(5)
        assert harness.wait_for(lambda: len(harness.reports.frames(7)) >= 5)
        harness.settle()

        reports = harness.reports.of(7)
        assert [type(r) for r in reports] == [Opened] + [FrameReceived] * 5
        assert all(r.epoch == 7 for r in reports)
        frames = harness.reports.frames(7)
        assert [f.body for f in frames] == sent
        assert all(isinstance(f.body, bytes) for f in frames)
        assert all(f.headers["message-id"] and f.headers["ack"] for f in frames)
        assert len({f.headers["message-id"] for f in frames}) == 5
        assert all(f.headers["destination"] == f"/topic/{harness.config.topic}" for f in frames)
        assert transport.epoch == 7
        assert transport.server == harness.config.servers[0]


class TestAcknowledgement:
    def test_unacknowledged_messages_come_again_first_in_order(self, harness: Harness) -> None:
        """Messages delivered but not acknowledged when a connection is aborted come first on the next one."""
        config = harness.configure(prefetch=5)
        first = connect(harness, 1, config=config)
        sent = harness.publish(8)
        assert harness.wait_for(lambda: len(harness.reports.frames(1)) >= 5)
        harness.settle()
        frames = harness.reports.frames(1)
        assert [f.body for f in frames] == sent[:5]  # the prefetch holds back the rest

        first.ack(frames[0].headers["ack"])
        first.ack(frames[1].headers["ack"])
        # Two acknowledged: two more come, which also shows the broker has the acknowledgements.
        assert harness.wait_for(lambda: len(harness.reports.frames(1)) >= 7)
        first.abort()
        unacked = harness.reports.frames(1)[2:7]

        second = connect(harness, 2, config=harness.configure(prefetch=100))
        assert harness.wait_for(lambda: len(harness.reports.frames(second.epoch)) >= 6)
        harness.settle()
        again = harness.reports.frames(second.epoch)
        assert [f.body for f in again] == sent[2:]
        assert [f.headers["message-id"] for f in again[:5]] == [f.headers["message-id"] for f in unacked]

    @pytest.mark.parametrize(
        ("ack_batch", "mode", "again"),
        [(5, "client", [4]), (1, "client-individual", [0, 1, 2, 4])],
    )
    def test_an_ack_covers_every_earlier_message_in_client_mode_only(
        self, harness: Harness, ack_batch: int, mode: str, again: list[int]
    ) -> None:
        """In ``client`` mode (ack_batch > 1) one ACK acknowledges its message and every one before it; in
        ``client-individual`` mode (ack_batch 1), only its own."""
        config = harness.configure(prefetch=10, ack_batch=ack_batch)
        assert config.ack_mode == mode
        first = connect(harness, 1, config=config)
        sent = harness.publish(5)
        assert harness.wait_for(lambda: len(harness.reports.frames(1)) >= 5)
        first.ack(harness.reports.frames(1)[3].headers["ack"])
        harness.settle()  # the acknowledgement is in before the connection goes
        first.abort()

        second = connect(harness, 2, config=config)
        assert harness.wait_for(lambda: len(harness.reports.frames(second.epoch)) >= len(again))
        harness.settle()
        assert harness.reports.bodies(second.epoch) == [sent[index] for index in again]


class TestDurableBacklog:
    def test_messages_published_while_away_arrive_on_return(self, harness: Harness) -> None:
        """A durable subscription keeps what is published while its client is away, and delivers it next time."""
        connect(harness, 1).close()
        sent = harness.publish(5)

        back = connect(harness, 2)
        assert harness.wait_for(lambda: len(harness.reports.frames(back.epoch)) >= 5)
        harness.settle()
        assert harness.reports.bodies(back.epoch) == sent

    def test_a_backlog_comes_in_batches_in_order(self, harness: Harness) -> None:
        """A stored backlog arrives in order; on ActiveMQ, the messages of one read come as one FrameBatch
        (the in-memory transport reports each message alone)."""
        connect(harness, 1).close()
        sent = harness.publish(40)

        back = connect(harness, 2)
        assert harness.wait_for(lambda: len(harness.reports.frames(back.epoch)) >= 40)
        harness.settle()
        assert harness.reports.bodies(back.epoch) == sent
        assert harness.reports.batches >= (1 if harness.name == "activemq" else 0)

    def test_fresh_open_drops_the_backlog(self, harness: Harness) -> None:
        """open(fresh=True) deletes the stored messages; only what is published afterwards arrives."""
        connect(harness, 1).close()
        harness.publish(5)

        back = connect(harness, 2, fresh=True)
        later = harness.publish(2)
        assert harness.wait_for(lambda: len(harness.reports.frames(back.epoch)) >= 2)
        harness.settle()
        assert harness.reports.bodies(back.epoch) == later


class TestPrefetch:
    def test_at_most_prefetch_in_flight_each_ack_lets_one_more(self, harness: Harness) -> None:
        """With prefetch 3 nothing acknowledged means 3 messages in flight; each ack lets the next one come."""
        transport = connect(harness, 1, config=harness.configure(prefetch=3))
        sent = harness.publish(6)
        assert harness.wait_for(lambda: len(harness.reports.frames(1)) >= 3)
        harness.settle()
        assert harness.reports.bodies(1) == sent[:3]

        for count in (4, 5):
            transport.ack(harness.reports.frames(1)[count - 4].headers["ack"])
            assert harness.wait_for(functools.partial(has_frames, harness, 1, count))
            harness.settle()
            assert harness.reports.bodies(1) == sent[:count]


class TestNonDurable:
    def test_messages_published_while_away_are_not_delivered(self, harness: Harness) -> None:
        """A non-durable subscription exists only while connected: what is published meanwhile is gone."""
        config = harness.configure(durable=False)
        first = connect(harness, 1, config=config)
        live = harness.publish(1)
        assert harness.wait_for(lambda: harness.reports.bodies(1) == live)
        first.close()
        harness.publish(3)

        again = connect(harness, 2, config=config)
        later = harness.publish(2)
        assert harness.wait_for(lambda: len(harness.reports.frames(again.epoch)) >= 2)
        harness.settle()
        assert harness.reports.bodies(again.epoch) == later


class TestHeartbeats:
    def test_deadline_ahead_while_heartbeats_flow_then_passes_once_silent(self, harness: Harness) -> None:
        """While heart-beats flow the deadline stays ahead of the clock; once the path is silent it passes."""
        transport = connect(harness, 1)
        window = HEARTBEATS[1] / 1000 * GRACE
        started = harness.clock.monotonic()
        while harness.clock.monotonic() - started < window + 0.25:  # longer than one window
            deadline = transport.heartbeat_deadline()
            assert deadline is not None
            assert deadline > harness.clock.monotonic()
            harness.elapse(0.05)

        harness.silence()
        silenced = harness.clock.monotonic()
        seen = transport.heartbeat_deadline()
        assert seen is not None
        # StompTransport may notice first (stomp.py's own check) and report the loss, after which it has no
        # deadline any more: what counts is that the last deadline it gave passes.
        while harness.clock.monotonic() < seen:
            assert harness.clock.monotonic() - silenced <= window + 1.0, "the deadline never passed"
            harness.elapse(0.02)
            seen = transport.heartbeat_deadline() or seen
        assert seen <= silenced + window + 1.0


class TestErrorFrames:
    def test_client_id_in_use(self, harness: Harness) -> None:
        """A second connection with the client id of an open one is refused (CLIENT_ID_IN_USE), never opened."""
        connect(harness, 1)
        second = harness.make(2)
        second.open()

        assert harness.wait_for(lambda: harness.reports.lost(2))
        harness.settle()
        reports = harness.reports.of(2)
        assert len(reports) == 1
        assert isinstance(reports[0], Lost)
        assert reports[0].reason is LossReason.CLIENT_ID_IN_USE
        assert harness.config.client_id in reports[0].detail
        # The first connection was not taken over.
        sent = harness.publish(1)
        assert harness.wait_for(lambda: harness.reports.bodies(1) == sent)

    def test_rejected_login(self, harness: Harness) -> None:
        """An ERROR frame refusing the login ends the attempt with AUTHENTICATION_FAILED, never opened."""
        harness.reject_logins(AUTH_ERROR)
        transport = harness.make(1)
        transport.open()

        assert harness.wait_for(lambda: harness.reports.lost(1))
        assert harness.reports.of(1) == [
            Lost(epoch=1, reason=LossReason.AUTHENTICATION_FAILED, detail=AUTH_ERROR)
        ]


class TestLateConnected:
    def test_opened_only_once_connected_comes(self, harness: Harness) -> None:
        """With CONNECTED late, open() reports nothing until it comes, then Opened, and messages flow."""
        harness.delay_connected()
        transport = harness.make(1)
        transport.open()
        harness.elapse(0.3)
        assert harness.reports.of(1) == []

        harness.undelay()
        assert harness.wait_for(lambda: harness.reports.opened(1), timeout=CONNECT_DELAY + WAIT)
        deadline = transport.heartbeat_deadline()  # silence counts from CONNECTED, not from open()
        assert deadline is not None
        assert deadline > harness.clock.monotonic()
        sent = harness.publish(1)
        assert harness.wait_for(lambda: harness.reports.bodies(1) == sent)
        assert transport.heartbeat_deadline() is not None

    def test_aborted_while_connecting_reports_nothing_and_holds_nothing(self, harness: Harness) -> None:
        """A connection aborted while its CONNECTED is late reports nothing ever, and leaves no connection."""
        harness.delay_connected()
        transport = harness.make(1)
        transport.open()
        harness.elapse(0.2)
        transport.abort()
        harness.undelay()
        harness.elapse(CONNECT_DELAY + 0.3)  # past the moment CONNECTED would have come

        assert harness.reports.of(1) == []
        assert transport.heartbeat_deadline() is None
        connect(harness, 2)  # the client id is free (ActiveMQ: possibly after a moment)

    def test_unanswered_connect_reports_nothing(self, harness: Harness) -> None:
        """A CONNECT never answered reports nothing (the caller's timeout ends it); abort ends it quietly."""
        harness.hang()
        transport = harness.make(1)
        transport.open()
        harness.elapse(0.5)
        transport.abort()
        harness.settle()

        assert harness.reports.of(1) == []
        assert transport.heartbeat_deadline() is None


class TestConnectionDropped:
    def test_dropped_connection_reports_lost_and_gives_back_unacked(self, harness: Harness) -> None:
        """A connection the broker closes reports one Lost(SOCKET_ERROR); its unacked messages come again."""
        first = connect(harness, 1)
        sent = harness.publish(3)
        assert harness.wait_for(lambda: len(harness.reports.frames(1)) >= 3)
        first.ack(harness.reports.frames(1)[0].headers["ack"])
        harness.settle()  # the acknowledgement is in before the connection goes

        harness.drop(harness.config.client_id)
        assert harness.wait_for(lambda: harness.reports.lost(1))
        harness.settle()
        assert [type(r) for r in harness.reports.of(1)] == [
            Opened,
            FrameReceived,
            FrameReceived,
            FrameReceived,
            Lost,
        ]
        assert harness.reports.lost(1)[0].reason is LossReason.SOCKET_ERROR
        assert first.heartbeat_deadline() is None

        again = connect(harness, 2)
        assert harness.wait_for(lambda: len(harness.reports.frames(again.epoch)) >= 2)
        harness.settle()
        assert harness.reports.bodies(again.epoch) == sent[1:]


class TestRemoval:
    def test_close_removing_the_durable_subscription(self, harness: Harness) -> None:
        """close(remove_durable=True) deletes the subscription: nothing is kept while the client is away."""
        connect(harness, 1).close(remove_durable=True)
        harness.publish(3)

        back = connect(harness, 2)
        later = harness.publish(2)
        assert harness.wait_for(lambda: len(harness.reports.frames(back.epoch)) >= 2)
        harness.settle()
        assert harness.reports.bodies(back.epoch) == later

    def test_remove_subscription_while_away(self, harness: Harness) -> None:
        """remove_subscription() on a separate transport deletes the subscription and its backlog, silently."""
        connect(harness, 1).close()
        harness.publish(3)

        remover = harness.make(2)
        remover.remove_subscription()
        assert harness.reports.of(2) == []

        back = connect(harness, 3)
        later = harness.publish(2)
        assert harness.wait_for(lambda: len(harness.reports.frames(back.epoch)) >= 2)
        harness.settle()
        assert harness.reports.bodies(back.epoch) == later

    def test_remove_subscription_refused_while_connected(self, harness: Harness) -> None:
        """remove_subscription() while the client id is connected fails with CLIENT_ID_IN_USE; nothing changes."""
        connect(harness, 1)

        with pytest.raises(AttemptFailed) as failed:
            harness.make(2).remove_subscription()
        assert failed.value.reason is LossReason.CLIENT_ID_IN_USE
        assert harness.reports.of(2) == []
        sent = harness.publish(1)
        assert harness.wait_for(lambda: harness.reports.bodies(1) == sent)

    def test_probe(self, harness: Harness) -> None:
        """probe() succeeds on a live server (even beside the client's own connection) and fails on a refusing one."""
        connect(harness, 1)
        harness.make(2).probe()  # without the client id: no collision with connection 1

        down = harness.unreachable()
        with pytest.raises(AttemptFailed) as failed:
            harness.make(3, server=down).probe()
        assert failed.value.reason is LossReason.SOCKET_ERROR
        assert failed.value.server == down
        assert harness.reports.of(2) == []
        assert harness.reports.of(3) == []

    def test_open_on_a_refusing_server(self, harness: Harness) -> None:
        """open() on a server that refuses connections reports Lost(SOCKET_ERROR) and nothing else."""
        transport = harness.make(1, server=harness.unreachable())
        transport.open()

        assert harness.wait_for(lambda: harness.reports.lost(1))
        harness.settle()
        reports = harness.reports.of(1)
        assert len(reports) == 1
        assert isinstance(reports[0], Lost)
        assert reports[0].reason is LossReason.SOCKET_ERROR


class TestAfterTheEnd:
    @pytest.mark.parametrize("ending", ["abort", "close"])
    def test_nothing_reported_once_ended(self, harness: Harness, ending: str) -> None:
        """After abort() or close(), a transport reports nothing more, whatever is published; ack is ignored."""
        subject = connect(harness, 1)
        witness = connect(harness, 2, config=harness.configure(client_id=fresh_client_id()))
        first = harness.publish(1)
        assert harness.wait_for(lambda: harness.reports.bodies(1) == first)
        assert harness.wait_for(lambda: harness.reports.bodies(witness.epoch) == first)
        before = harness.reports.of(1)

        getattr(subject, ending)()
        subject.ack(harness.reports.frames(1)[0].headers["ack"])
        later = harness.publish(3)
        assert harness.wait_for(lambda: harness.reports.bodies(witness.epoch) == first + later)
        harness.settle()

        assert harness.reports.of(1) == before
        assert subject.heartbeat_deadline() is None
