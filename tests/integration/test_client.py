"""NfmpClient on the real broker, driven by the simulated server and broken by the fault proxy."""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import stomp
import tenacity

from nfmp_client import (
    ClientConfig,
    ClientStopped,
    ConnectionLost,
    ConnectionRestored,
    ConnectionState,
    DataEvent,
    Handler,
    KeepAliveEvent,
    LossReason,
    MalformedMessage,
    NfmpClient,
    RetryPolicy,
    SystemEvent,
    SystemInfoEvent,
    TerminateClientSession,
    TerminatePolicy,
)
from nfmp_client.testing import ActiveMQAdmin, FaultProxy, SimulatedServer

from ..conftest import BrokerInfo, free_ports

pytestmark = pytest.mark.integration

WAIT = 15.0
FAST_RETRY = RetryPolicy(initial_delay=0.05, max_delay=0.5, jitter=0.05, connect_timeout=3.0)


class Recorder(Handler):
    """Records every callback; can be told to fail on chosen events."""

    def __init__(self) -> None:
        self.events: queue.Queue[DataEvent] = queue.Queue()
        self.system: queue.Queue[SystemEvent] = queue.Queue()
        self.losses: queue.Queue[ConnectionLost] = queue.Queue()
        self.restored: queue.Queue[ConnectionRestored] = queue.Queue()
        self.terminated: queue.Queue[TerminateClientSession] = queue.Queue()
        self.malformed: queue.Queue[MalformedMessage] = queue.Queue()
        self.raise_on_loss = False
        self.fail_next = 0
        self.delay = 0.0
        self.handled = 0

    def on_event(self, event: DataEvent) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.fail_next:
            self.fail_next -= 1
            raise RuntimeError("handler failure (on purpose)")
        self.handled += 1
        self.events.put(bare(event))

    def on_system_event(self, event: SystemEvent) -> None:
        self.system.put(event)

    def on_session_terminated(self, notice: TerminateClientSession) -> None:
        self.terminated.put(notice)

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        self.losses.put(cause)
        if self.raise_on_loss:
            raise RuntimeError("on_connection_lost failure (on purpose)")

    def on_malformed_message(self, error: MalformedMessage) -> None:
        self.malformed.put(error)

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        self.restored.put(info)

    def take(self, count: int, timeout: float = WAIT) -> list[DataEvent]:
        return [self.events.get(timeout=timeout) for _ in range(count)]


def bare(event: Any) -> Any:
    return attrs.evolve(event, header=attrs.evolve(event.header, stomp_headers={}))


@pytest.fixture
def proxy(broker: BrokerInfo) -> Iterator[FaultProxy]:
    with FaultProxy(broker.host, broker.port) as fault_proxy:
        yield fault_proxy


def config_for(*servers: str, **overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {
        "servers": list(servers),
        "client_id": f"oss-{uuid.uuid4().hex[:8]}@1",
        "heartbeats": (500, 500),
        "keepalive_timeout": 2.0,
        "retry": FAST_RETRY,
    }
    settings.update(overrides)
    return ClientConfig(**settings)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def running(config: ClientConfig, handler: Handler) -> NfmpClient:
    client = NfmpClient(config, handler)
    client.start()
    assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT), client.last_loss
    return client


class TestDelivery:
    def test_events_in_order_then_stop(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """Data events reach on_event in order; system events reach on_system_event; stop() is clean."""
        client = running(config_for(f"{broker.host}:{broker.port}"), recorder)
        try:
            server.wait_for_subscriber(client.config.client_id)
            sent = server.generate(25)

            assert recorder.take(25) == sent
            assert isinstance(recorder.system.get(timeout=WAIT), (SystemInfoEvent, KeepAliveEvent))
        finally:
            client.stop()
        assert client.state is ConnectionState.STOPPED

    def test_stop_keeps_the_backlog_decommission_removes_it(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """Events sent while stopped arrive on the next start; after decommission nothing is kept."""
        config = config_for(f"{broker.host}:{broker.port}")
        client = running(config, recorder)
        server.wait_for_subscriber(config.client_id)
        client.stop()

        sent = server.generate(5)
        server.sync()
        client = running(config, recorder)
        assert recorder.take(5) == sent
        client.decommission()

        server.generate(5)
        server.sync()
        subs = [
            s
            for s in ActiveMQAdmin(broker.jmx_url).durable_subscriptions()
            if s.client_id == config.client_id
        ]
        assert subs == []

    def test_non_durable_subscription_leaves_nothing_behind(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """durable=False: events flow while connected; no durable subscription exists, during or after."""
        config = config_for(f"{broker.host}:{broker.port}", durable=False)
        client = running(config, recorder)
        try:
            server.wait_for_subscriber(config.client_id)
            sent = server.generate(3)

            assert recorder.take(3) == sent
            durable = ActiveMQAdmin(broker.jmx_url).durable_subscriptions()
            assert config.client_id not in {s.client_id for s in durable}
        finally:
            client.stop()

    def test_failing_handler_gets_the_event_again_in_order(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """A handler that raises: the client reconnects and the broker delivers that event again, before
        the ones that followed it; nothing lost, the order kept."""
        recorder.fail_next = 2  # the first event fails twice in a row: the second try waits longer
        client = running(config_for(f"{broker.host}:{broker.port}"), recorder)
        try:
            server.wait_for_subscriber(client.config.client_id)
            sent = server.generate(4)

            assert recorder.take(4) == sent
            losses = [recorder.losses.get(timeout=WAIT) for _ in range(2)]
            assert [loss.reason for loss in losses] == [LossReason.HANDLER_FAILED] * 2
            assert "(1 time(s))" in losses[0].detail
            assert "(2 time(s))" in losses[1].detail
            assert client.statistics.handler_errors == 2
            assert client.statistics.losses_by_reason == {"handler-failed": 2}
            assert client.state is ConnectionState.CONNECTED
        finally:
            client.stop()

    def test_an_event_the_handler_always_rejects_is_given_up_and_the_stream_goes_on(
        self, server: SimulatedServer, broker: BrokerInfo
    ) -> None:
        """A handler that raises on one event every time: after max_handler_failures it reaches
        on_undeliverable, is acknowledged, and the events behind it are handled (it used to stall for good)."""
        given_up: queue.Queue[tuple[DataEvent, BaseException]] = queue.Queue()

        class Rejecting(Recorder):
            def on_event(self, event: DataEvent) -> None:
                if self.handled == 0 and not getattr(self, "poison", None):
                    self.poison = bare(event)
                if bare(event) == getattr(self, "poison", None):
                    raise ValueError("cannot apply this one")
                super().on_event(event)

            def on_undeliverable(self, event: Any, error: BaseException) -> None:
                given_up.put((event, error))

        handler = Rejecting()
        client = running(config_for(f"{broker.host}:{broker.port}", max_handler_failures=3), handler)
        try:
            server.wait_for_subscriber(client.config.client_id)
            sent = server.generate(3)

            event, error = given_up.get(timeout=WAIT)
            assert bare(event) == sent[0]
            assert isinstance(error, ValueError)
            assert client.statistics.undeliverable == 1
            deadline = time.monotonic() + WAIT
            while (
                client.statistics.resyncs_by_reason.get("undeliverable", 0) == 0
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            while not client.in_sync and time.monotonic() < deadline:
                time.sleep(0.05)
            later = server.generate(2)  # the stream goes on (what came before is the resync's to cover)
            taken = [handler.events.get(timeout=WAIT) for _ in range(handler.events.qsize() + 2)][-2:]
            assert taken == later
        finally:
            client.stop()

    def test_malformed_message_is_reported_and_the_stream_goes_on(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """An undecodable message reaches on_malformed_message with its payload; later events still flow."""
        client = running(config_for(f"{broker.host}:{broker.port}"), recorder)
        try:
            server.wait_for_subscriber(client.config.client_id)
            conn = stomp.Connection12(broker.hosts)
            conn.connect(wait=True)
            conn.send(
                "/topic/5620-SAM-topic-xml",
                "<not-xml",
                headers={"ALA_clientId": "", "MTOSI_objectType": "fm.AlarmObject", "receipt": "sent"},
            )
            conn.disconnect(receipt="bye")
            sent = server.generate(2)

            error = recorder.malformed.get(timeout=WAIT)
            assert error.payload == b"<not-xml"
            assert "not well-formed" in error.reason
            assert recorder.take(2) == sent
            assert client.statistics.malformed == 1
        finally:
            client.stop()

    def test_batched_acks_a_handler_failure_mid_batch_repeats_nothing(
        self, server: SimulatedServer, broker: BrokerInfo
    ) -> None:
        """Cumulative acks every 50: the handler raises on the 30th event of a burst. What it handled before
        is acknowledged before the client reconnects, so only the 30th and what follows come again (the 30th
        first), and nothing is dropped as a duplicate or handed over twice."""

        class FailsOnThe30th(Recorder):
            failed = False

            def on_event(self, event: DataEvent) -> None:
                if self.handled == 29 and not self.failed:
                    self.failed = True
                    raise RuntimeError("handler failure (on purpose)")
                super().on_event(event)

        recorder = FailsOnThe30th()
        config = config_for(f"{broker.host}:{broker.port}", prefetch=100)
        assert (config.ack_every, config.ack_mode) == (50, "client")
        client = running(config, recorder)
        try:
            server.wait_for_subscriber(config.client_id)
            sent = server.generate(60)

            assert recorder.take(60) == sent
            assert recorder.losses.get(timeout=WAIT).reason is LossReason.HANDLER_FAILED
            assert client.statistics.duplicates == 0
            assert client.statistics.events == 60
        finally:
            client.stop()
        # Everything handled was acknowledged by the stop: the next run gets only what is new.
        again = Recorder()
        client = running(config, again)
        try:
            (new,) = server.generate(1)
            assert again.take(1) == [new]
        finally:
            client.stop()

    def test_batched_acks_a_connection_cut_mid_batch_is_absorbed_by_the_dedup(
        self, server: SimulatedServer, broker: BrokerInfo, proxy: FaultProxy
    ) -> None:
        """The connection is reset while acknowledgements are owed (the 20th event of a burst): the broker
        delivers those events again and the de-duplication drops them; every event is handled once."""

        class ResetsOnThe20th(Recorder):
            def on_event(self, event: DataEvent) -> None:
                super().on_event(event)
                if self.handled == 20:
                    proxy.reset()
                    proxy.passthrough()

        recorder = ResetsOnThe20th()
        recorder.delay = 0.005  # slower than the burst comes: the inbox does not empty, acks stay owed
        config = config_for(f"127.0.0.1:{proxy.port}", prefetch=100)
        client = running(config, recorder)
        try:
            server.wait_for_subscriber(config.client_id)
            sent = server.generate(60)

            assert recorder.take(60) == sent
            assert recorder.losses.get(timeout=WAIT).reason is LossReason.SOCKET_ERROR
            assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
            # Handled, never acknowledged: delivered again on the new connection, and dropped.
            deadline = time.monotonic() + WAIT
            while client.statistics.duplicates < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.statistics.duplicates >= 1
            (later,) = server.generate(1)
            assert recorder.take(1) == [later]  # and nothing of the 60 a second time before it
        finally:
            client.stop()

    def test_redelivery_of_a_handled_message_is_dropped(
        self, server: SimulatedServer, broker: BrokerInfo, proxy: FaultProxy
    ) -> None:
        """The ack of a handled message is lost with the link: the broker sends it again, the handler
        does not see it twice."""

        class CutsTheLinkWhileHandling(Recorder):
            def on_event(self, event: DataEvent) -> None:
                if self.handled == 0:
                    proxy.blackhole()  # the ack sent when this returns goes nowhere
                super().on_event(event)

        recorder = CutsTheLinkWhileHandling()
        client = running(config_for(f"127.0.0.1:{proxy.port}"), recorder)
        try:
            server.wait_for_subscriber(client.config.client_id)
            (first,) = server.generate(1)
            assert recorder.take(1) == [first]
            recorder.losses.get(timeout=WAIT)
            proxy.passthrough()
            assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
            (second,) = server.generate(1)

            assert recorder.take(1) == [second]  # not `first` again
            assert recorder.handled == 2
            # `first` did come back and was dropped (a keep-alive handled in the same moment may have too)
            assert client.statistics.duplicates >= 1
            assert client.statistics.losses == 1
        finally:
            client.stop()


class TestFailureDetection:
    def test_blackhole_detected_reconnected_nothing_lost(
        self, server: SimulatedServer, broker: BrokerInfo, proxy: FaultProxy, recorder: Recorder
    ) -> None:
        """A half-open link is noticed (heart-beats), the client reconnects, and no event is lost."""
        client = running(config_for(f"127.0.0.1:{proxy.port}", keepalive_timeout=3.0), recorder)
        try:
            server.wait_for_subscriber(client.config.client_id)
            before = server.generate(3)
            assert recorder.take(3) == before

            proxy.blackhole()
            blackholed = time.monotonic()
            during = server.generate(5)
            loss = recorder.losses.get(timeout=WAIT)
            detected = time.monotonic() - blackholed
            proxy.passthrough()

            assert loss.reason in (LossReason.HEARTBEAT_TIMEOUT, LossReason.WATCHDOG_EXPIRED)
            assert detected < client.config.keepalive_timeout + 1.0
            assert recorder.take(5) == during
        finally:
            client.stop()

    def test_silent_server_trips_the_watchdog(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """A hung server (broker fine, heart-beats fine, no keep-alives) is detected by the watchdog."""
        client = running(config_for(f"{broker.host}:{broker.port}", keepalive_timeout=1.0), recorder)
        try:
            server.wait_for_subscriber(client.config.client_id)
            server.silence()
            silenced = time.monotonic()

            loss = recorder.losses.get(timeout=WAIT)

            assert loss.reason is LossReason.WATCHDOG_EXPIRED
            assert time.monotonic() - silenced < 1.0 + 1.0
        finally:
            server.resume()
            client.stop()

    def test_terminate_stops_by_default(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """TerminateClientSession: the callback, a typed loss, and no reconnection."""
        client = running(config_for(f"{broker.host}:{broker.port}"), recorder)
        try:
            server.wait_for_subscriber(client.config.client_id)
            server.terminate(client.config.client_id)

            notice = recorder.terminated.get(timeout=WAIT)
            assert notice.client_id == client.config.client_id
            assert client.wait_for_state(ConnectionState.TERMINATED, timeout=WAIT)
            time.sleep(1.0)
            assert client.state is ConnectionState.TERMINATED
            assert recorder.restored.qsize() == 1  # only the first connection
        finally:
            client.stop()

    @pytest.mark.parametrize(
        ("policy", "delay"),
        [(TerminatePolicy.RECONNECT_NOW, 0.0), (TerminatePolicy.RECONNECT_AFTER_DELAY, 0.8)],
    )
    def test_terminate_reconnects_when_the_policy_says_so(
        self,
        server: SimulatedServer,
        broker: BrokerInfo,
        recorder: Recorder,
        policy: TerminatePolicy,
        delay: float,
    ) -> None:
        """With a reconnecting policy the client comes back (after the delay), same subscription."""
        config = config_for(
            f"{broker.host}:{broker.port}", on_terminate=policy, terminate_reconnect_delay=delay or 60.0
        )
        client = running(config, recorder)
        try:
            server.wait_for_subscriber(config.client_id)
            recorder.restored.get(timeout=WAIT)
            asked = time.monotonic()  # the notice is handled after this, so the delay counts from later
            server.terminate(config.client_id)
            recorder.terminated.get(timeout=WAIT)

            recorder.restored.get(timeout=WAIT)
            assert time.monotonic() - asked >= delay
            assert recorder.losses.get(timeout=WAIT).reason is LossReason.SESSION_TERMINATED
            server.wait_for_subscriber(config.client_id)
            sent = server.generate(2)
            assert recorder.take(2) == sent
        finally:
            client.stop()

    def test_connect_that_hangs_times_out_and_is_retried(
        self, server: SimulatedServer, proxy: FaultProxy, recorder: Recorder
    ) -> None:
        """A server that takes the TCP connection and says nothing: CONNECT_TIMEOUT, then a retry."""
        proxy.blackhole()
        retry = attrs.evolve(FAST_RETRY, connect_timeout=0.5)
        client = NfmpClient(config_for(f"127.0.0.1:{proxy.port}", retry=retry), recorder)
        client.start()
        try:
            loss = recorder.losses.get(timeout=WAIT)
            assert loss.reason is LossReason.CONNECT_TIMEOUT
            assert loss.attempt == 1
            assert client.state is ConnectionState.CONNECTING

            proxy.passthrough()
            assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
        finally:
            client.stop()

    def test_gives_up_after_max_attempts(self, recorder: Recorder) -> None:
        """With max_attempts, run_forever raises ClientStopped with the last typed loss."""
        (port,) = free_ports(1)  # nothing listens there
        config = config_for(f"127.0.0.1:{port}", retry=attrs.evolve(FAST_RETRY, max_attempts=2))
        client = NfmpClient(config, recorder)

        with pytest.raises(ClientStopped) as raised:
            client.run_forever()

        assert raised.value.last_loss is not None
        assert raised.value.last_loss.reason is LossReason.SOCKET_ERROR
        assert recorder.losses.qsize() == 2
        assert client.state is ConnectionState.STOPPED
        assert client.statistics.failed_attempts == 2
        assert client.statistics.connections == 0

    def test_the_application_can_replace_the_retry_strategy(self, recorder: Recorder) -> None:
        """tenacity wait and stop strategies in RetryPolicy replace the built-in backoff and limit."""
        (port,) = free_ports(1)
        retry = RetryPolicy(
            initial_delay=30,
            max_delay=30,
            wait=tenacity.wait_fixed(0.05),
            stop=tenacity.stop_after_attempt(3),
        )
        client = NfmpClient(config_for(f"127.0.0.1:{port}", retry=retry), recorder)
        started = time.monotonic()

        with pytest.raises(ClientStopped):
            client.run_forever()

        assert time.monotonic() - started < 5  # not the 30 s backoff
        assert client.statistics.failed_attempts == 3

    def test_a_raising_callback_does_not_stop_recovery(
        self, server: SimulatedServer, proxy: FaultProxy, recorder: Recorder
    ) -> None:
        """on_connection_lost raising is logged; the client reconnects all the same."""
        recorder.raise_on_loss = True
        client = running(config_for(f"127.0.0.1:{proxy.port}"), recorder)
        try:
            recorder.restored.get(timeout=WAIT)
            proxy.reset()
            proxy.passthrough()

            recorder.losses.get(timeout=WAIT)
            recorder.restored.get(timeout=WAIT)
            assert client.state is ConnectionState.CONNECTED
        finally:
            client.stop()

    def test_failover_to_standby(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """With the primary down, the client connects to the standby and says why the primary failed."""
        with FaultProxy(broker.host, broker.port) as primary:
            primary.reset()  # refuses every connection
            client = running(
                config_for(f"127.0.0.1:{primary.port}", f"{broker.host}:{broker.port}"), recorder
            )
            try:
                info = recorder.restored.get(timeout=WAIT)
                assert info.server == f"{broker.host}:{broker.port}"
                assert recorder.losses.get(timeout=WAIT).server == f"127.0.0.1:{primary.port}"
            finally:
                client.stop()

    def test_returns_to_the_primary_when_it_answers_again(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """With return_to_primary, the client leaves the standby for the primary once it is back."""
        with FaultProxy(broker.host, broker.port) as primary:
            primary.reset()
            config = config_for(
                f"127.0.0.1:{primary.port}",
                f"{broker.host}:{broker.port}",
                return_to_primary=True,
                primary_check_interval=0.2,
                system_info_timeout=1.0,
            )
            client = running(config, recorder)
            try:
                assert recorder.restored.get(timeout=WAIT).server == f"{broker.host}:{broker.port}"
                server.wait_for_subscriber(config.client_id)
                before = server.generate(2)
                assert recorder.take(2) == before
                time.sleep(0.5)
                assert recorder.restored.empty()  # the primary still refuses: no move

                primary.passthrough()
                back = recorder.restored.get(timeout=WAIT)
                # Moving to another server asks for a resync (SUBSCRIPTION_CHANGED): events until its
                # request are the retrieval's to cover, those after it are delivered.
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline and not client.in_sync:  # owed since the move
                    time.sleep(0.05)
                after = server.generate(2)

                assert back.server == f"127.0.0.1:{primary.port}"
                losses = list(recorder.losses.queue)
                assert losses[-1].reason is LossReason.RETURNING_TO_PRIMARY
                assert losses[-1].server == f"{broker.host}:{broker.port}"
                assert recorder.take(2) == after
                assert client.state is ConnectionState.CONNECTED
            finally:
                client.stop()

    def test_stays_on_the_standby_without_return_to_primary(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """By default a client on the standby stays there when the primary comes back."""
        with FaultProxy(broker.host, broker.port) as primary:
            primary.reset()
            config = config_for(
                f"127.0.0.1:{primary.port}", f"{broker.host}:{broker.port}", primary_check_interval=0.1
            )
            client = running(config, recorder)
            try:
                refused = primary.stats().accepted
                primary.passthrough()
                time.sleep(1.0)

                assert recorder.restored.qsize() == 1
                assert primary.stats().accepted == refused  # not even probed
            finally:
                client.stop()

    def test_client_id_held_elsewhere_until_max_attempts(
        self, broker: BrokerInfo, recorder: Recorder, tmp_path: Path
    ) -> None:
        """A client id another connection holds: CLIENT_ID_IN_USE on each attempt, STOPPED after max_attempts.

        The other holder runs elsewhere (its own state directory: on one machine the state file's lock
        refuses the second client before it reaches the broker).
        """
        config = config_for(f"{broker.host}:{broker.port}", retry=attrs.evolve(FAST_RETRY, max_attempts=3))
        hog = NfmpClient(config, Handler())
        hog.start()
        assert hog.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
        try:
            client = NfmpClient(attrs.evolve(config, state_dir=tmp_path), recorder)
            client.start()
            assert client.wait_for_state(ConnectionState.STOPPED, timeout=WAIT)
            reasons = {recorder.losses.get(timeout=1).reason for _ in range(3)}
            assert reasons == {LossReason.CLIENT_ID_IN_USE}
        finally:
            hog.stop()


class TestResilience:
    def test_broker_restart(self, broker_factory: Any, recorder: Recorder) -> None:
        """The broker goes down and comes back: the client notices, reconnects, and gets what was stored."""
        own = broker_factory()
        client = running(config_for(f"{own.host}:{own.port}", keepalive_timeout=30.0), recorder)
        try:
            with SimulatedServer(own.host, own.port, keepalive_interval=0, client_id="sim-restart") as sim:
                sim.wait_for_subscriber(client.config.client_id)
                own.restart()
                loss = recorder.losses.get(timeout=WAIT)
                assert loss.reason in (LossReason.SOCKET_ERROR, LossReason.HEARTBEAT_TIMEOUT)
                assert client.wait_for_state(ConnectionState.CONNECTED, timeout=60)
                sent = sim.generate(3)

                assert recorder.take(3) == sent
        finally:
            client.stop()

    def test_slow_handler_bounded_and_no_false_timeout(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """A handler slower than the stream: the backlog waits on the broker, and no loss is declared."""
        config = config_for(
            f"{broker.host}:{broker.port}", prefetch=5, keepalive_timeout=1.0, heartbeats=(300, 300)
        )
        recorder.delay = 0.05
        client = running(config, recorder)
        try:
            server.wait_for_subscriber(config.client_id)
            sent = server.generate(60)  # 3 s of handling, three times the keep-alive timeout
            server.sync()
            (sub,) = [
                s
                for s in ActiveMQAdmin(broker.jmx_url).durable_subscriptions()
                if s.client_id == config.client_id
            ]

            assert sub.pending > 30  # the backlog waits on the broker, not in our memory (prefetch 5)
            assert recorder.take(60, timeout=30) == sent
            assert recorder.losses.empty()
            assert client.state is ConnectionState.CONNECTED
        finally:
            client.stop()


def test_idle_connection_is_not_declared_dead(broker: BrokerInfo, recorder: Recorder) -> None:
    """A quiet but healthy connection (no messages, heart-beats only) stays up for many intervals."""
    config = config_for(f"{broker.host}:{broker.port}", heartbeats=(300, 300), keepalive_timeout=60.0)
    client = running(config, recorder)
    try:
        time.sleep(3.0)  # ten heart-beat intervals; ActiveMQ's first heart-beat comes after two

        assert recorder.losses.empty(), recorder.losses.get()
        assert client.state is ConnectionState.CONNECTED
    finally:
        client.stop()


def test_messages_between_heartbeats_are_not_a_timeout(broker: BrokerInfo, recorder: Recorder) -> None:
    """ActiveMQ skips the heart-beat of an interval in which it sent a message, so after a message the
    broker can be silent for almost two intervals: messages at such gaps must not look like a dead path."""
    config = config_for(f"{broker.host}:{broker.port}", heartbeats=(300, 300), keepalive_timeout=60.0)
    client = running(config, recorder)
    server = SimulatedServer(broker.host, broker.port, keepalive_interval=0, client_id="sim-quiet")
    try:
        server.start()
        server.wait_for_subscriber(config.client_id)
        rng = random.Random(7)  # noqa: S311  # gaps, not cryptography
        sent = []
        for _ in range(12):
            sent += server.generate(1)
            time.sleep(rng.uniform(0.35, 0.6))  # between one and two heart-beat intervals

        assert recorder.take(len(sent)) == sent
        assert recorder.losses.empty(), recorder.losses.get()
        assert client.state is ConnectionState.CONNECTED
    finally:
        server.stop()
        client.stop()


def test_threads_end_on_stop(broker: BrokerInfo) -> None:
    """stop() ends the client's threads."""
    before = threading.active_count()
    client = running(config_for(f"{broker.host}:{broker.port}"), Handler())
    client.stop()
    time.sleep(0.5)

    assert threading.active_count() <= before


def test_the_password_never_reaches_a_log_or_a_repr(
    proxy: FaultProxy, recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Every logger at DEBUG (stomp.py's included) through a connect, a loss and a reconnect: no password."""
    secret = "pa55-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    client = running(config_for(f"127.0.0.1:{proxy.port}", username="oss", password=secret), recorder)
    try:
        proxy.reset()
        proxy.passthrough()
        loss = recorder.losses.get(timeout=WAIT)
        assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
        shown = [repr(client), repr(client.config), repr(loss), repr(client.statistics), str(loss)]
    finally:
        client.stop()

    assert len(caplog.records) > 20  # the capture did see the connection's debug lines
    assert not [r.getMessage() for r in caplog.records if secret in r.getMessage()]
    assert not [text for text in shown if secret in text]


def test_system_events_without_a_client_id_property_pass_the_selector(
    broker: BrokerInfo, recorder: Recorder
) -> None:
    """KeepAliveEvent, SystemInfoEvent, JmsMissedEvents and TerminateClientSession sent without ALA_clientId
    reach the client (Nokia's basic selector admits system events unconditionally), a filter set or not."""
    from nfmp_client import EventHeader, JmsMissedEvents
    from nfmp_client.codec import encode_event

    config = config_for(f"{broker.host}:{broker.port}", filter="ALA_category = 'FAULT'")
    client = running(config, recorder)

    def header(name: str, object_type: str) -> EventHeader:
        return EventHeader(event_name=name, object_type=object_type, category="GENERAL")

    events: list[Any] = [
        KeepAliveEvent(header=header("KeepAliveEvent", "KeepAliveEvent")),
        SystemInfoEvent(
            header=header("SystemInfoEvent", "StateChangeEvent"),
            sys_start_time="1",
            jms_start_time="1",
            sys_primary_ip="10.0.0.1",
        ),
        JmsMissedEvents(header=header("JmsMissedEvents", "StateChangeEvent")),
        TerminateClientSession(
            header=header("TerminateClientSession", "TerminateClientSession"), client_id=config.client_id
        ),
    ]
    publisher = stomp.Connection12([(broker.host, broker.port)], auto_decode=False)
    publisher.connect(wait=True, headers={"client-id": f"feed-{uuid.uuid4().hex[:6]}"})
    try:
        for event in events:
            message = encode_event(event)
            headers = {k: v for k, v in message.headers.items() if k != "ALA_clientId"}
            publisher.send(f"/topic/{config.topic}", message.body, headers=headers)

        received = [type(recorder.system.get(timeout=WAIT)) for _ in events]
        assert received == [type(event) for event in events]
        assert recorder.terminated.get(timeout=WAIT).client_id == config.client_id
    finally:
        publisher.disconnect()
        client.stop()
