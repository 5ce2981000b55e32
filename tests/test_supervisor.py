"""The client's supervisor, stepped on a fake clock against the in-memory broker: lifecycle, failover, timing.

No thread, no sleep, no socket: every test runs in milliseconds and asserts exact virtual times. The same
behaviour on a real ActiveMQ broker is proven in tests/integration/test_lifecycle.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from nfmp_client import (
    ClientConfig,
    ClientStopped,
    ConnectionLost,
    ConnectionRestored,
    ConnectionState,
    DataEvent,
    Event,
    EventHeader,
    Handler,
    HealthStatus,
    JmsMissedEvents,
    KeepAliveEvent,
    LifecycleError,
    LossReason,
    NfmpClient,
    ObjectCreation,
    ResyncReason,
    ResyncRequest,
    RetryPolicy,
    SessionTerminated,
    StateFileLocked,
    SubscriptionRemovalFailed,
    SystemEvent,
    SystemInfoEvent,
    TerminateClientSession,
    TerminatePolicy,
)
from nfmp_client.codec import encode_event
from nfmp_client.testing import FakeClock, ManualRunner, MemoryBroker, MemoryServer

from .strategies import named_alarm

A, B = "a.example:61613", "b.example:61613"


class Recorder(Handler):
    """Records every callback with the virtual time it came at; hooks let a test act inside a callback."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, str, Any]] = []
        self.on_event_hook: Callable[[DataEvent], None] | None = None
        self.on_terminated_hook: Callable[[TerminateClientSession], None] | None = None

    def _record(self, name: str, value: Any) -> None:
        self.calls.append((self.clock.monotonic(), name, value))

    def on_event(self, event: DataEvent) -> None:
        self._record("event", event)
        if self.on_event_hook is not None:
            self.on_event_hook(event)

    def on_system_event(self, event: SystemEvent) -> None:
        self._record("system", event)

    def on_resync_required(self, request: ResyncRequest) -> None:
        self._record("resync", request)

    def on_session_terminated(self, notice: TerminateClientSession) -> None:
        self._record("terminated", notice)
        if self.on_terminated_hook is not None:
            self.on_terminated_hook(notice)

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        self._record("lost", cause)

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        self._record("restored", info)

    def on_undeliverable(self, event: Event, error: BaseException) -> None:
        self._record("undeliverable", (event, error))

    def of(self, name: str) -> list[Any]:
        return [value for _, name_, value in self.calls if name_ == name]

    def times(self, name: str) -> list[float]:
        return [at for at, name_, _ in self.calls if name_ == name]

    def names(self) -> list[str]:
        """The alarm names of the data events handed over, in order."""
        return [str(event.attributes["alarmName"]) for event in self.of("event")]


class Rig:
    """A client on a fake clock, an in-memory broker with servers A and B, and a manual runner."""

    def __init__(self, state_dir: Path, **overrides: Any) -> None:
        self.clock = FakeClock(start=0.0)
        self.broker = MemoryBroker(self.clock)
        self.a = self.broker.server(A)
        self.b = self.broker.server(B)
        self.runner = ManualRunner(self.clock)
        settings: dict[str, Any] = {
            "servers": [A],
            "client_id": f"oss-{uuid.uuid4().hex[:8]}@1",
            "heartbeats": (1000, 1000),
            "heartbeat_grace": 2.5,
            "keepalive_timeout": 5.0,
            "retry": RetryPolicy(initial_delay=0.5, max_delay=4.0, jitter=0.0, connect_timeout=2.0),
            "state_dir": state_dir,
            "system_info_timeout": 1.0,
            "resync_coalesce_window": 0.0,
            "resync_min_interval": 0.0,
            "primary_check_interval": 10.0,
        }
        settings.update(overrides)
        self.config = ClientConfig(**settings)
        self.handler = Recorder(self.clock)
        self.client = self.new_client()

    def new_client(self) -> NfmpClient:
        return NfmpClient(
            self.config, self.handler, clock=self.clock, transport=self.broker, runner=self.runner
        )

    @property
    def now(self) -> float:
        return self.clock.monotonic()

    def start(self) -> None:
        self.client.start()
        self.runner.run_until_idle()

    def publish(self, server: MemoryServer, *names: str) -> None:
        for name in names:
            message = encode_event(named_alarm(name))
            server.publish(message.body, message.headers)
        self.runner.run_until_idle()

    def system_info(self, server: MemoryServer, start: str = "1000", primary: str = "10.0.0.1") -> None:
        message = encode_event(
            SystemInfoEvent(sys_start_time=start, jms_start_time=start, sys_primary_ip=primary)
        )
        server.publish(message.body, message.headers)
        self.runner.run_until_idle()

    def terminate(self, server: MemoryServer, client_id: str) -> None:
        message = encode_event(TerminateClientSession(client_id=client_id))
        server.publish(message.body, message.headers)
        self.runner.run_until_idle()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    made.client.stop()


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    made: list[Rig] = []

    def factory(**overrides: Any) -> Rig:
        made.append(Rig(tmp_path / str(len(made)), **overrides))
        return made[-1]

    yield factory
    for each in made:
        each.client.stop()


class TestStart:
    def test_connects_at_once_and_delivers_in_order(self, rig: Rig) -> None:
        """start() connects at the same virtual instant; events reach on_event in order and are acked."""
        rig.start()

        assert rig.client.state is ConnectionState.CONNECTED
        assert rig.handler.times("restored") == [0.0]
        rig.publish(rig.a, "one", "two", "three")
        assert rig.handler.names() == ["one", "two", "three"]
        assert rig.a.subscriptions() == {(rig.config.client_id, rig.config.client_id): 0}

    def test_refused_attempts_back_off_exponentially_then_give_up(self, make_rig: Callable[..., Rig]) -> None:
        """A refused server is tried at 0, 0.5, 1.5, 3.5 s; max_attempts ends run_forever with ClientStopped."""
        rig = make_rig(
            retry=RetryPolicy(
                initial_delay=0.5, max_delay=4.0, jitter=0.0, connect_timeout=2.0, max_attempts=4
            )
        )
        rig.a.refuse()

        with pytest.raises(ClientStopped) as stopped:
            rig.client.run_forever()

        assert rig.handler.times("lost") == [0.0, 0.5, 1.5, 3.5]
        assert stopped.value.last_loss is not None
        assert stopped.value.last_loss.reason is LossReason.SOCKET_ERROR
        assert rig.client.state is ConnectionState.STOPPED

    def test_a_connect_that_hangs_times_out_at_connect_timeout(self, rig: Rig) -> None:
        """No CONNECTED within connect_timeout: CONNECT_TIMEOUT at exactly 2 s, then a retry 0.5 s later."""
        rig.a.hang()
        rig.start()
        rig.runner.advance(2.0)
        (lost,) = rig.handler.of("lost")
        assert lost.reason is LossReason.CONNECT_TIMEOUT
        assert rig.handler.times("lost") == [2.0]

        rig.a.accept()
        rig.runner.advance(0.5)
        assert rig.handler.times("restored") == [2.5]


class TestStop:
    def test_stop_during_a_slow_connect_never_adopts_it(self, rig: Rig) -> None:
        """stop() while CONNECTED is withheld: STOPPED, and the late CONNECTED opens nothing and calls nothing."""
        rig.a.hold()
        rig.start()
        assert rig.client.health().state is ConnectionState.CONNECTING

        rig.client.stop()
        rig.a.release()
        rig.runner.advance(10.0)

        assert rig.client.state is ConnectionState.STOPPED
        assert rig.handler.of("restored") == []
        assert rig.broker.open_transports() == []
        assert rig.a.connections() == []

    def test_start_after_stop_starts_again(self, rig: Rig) -> None:
        """A stopped client starts again: a new connection, the durable backlog delivered."""
        rig.start()
        rig.client.stop()
        rig.publish(rig.a, "while-away")
        assert rig.handler.names() == []

        rig.start()

        assert rig.client.state is ConnectionState.CONNECTED
        assert rig.handler.names() == ["while-away"]

    def test_stop_from_a_callback_stops_when_it_returns(self, rig: Rig) -> None:
        """stop() in on_event only asks; the client stops after it, hands over nothing more, leaks nothing."""
        rig.start()
        rig.handler.on_event_hook = lambda event: rig.client.stop()

        rig.publish(rig.a, "first", "second", "third")

        assert rig.handler.names() == ["first"]
        assert rig.client.state is ConnectionState.STOPPED
        assert rig.client.statistics.handler_errors == 0
        assert rig.broker.open_transports() == []
        rig.handler.on_event_hook = None
        rig.start()  # what was not handed over comes again
        assert rig.handler.names() == ["first", "second", "third"]

    def test_decommission_from_a_callback_removes_the_subscription(self, rig: Rig) -> None:
        """decommission() in on_session_terminated: the client stops and the durable subscription is gone."""
        rig.start()
        rig.handler.on_terminated_hook = lambda notice: rig.client.decommission()

        rig.terminate(rig.a, rig.config.client_id)

        assert rig.client.state is ConnectionState.STOPPED
        assert rig.a.subscriptions() == {}
        assert rig.broker.open_transports() == []

    def test_nothing_is_called_after_stop(self, rig: Rig) -> None:
        """Messages already queued when stop() is called are not handed over (and not acked)."""
        rig.start()
        for name in ("x", "y"):
            message = encode_event(
                ObjectCreation(object_class="fm.AlarmInfo", attributes={"alarmName": name})
            )
            rig.a.publish(message.body, message.headers)  # queued, not yet stepped

        rig.client.stop()

        assert rig.handler.of("event") == []
        assert rig.a.subscriptions() == {(rig.config.client_id, rig.config.client_id): 2}

    def test_stop_is_idempotent_and_safe_before_start(self, rig: Rig) -> None:
        """stop() before start, twice, and after a stop, changes nothing and raises nothing."""
        rig.client.stop()
        rig.start()
        rig.client.stop()
        rig.client.stop()

        assert rig.client.state is ConnectionState.STOPPED

    def test_decommission_without_a_reachable_server_raises_a_public_error(self, rig: Rig) -> None:
        """Nothing reachable: SubscriptionRemovalFailed lists each server's failure (no private type)."""
        rig.a.refuse()

        with pytest.raises(SubscriptionRemovalFailed) as failed:
            rig.client.decommission()

        (failure,) = failed.value.failures
        assert failure.server == A
        assert failure.reason is LossReason.SOCKET_ERROR

    def test_run_forever_from_a_callback_is_refused(self, rig: Rig) -> None:
        """run_forever() inside a callback would wait for itself: LifecycleError, counted as a handler error."""
        rig.start()
        errors: list[BaseException] = []

        def reenter(_event: DataEvent) -> None:
            try:
                rig.client.run_forever()
            except LifecycleError as exc:
                errors.append(exc)

        rig.handler.on_event_hook = reenter
        rig.publish(rig.a, "one")

        assert len(errors) == 1
        assert rig.client.state is ConnectionState.CONNECTED


class TestTerminate:
    def test_terminate_ends_run_forever_with_session_terminated(self, rig: Rig) -> None:
        """TerminateClientSession with the default policy: run_forever raises SessionTerminated; TERMINATED."""
        rig.start()
        message = encode_event(TerminateClientSession(client_id=rig.config.client_id))
        rig.a.publish(message.body, message.headers)

        with pytest.raises(SessionTerminated) as ended:
            rig.client.run_forever()

        assert ended.value.notice.client_id == rig.config.client_id
        assert rig.client.state is ConnectionState.TERMINATED
        assert rig.broker.open_transports() == []
        assert [loss.reason for loss in rig.handler.of("lost")] == [LossReason.SESSION_TERMINATED]
        assert rig.client.health().status is HealthStatus.DOWN

    def test_a_notice_for_another_client_is_ignored(self, rig: Rig) -> None:
        """A TerminateClientSession naming another client id is acked, counted and not obeyed."""
        rig.start()

        rig.terminate(rig.a, "someone-else@7")

        assert rig.handler.of("terminated") == []
        assert rig.client.state is ConnectionState.CONNECTED
        assert rig.client.statistics.ignored_notices == 1
        assert rig.a.subscriptions() == {(rig.config.client_id, rig.config.client_id): 0}

    def test_a_notice_for_no_one_in_particular_is_obeyed(self, rig: Rig) -> None:
        """A TerminateClientSession without a client id ends this session."""
        rig.start()

        rig.terminate(rig.a, "")

        assert rig.client.state is ConnectionState.TERMINATED

    def test_reconnect_after_delay_waits_exactly_the_delay(self, make_rig: Callable[..., Rig]) -> None:
        """RECONNECT_AFTER_DELAY: the next connection comes terminate_reconnect_delay after the notice."""
        rig = make_rig(on_terminate=TerminatePolicy.RECONNECT_AFTER_DELAY, terminate_reconnect_delay=7.0)
        rig.start()
        rig.runner.advance(1.0)
        rig.terminate(rig.a, rig.config.client_id)

        rig.runner.advance(10.0)

        assert rig.handler.times("restored") == [0.0, 8.0]

    def test_a_base_exception_in_a_handler_stops_the_client_visibly(self, rig: Rig) -> None:
        """SystemExit raised by on_event: STOPPED, the cause kept, run_forever raises it, nothing left open."""
        rig.start()

        def leave(_event: DataEvent) -> None:
            raise SystemExit(3)

        rig.handler.on_event_hook = leave
        rig.publish(rig.a, "fatal")

        assert rig.client.state is ConnectionState.STOPPED
        assert isinstance(rig.client.failure, SystemExit)
        assert rig.broker.open_transports() == []
        assert "SystemExit" in rig.client.health().reason
        with pytest.raises(SystemExit):
            rig.client.run_forever()


class TestFailover:
    def test_a_silent_first_server_fails_over_to_the_second(self, make_rig: Callable[..., Rig]) -> None:
        """A server that accepts but delivers nothing: the watchdog expires at 5 s, the next server at 5.5 s."""
        rig = make_rig(servers=[A, B])
        rig.start()
        assert [info.server for info in rig.handler.of("restored")] == [A]

        rig.runner.advance(5.5)

        assert [loss.reason for loss in rig.handler.of("lost")] == [LossReason.WATCHDOG_EXPIRED]
        assert rig.handler.times("lost") == [5.0]
        assert [
            (info.server, at)
            for at, info in zip(rig.handler.times("restored"), rig.handler.of("restored"), strict=True)
        ] == [
            (A, 0.0),
            (B, 5.5),
        ]
        rig.system_info(rig.b)
        rig.runner.advance(0.1)  # the move's resync (SUBSCRIPTION_CHANGED) asked and completed
        rig.publish(rig.b, "live")
        assert rig.handler.names() == ["live"]

    def test_the_server_that_worked_last_is_tried_first(self, make_rig: Callable[..., Rig]) -> None:
        """After a failover to B, a dropped connection reconnects to B, not back to the silent A."""
        rig = make_rig(servers=[A, B])
        rig.start()
        rig.runner.advance(5.5)
        rig.publish(rig.b, "on-b")

        rig.b.drop()
        rig.runner.advance(0.5)

        assert [info.server for info in rig.handler.of("restored")] == [A, B, B]

    def test_connections_that_deliver_nothing_fail_over_after_failover_after(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """Two connections in a row to A that end before delivering anything: the next round starts at B."""
        rig = make_rig(servers=[A, B])
        rig.start()
        rig.a.drop()
        rig.runner.advance(0.5)
        rig.a.drop()
        rig.runner.advance(0.5)

        assert [info.server for info in rig.handler.of("restored")] == [A, A, B]

    def test_a_refused_primary_goes_to_the_standby_in_the_same_round(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """A refused first server: the second is tried at the same instant, not after a backoff."""
        rig = make_rig(servers=[A, B])
        rig.a.refuse()
        rig.start()

        assert [
            (info.server, at)
            for at, info in zip(rig.handler.times("restored"), rig.handler.of("restored"), strict=True)
        ] == [(B, 0.0)]

    def test_a_move_discards_the_stale_subscription_and_resyncs(self, make_rig: Callable[..., Rig]) -> None:
        """Back on A after B, A's old backlog (events the client had from B) is discarded and a resync asked."""
        rig = make_rig(servers=[A, B])
        rig.start()
        rig.system_info(rig.a)
        rig.runner.advance(0.1)
        rig.publish(rig.a, "on-a")
        rig.a.drop()
        rig.a.refuse()
        rig.runner.advance(0.5)  # on B now
        rig.system_info(rig.b)
        rig.publish(rig.a, "stale-on-a")  # A's durable subscription still collects
        rig.publish(rig.b, "on-b")
        rig.runner.advance(0.1)

        rig.a.accept()
        rig.b.drop()
        rig.b.refuse()
        rig.runner.advance(0.5)  # back on A
        rig.system_info(rig.a)
        rig.runner.advance(0.1)

        assert [info.server for info in rig.handler.of("restored")] == [A, B, A]
        assert "stale-on-a" not in rig.handler.names()
        reasons = [request.reason for request in rig.handler.of("resync")]
        assert reasons == [
            ResyncReason.INITIAL,
            ResyncReason.SUBSCRIPTION_CHANGED,
            ResyncReason.SUBSCRIPTION_CHANGED,
        ]
        assert rig.handler.of("resync")[-1].evidence == {"old_server": B, "new_server": A}

    def test_returns_to_the_primary_and_leaves_nothing_on_the_standby(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """return_to_primary: the probe at 10 s finds A back; the standby's subscription is removed."""
        rig = make_rig(servers=[A, B], return_to_primary=True, keepalive_timeout=60.0)
        rig.a.refuse()
        rig.start()
        rig.a.accept()

        rig.runner.advance(10.0)

        assert [
            (info.server, at)
            for at, info in zip(rig.handler.times("restored"), rig.handler.of("restored"), strict=True)
        ] == [
            (B, 0.0),
            (A, 10.0),
        ]
        assert rig.handler.of("lost")[-1].reason is LossReason.RETURNING_TO_PRIMARY
        assert rig.b.subscriptions() == {}


class TestSilence:
    def test_a_long_handler_is_not_the_servers_silence(self, rig: Rig) -> None:
        """A handler busy for 8 s (keepalive_timeout 5): no expiry during or right after it; at 13 s it expires."""
        rig.start()
        rig.handler.on_event_hook = lambda event: rig.clock.advance(8.0)
        rig.publish(rig.a, "slow")
        rig.handler.on_event_hook = None
        assert rig.now == 8.0
        assert rig.handler.of("lost") == []

        rig.runner.advance(6.0)

        assert [loss.reason for loss in rig.handler.of("lost")] == [LossReason.WATCHDOG_EXPIRED]
        assert rig.handler.times("lost") == [13.0]

    def test_silence_counts_from_the_subscription_not_the_connect(self, rig: Rig) -> None:
        """A subscription confirmed 1.9 s after the connect began: the watchdog runs 5 s from then (6.9 s)."""
        rig.a.hold()
        rig.start()
        rig.runner.advance(1.9)
        rig.a.release()
        rig.runner.run_until_idle()

        rig.runner.advance(6.0)

        assert rig.handler.times("lost") == [6.9]

    def test_heartbeat_silence_is_detected_at_its_deadline(self, rig: Rig) -> None:
        """Heart-beats stop at 1 s: HEARTBEAT_TIMEOUT at 1 + 2.5 intervals of 1 s = 3.5 s exactly."""
        rig.start()
        rig.runner.advance(1.0)
        rig.a.silence_heartbeats()

        rig.runner.advance(3.0)

        assert [loss.reason for loss in rig.handler.of("lost")] == [LossReason.HEARTBEAT_TIMEOUT]
        assert rig.handler.times("lost") == [3.5]

    def test_a_failing_handler_is_retried_with_growing_delays(self, rig: Rig) -> None:
        """on_event raising: the connection is reopened after 0.5, 1, 2 s, and the message comes back first."""
        rig.start()
        failures = iter(range(3))

        def flaky(_event: DataEvent) -> None:
            if next(failures, None) is not None:
                raise RuntimeError("not yet")

        rig.handler.on_event_hook = flaky
        rig.publish(rig.a, "retry-me", "after")
        rig.runner.advance(5.0)

        assert rig.handler.times("restored") == [0.0, 0.5, 1.5, 3.5]
        assert rig.handler.names() == ["retry-me"] * 4 + ["after"]


class TestAcknowledgements:
    """Cumulative acknowledgements in batches (``client`` mode): fewer ACK frames, every guarantee kept."""

    @staticmethod
    def stored(rig: Rig) -> int:
        return rig.a.subscriptions()[(rig.config.client_id, str(rig.config.durable_name))]

    def test_acknowledged_in_batches_and_everything_once_idle(self, make_rig: Callable[..., Rig]) -> None:
        """prefetch 20: an ACK every 10 messages, and one for the rest as soon as nothing more waits."""
        rig = make_rig(prefetch=20)
        assert (rig.config.ack_every, rig.config.ack_mode) == (10, "client")
        rig.start()
        before = rig.a.acks
        rig.publish(rig.a, *(f"m{i}" for i in range(35)))

        assert rig.handler.names() == [f"m{i}" for i in range(35)]
        assert rig.a.acks - before == 4  # 10, 20, 30, and the last 5 once idle
        assert self.stored(rig) == 0

    def test_one_by_one_with_ack_batch_1(self, make_rig: Callable[..., Rig]) -> None:
        """ack_batch 1: ``client-individual``, one ACK per message, as before batching."""
        rig = make_rig(prefetch=20, ack_batch=1)
        assert rig.config.ack_mode == "client-individual"
        rig.start()
        before = rig.a.acks
        rig.publish(rig.a, *(f"m{i}" for i in range(35)))

        assert rig.handler.names() == [f"m{i}" for i in range(35)]
        assert rig.a.acks - before == 35
        assert self.stored(rig) == 0

    def test_a_handler_failure_mid_batch_acknowledges_what_came_before(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """The handler raises on m7 of a batch: m0-m6 are acknowledged before the connection is reopened, so
        only m7 and what follows come again (m7 first), and nothing is handed over twice."""
        rig = make_rig(prefetch=20)
        rig.start()
        failed: list[str] = []

        def fail_once(event: DataEvent) -> None:
            if isinstance(event, ObjectCreation) and event.attributes["alarmName"] == "m7" and not failed:
                failed.append("m7")
                raise RuntimeError("not yet")

        rig.handler.on_event_hook = fail_once
        rig.publish(rig.a, *(f"m{i}" for i in range(12)))
        rig.runner.advance(2.0)

        assert rig.handler.names() == [f"m{i}" for i in range(8)] + [f"m{i}" for i in range(7, 12)]
        assert rig.client.statistics.duplicates == 0
        assert self.stored(rig) == 0

    def test_a_connection_lost_mid_batch_delivers_again_and_nothing_twice(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """The connection dies with acknowledgements owed: the broker delivers those messages again, and the
        de-duplication drops them, so the handler sees every message once."""
        rig = make_rig(prefetch=20)
        rig.start()

        def cut(event: DataEvent) -> None:
            if isinstance(event, ObjectCreation) and event.attributes["alarmName"] == "m4":
                rig.a.drop()

        rig.handler.on_event_hook = cut
        rig.publish(rig.a, *(f"m{i}" for i in range(12)))
        rig.runner.advance(2.0)

        assert rig.handler.names() == [f"m{i}" for i in range(12)]
        assert rig.client.statistics.duplicates >= 5  # m0-m4 at least were handled, not acknowledged
        assert self.stored(rig) == 0

    def test_a_slow_handler_acknowledges_after_ack_interval(self, make_rig: Callable[..., Rig]) -> None:
        """0.2 s per event and ack_interval 0.5 s: acknowledgements go out every few events while the stream
        goes on, not only once 50 are handled or the stream is idle."""
        rig = make_rig(ack_interval=0.5)
        rig.start()
        stored: list[int] = []

        def slow(_event: DataEvent) -> None:
            stored.append(self.stored(rig))
            rig.clock.advance(0.2)

        rig.handler.on_event_hook = slow
        rig.publish(rig.a, *(f"m{i}" for i in range(10)))

        assert rig.handler.names() == [f"m{i}" for i in range(10)]
        assert stored[0] == 10
        assert stored[-1] <= 10 - 6  # the first six at least were acknowledged while m9 was handled
        assert self.stored(rig) == 0


class _EarlyDispatch:
    """A transport whose broker dispatches a stored message before confirming the subscription."""

    def __init__(self, body: bytes, headers: dict[str, str], **kwargs: Any) -> None:
        self._kwargs = kwargs
        self._message = (body, headers)
        self.acked: list[str] = []

    @property
    def server(self) -> Any:
        return self._kwargs["server"]

    @property
    def epoch(self) -> int:
        return int(self._kwargs["epoch"])

    def open(self, *, fresh: bool = False) -> None:
        from nfmp_client.engine import FrameReceived, Opened

        sink, clock = self._kwargs["sink"], self._kwargs["clock"]
        body, headers = self._message
        sink(FrameReceived(epoch=self.epoch, headers=headers, body=body, at=clock.monotonic()))
        sink(Opened(epoch=self.epoch, session="s"))

    def ack(self, ack_id: str) -> None:
        self.acked.append(ack_id)

    def heartbeat_deadline(self) -> float | None:
        return None

    def close(self, *, remove_durable: bool = False) -> None:
        pass

    def abort(self) -> None:
        pass

    def remove_subscription(self) -> None:
        pass

    def probe(self) -> None:
        pass


def test_a_message_dispatched_before_the_subscription_receipt_is_delivered(tmp_path: Path) -> None:
    """A broker may dispatch before it confirms the subscription: that message is handed over, then acked."""
    rig = Rig(tmp_path)
    message = encode_event(ObjectCreation(object_class="fm.AlarmInfo", attributes={"alarmName": "early"}))
    made: list[_EarlyDispatch] = []

    def factory(config: ClientConfig, server: Any, **kwargs: Any) -> _EarlyDispatch:
        made.append(
            _EarlyDispatch(message.body, {**message.headers, "message-id": "m1"}, server=server, **kwargs)
        )
        return made[-1]

    client = NfmpClient(rig.config, rig.handler, clock=rig.clock, transport=factory, runner=rig.runner)
    client.start()
    rig.runner.run_until_idle()

    assert rig.handler.names() == ["early"]
    assert made[0].acked == ["m1"]
    client.stop()


def test_a_header_value_of_thousands_of_digits_does_not_stall_the_stream(rig: Rig) -> None:
    """An MTOSI_osTime of 5,000 digits (beyond int()'s limit) is read as no time; what follows is delivered."""
    rig.start()
    message = encode_event(KeepAliveEvent())
    rig.a.publish(message.body, {**message.headers, "MTOSI_osTime": "9" * 5000})
    rig.publish(rig.a, "after")

    assert rig.handler.names() == ["after"]
    assert rig.client.statistics.malformed == 0
    assert rig.client.state is ConnectionState.CONNECTED


def test_a_first_run_that_never_connected_leaves_the_initial_resync_owed(tmp_path: Path) -> None:
    """Run 1 never reaches a server and stops; run 2, with the same state, asks for the INITIAL resync."""
    first = Rig(tmp_path)
    first.a.refuse()
    first.start()
    first.runner.advance(2.0)
    first.client.stop()
    assert first.handler.of("resync") == []

    second = Rig(tmp_path, client_id=first.config.client_id)
    second.start()
    second.system_info(second.a)
    second.runner.advance(0.1)

    assert [request.reason for request in second.handler.of("resync")] == [ResyncReason.INITIAL]
    second.client.stop()


def test_a_jms_missed_events_for_another_client_is_ignored(rig: Rig) -> None:
    """A JmsMissedEvents addressed to another client id (the selector admits it) asks for no resync."""
    rig.start()
    rig.system_info(rig.a)
    rig.runner.advance(0.1)
    assert [r.reason for r in rig.handler.of("resync")] == [ResyncReason.INITIAL]

    message = encode_event(JmsMissedEvents(header=EventHeader(client_id="someone-else@7")))
    rig.a.publish(message.body, message.headers)
    rig.runner.advance(1.0)

    assert [r.reason for r in rig.handler.of("resync")] == [ResyncReason.INITIAL]
    assert rig.client.statistics.ignored_notices == 1


def test_a_jms_missed_events_for_no_one_in_particular_is_obeyed(rig: Rig) -> None:
    """A JmsMissedEvents without an addressee (no ALA_clientId) asks for a MISSED_EVENTS resync."""
    rig.start()
    rig.system_info(rig.a)
    rig.runner.advance(0.1)

    message = encode_event(JmsMissedEvents())
    rig.a.publish(message.body, {k: v for k, v in message.headers.items() if k != "ALA_clientId"})
    rig.runner.advance(1.0)

    assert [r.reason for r in rig.handler.of("resync")] == [ResyncReason.INITIAL, ResyncReason.MISSED_EVENTS]


def test_two_clients_with_one_client_id_and_state_directory_are_refused(rig: Rig) -> None:
    """A second client with the same client id and state directory fails at start(), naming the holder;
    once the first stops, it starts."""
    rig.start()
    twin = rig.new_client()

    with pytest.raises(StateFileLocked) as refused:
        twin.start()

    assert "pid" in refused.value.holder
    rig.client.stop()
    twin.start()
    assert twin.health().state is ConnectionState.CONNECTING or twin.state is ConnectionState.CONNECTED
    twin.stop()


def test_an_event_the_handler_always_rejects_is_given_up(make_rig: Callable[..., Rig]) -> None:
    """max_handler_failures 3: redelivered twice (0.5 s, then 1 s later), then handed to on_undeliverable,
    acknowledged and counted; the stream goes on and an UNDELIVERABLE resync is asked."""
    rig = make_rig(max_handler_failures=3)
    rig.start()
    rig.system_info(rig.a)
    rig.runner.advance(0.1)

    def reject(event: DataEvent) -> None:
        if isinstance(event, ObjectCreation) and event.attributes["alarmName"] == "poison":
            raise ValueError("cannot apply this one")

    rig.handler.on_event_hook = reject
    rig.publish(rig.a, "poison", "after")
    rig.runner.advance(3.0)

    assert rig.handler.times("restored") == [0.0, 0.6, 1.6]
    ((event, error),) = rig.handler.of("undeliverable")
    assert isinstance(event, ObjectCreation)
    assert event.attributes["alarmName"] == "poison"
    assert isinstance(error, ValueError)
    assert rig.client.statistics.undeliverable == 1
    requests = rig.handler.of("resync")
    assert requests[0].reason is ResyncReason.INITIAL
    assert ResyncReason.UNDELIVERABLE in requests[-1].reasons  # with the reconnections' unknown state
    # Held from the UNDELIVERABLE trigger on, then dropped by the next one (no SystemInfoEvent came within
    # 1 s of the reconnection): the retrieval after both covers it.
    assert "after" not in rig.handler.names()
    assert rig.a.subscriptions() == {(rig.config.client_id, rig.config.client_id): 0}
    rig.publish(rig.a, "later")
    assert rig.handler.names()[-1] == "later"
    assert rig.handler.of("event")[-1].header.resync_epoch == requests[-1].epoch


def test_no_event_after_a_trigger_is_delivered_with_the_old_epoch(make_rig: Callable[..., Rig]) -> None:
    """A server restart noticed at 1 s, requested at 10 s (resync_min_interval): the events in between are
    not handed over as if they belonged to the old state; they are held and come, in order, with the new
    epoch once the resync completed."""
    rig = make_rig(resync_min_interval=10.0, keepalive_timeout=60.0)
    rig.start()
    rig.system_info(rig.a)
    rig.runner.advance(0.1)  # INITIAL requested at 0 and completed
    rig.publish(rig.a, "before")
    rig.runner.advance(0.9)

    rig.system_info(rig.a, start="2000")  # the server restarted: noticed now, at 1 s
    rig.publish(rig.a, "between")
    rig.runner.advance(9.5)
    requests = rig.handler.of("resync")
    assert [r.reason for r in requests] == [ResyncReason.INITIAL, ResyncReason.SERVER_RESTARTED]
    assert rig.handler.times("resync")[-1] == 10.0
    rig.publish(rig.a, "after")

    delivered = [(e.attributes["alarmName"], e.header.resync_epoch) for e in rig.handler.of("event")]
    assert delivered == [("before", 1), ("between", 2), ("after", 2)]


def test_a_long_backlog_before_the_system_info_event_is_no_unknown_state(tmp_path: Path) -> None:
    """A durable reconnect whose stored backlog takes 3 s to drain (system_info_timeout 1 s), the server's
    SystemInfoEvent behind it: the window counts only time in which nothing waited, so no resync."""
    first = Rig(tmp_path)
    first.start()
    first.system_info(first.a)
    first.runner.advance(0.1)  # INITIAL requested and completed
    first.client.stop()
    for number in range(30):
        message = encode_event(
            ObjectCreation(object_class="fm.AlarmInfo", attributes={"alarmName": str(number)})
        )
        first.a.publish(message.body, message.headers)
    info = encode_event(
        SystemInfoEvent(sys_start_time="1000", jms_start_time="1000", sys_primary_ip="10.0.0.1")
    )
    first.a.publish(info.body, info.headers)

    second = Rig(tmp_path, client_id=first.config.client_id, prefetch=100)
    second.a, second.broker = first.a, first.broker
    client = NfmpClient(
        second.config, second.handler, clock=first.clock, transport=first.broker, runner=first.runner
    )
    second.handler.clock = first.clock
    second.handler.on_event_hook = lambda event: first.clock.advance(0.1)  # a slow drain: 3 s in all
    client.start()
    first.runner.advance(5.0)

    assert len(second.handler.of("event")) == 30
    assert second.handler.of("resync") == []
    client.stop()


def test_another_clients_system_info_event_is_not_judged(rig: Rig) -> None:
    """A SystemInfoEvent addressed to another client (the selector admits every StateChangeEvent; it may be
    a stale one from a durable backlog) changes nothing: no restart is read into an old identity."""
    rig.start()
    rig.system_info(rig.a)
    rig.runner.advance(0.1)
    stale = encode_event(
        SystemInfoEvent(
            header=EventHeader(client_id="someone-else@7"),
            sys_start_time="1",
            jms_start_time="1",
            sys_primary_ip="10.0.0.9",
        )
    )
    rig.a.publish(stale.body, stale.headers)
    rig.runner.advance(2.0)

    assert [r.reason for r in rig.handler.of("resync")] == [ResyncReason.INITIAL]
    assert rig.client.statistics.ignored_notices == 1


class TestReplay:
    """The events held during a resync are replayed once it completes; a handler failing on one is treated as
    on the stream (retried with growing delays, given up after max_handler_failures), not as a lost resync."""

    @staticmethod
    def fail_on_flaky(rig: Rig, times: int) -> list[float]:
        """Make the handler raise on the event named "flaky" the first *times* times; return their times."""
        failures: list[float] = []

        def flaky(event: DataEvent) -> None:
            named = isinstance(event, ObjectCreation) and event.attributes["alarmName"] == "flaky"
            if named and len(failures) < times:
                failures.append(rig.now)
                raise ValueError("not yet")

        rig.handler.on_event_hook = flaky
        return failures

    @staticmethod
    def held_through_a_restart(rig: Rig, *names: str) -> None:
        # INITIAL done at 0; a server restart noticed at 1 s, requested at 10 s (resync_min_interval): the
        # events published in between are held, and replayed at 10 s.
        rig.start()
        rig.system_info(rig.a)
        rig.runner.advance(1.0)
        rig.system_info(rig.a, start="2000")
        rig.publish(rig.a, *names)

    def test_a_replayed_event_the_handler_fails_on_is_retried_not_resynced_again(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """Two failures on the first replayed event (at 10 s, then 0.5 s later), success 1 s after that; the
        rest follows in order, an event arriving meanwhile after them, all with the new epoch; the resync is
        complete and no other is asked (before: an INCOMPLETE resync, a whole retrieval, for a handler that
        only needed a second try)."""
        rig = make_rig(resync_min_interval=10.0, keepalive_timeout=60.0)
        failures = self.fail_on_flaky(rig, 2)
        self.held_through_a_restart(rig, "flaky", "after")
        rig.runner.advance(9.6)  # 10.6 s: the first retry failed at 10.5
        rig.publish(rig.a, "during")
        rig.runner.advance(2.0)

        assert failures == [10.0, 10.5]
        assert [r.reason for r in rig.handler.of("resync")] == [
            ResyncReason.INITIAL,
            ResyncReason.SERVER_RESTARTED,
        ]
        handled = [
            (at, e.attributes["alarmName"], e.header.resync_epoch)
            for at, name, e in rig.handler.calls
            if name == "event" and (e.attributes["alarmName"] != "flaky" or at == 11.5)
        ]
        assert handled == [(11.5, "flaky", 2), (11.5, "after", 2), (11.5, "during", 2)]
        assert rig.client.in_sync
        assert rig.client.statistics.undeliverable == 0

    def test_a_replayed_event_the_handler_always_rejects_is_given_up_and_the_replay_goes_on(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """max_handler_failures 3: failures at 10, 10.5 and 11.5 s, then on_undeliverable, the rest replayed,
        and an UNDELIVERABLE resync (10 s after the last request)."""
        rig = make_rig(resync_min_interval=10.0, max_handler_failures=3, keepalive_timeout=60.0)

        def reject(event: DataEvent) -> None:
            if isinstance(event, ObjectCreation) and event.attributes["alarmName"] == "poison":
                raise ValueError("cannot apply this one")

        rig.handler.on_event_hook = reject
        self.held_through_a_restart(rig, "poison", "after")
        rig.runner.advance(19.5)

        assert [
            at
            for at, name, e in rig.handler.calls
            if name == "event" and e.attributes["alarmName"] == "poison"
        ] == [10.0, 10.5, 11.5]
        ((event, error),) = rig.handler.of("undeliverable")
        assert event.attributes["alarmName"] == "poison"
        assert isinstance(error, ValueError)
        assert rig.handler.names()[-1] == "after"
        assert rig.client.statistics.undeliverable == 1
        requests = rig.handler.of("resync")
        assert [r.reason for r in requests] == [
            ResyncReason.INITIAL,
            ResyncReason.SERVER_RESTARTED,
            ResyncReason.UNDELIVERABLE,
        ]
        assert rig.handler.times("resync")[-1] == 20.0

    def test_a_trigger_during_the_replay_stays_owed_when_the_replay_completes(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """JmsMissedEvents arrives while a replayed event waits for its retry; its request is due only 10 s
        later. The replay then completes, and the process ends before that request: the next run must still
        owe the resync (the completion must not wipe an obligation that came after the request)."""
        rig = make_rig(resync_min_interval=10.0, keepalive_timeout=60.0)
        failures = self.fail_on_flaky(rig, 1)
        self.held_through_a_restart(rig, "flaky")
        rig.runner.advance(9.1)  # 10.1 s: the replay failed at 10 s, its retry is due at 10.5
        message = encode_event(JmsMissedEvents(header=EventHeader(client_id=rig.config.client_id)))
        rig.a.publish(message.body, message.headers)
        rig.runner.advance(1.0)  # the retry succeeded: the restart's resync is complete
        assert failures == [10.0]
        assert [r.reason for r in rig.handler.of("resync")][-1] is ResyncReason.SERVER_RESTARTED
        rig.client.stop()

        second = Rig(rig.config.state_dir, client_id=rig.config.client_id, keepalive_timeout=60.0)  # type: ignore[arg-type]
        second.start()
        second.system_info(second.a, start="2000")
        second.runner.advance(0.1)
        try:
            requests = second.handler.of("resync")
            assert [r.reason for r in requests] == [ResyncReason.INCOMPLETE]
            assert "missed-events" in requests[0].evidence.get("owed", "")
        finally:
            second.client.stop()


def test_events_held_before_a_later_trigger_are_not_replayed_over_its_retrieval(
    make_rig: Callable[..., Rig],
) -> None:
    """A restart noticed at 1 s (its request due at 10 s): "raised" is held at 2 s; at 3 s a JmsMissedEvents
    says later events were lost (that alarm's clearing, say). The retrieval at 10 s covers "raised", and
    replaying it over the retrieval would bring the cleared alarm back (found by the chaos soak: alarms the
    server had cleared stayed in the mirror). It is dropped; what came after the JmsMissedEvents is replayed."""
    rig = make_rig(resync_min_interval=10.0, keepalive_timeout=60.0)
    rig.start()
    rig.system_info(rig.a)
    rig.runner.advance(1.0)
    rig.system_info(rig.a, start="2000")
    rig.publish(rig.a, "raised")
    rig.runner.advance(1.0)
    missed = encode_event(JmsMissedEvents(header=EventHeader(client_id=rig.config.client_id)))
    rig.a.publish(missed.body, missed.headers)
    rig.publish(rig.a, "after")
    rig.runner.advance(8.0)

    requests = rig.handler.of("resync")
    assert [r.reason for r in requests] == [ResyncReason.INITIAL, ResyncReason.SERVER_RESTARTED]
    assert ResyncReason.MISSED_EVENTS in requests[-1].reasons
    assert [(e.attributes["alarmName"], e.header.resync_epoch) for e in rig.handler.of("event")] == [
        ("after", 2)
    ]


T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


def keepalive(server: MemoryServer, second: float) -> None:
    """Publish NFM-P's keep-alive of server time T0 + *second* (its MTOSI_osTime)."""
    message = encode_event(KeepAliveEvent(header=EventHeader(os_time=T0 + timedelta(seconds=second))))
    server.publish(message.body, message.headers)


class TestContinuity:
    """The continuity check: the first keep-alive after a reconnect, judged against the last one before."""

    def in_sync(self, rig: Rig, *keepalives: float) -> None:
        """Start, complete the initial resync and learn a 10 s keep-alive period."""
        rig.start()
        rig.system_info(rig.a)
        rig.runner.advance(0.1)
        for second in keepalives or (0, 10, 20, 30):
            keepalive(rig.a, second)
        rig.runner.run_until_idle()
        assert self.reasons(rig) == [ResyncReason.INITIAL]

    def reasons(self, rig: Rig) -> list[ResyncReason]:
        return [request.reason for request in rig.handler.of("resync")]

    def away(self, rig: Rig) -> None:
        rig.a.refuse()
        rig.a.drop()
        rig.runner.advance(1.0)

    def back(self, rig: Rig) -> None:
        """Let the client reconnect (after its backoff) and take the backlog; the SystemInfoEvent is not due yet."""
        rig.a.accept()
        while rig.client.state is not ConnectionState.CONNECTED:
            rig.runner.advance(0.05)
        rig.runner.run_until_idle()

    def test_a_subscription_removed_while_away_is_one_resync(self, rig: Rig) -> None:
        """No JmsMissedEvents comes (the broker that lost it is not NFM-P): the keep-alives tell."""
        self.in_sync(rig)
        self.away(rig)
        rig.a.remove_subscription(rig.config.client_id, rig.config.client_id)
        keepalive(rig.a, 40)  # sent while nothing was kept for the client
        rig.publish(rig.a, "lost-1")
        self.back(rig)
        rig.system_info(rig.a)  # the same server: no restart
        keepalive(rig.a, 70)
        rig.publish(rig.a, "after")
        rig.runner.advance(1.0)

        requests = rig.handler.of("resync")
        assert self.reasons(rig) == [ResyncReason.INITIAL, ResyncReason.KEEPALIVE_GAP]
        assert requests[1].evidence["gap"] == "40.0 s"
        assert requests[1].evidence["keepalive_period"] == "10.0 s"

    def test_a_durable_reconnect_with_a_backlog_is_no_resync(self, rig: Rig) -> None:
        self.in_sync(rig)
        self.away(rig)
        for second in (40, 50, 60, 70):
            keepalive(rig.a, second)
            rig.publish(rig.a, f"kept-{second}")
        self.back(rig)
        rig.system_info(rig.a)
        keepalive(rig.a, 80)
        rig.runner.advance(1.0)

        assert self.reasons(rig) == [ResyncReason.INITIAL]
        assert rig.handler.names()[-4:] == ["kept-40", "kept-50", "kept-60", "kept-70"]

    def test_a_server_restart_is_one_resync(self, rig: Rig) -> None:
        """No keep-alives while the server was down, and a new sysStartTime: one request, the restart's."""
        self.in_sync(rig)
        self.away(rig)
        self.back(rig)
        rig.system_info(rig.a, start="2000")
        rig.runner.advance(1.0)
        keepalive(rig.a, 300)
        rig.runner.advance(1.0)

        assert self.reasons(rig) == [ResyncReason.INITIAL, ResyncReason.SERVER_RESTARTED]

    def test_a_gap_seen_before_the_restarts_system_info_is_coalesced_with_it(self, rig: Rig) -> None:
        self.in_sync(rig)
        self.away(rig)
        self.back(rig)
        keepalive(rig.a, 300)  # keep-alives may come ahead of other events
        rig.system_info(rig.a, start="2000")
        rig.runner.advance(1.0)

        requests = rig.handler.of("resync")
        assert self.reasons(rig) == [ResyncReason.INITIAL, ResyncReason.SERVER_RESTARTED]
        assert requests[1].reasons == {ResyncReason.SERVER_RESTARTED, ResyncReason.KEEPALIVE_GAP}

    def test_a_restart_of_the_application_is_judged_against_the_persisted_keepalive(
        self, tmp_path: Path
    ) -> None:
        first = Rig(tmp_path)
        self.in_sync(first)
        first.client.stop()
        first.a.remove_subscription(first.config.client_id, first.config.client_id)

        second = Rig(tmp_path, client_id=first.config.client_id)
        second.start()
        second.system_info(second.a)
        keepalive(second.a, 500)
        second.runner.advance(1.0)

        assert self.reasons(second) == [ResyncReason.KEEPALIVE_GAP]
        assert (
            second.handler.of("resync")[0].evidence["last_keepalive"]
            == (T0 + timedelta(seconds=30)).isoformat()
        )
        second.client.stop()

    def test_a_restart_of_the_application_with_its_backlog_kept_is_no_resync(self, tmp_path: Path) -> None:
        first = Rig(tmp_path)
        self.in_sync(first)
        first.client.stop()
        keepalive(first.a, 40)  # stored for the durable subscription meanwhile

        second = Rig(tmp_path, client_id=first.config.client_id)
        second.a = first.a
        second.broker = first.broker
        second.client = NfmpClient(
            second.config, second.handler, clock=first.clock, transport=first.broker, runner=first.runner
        )
        second.clock, second.runner = first.clock, first.runner
        second.start()
        second.system_info(second.a)
        keepalive(second.a, 50)
        second.runner.advance(1.0)

        assert self.reasons(second) == []
        second.client.stop()

    def test_the_first_start_is_not_judged(self, rig: Rig) -> None:
        rig.start()
        rig.system_info(rig.a)
        keepalive(rig.a, 1000)
        rig.runner.advance(1.0)
        assert self.reasons(rig) == [ResyncReason.INITIAL]

    def test_a_non_durable_subscription_is_not_judged(self, make_rig: Callable[..., Rig]) -> None:
        rig = make_rig(durable=False)
        self.in_sync(rig)
        self.away(rig)
        self.back(rig)
        rig.system_info(rig.a)
        keepalive(rig.a, 500)
        rig.runner.advance(1.0)
        requests = rig.handler.of("resync")
        assert self.reasons(rig) == [ResyncReason.INITIAL, ResyncReason.SUBSCRIPTION_NOT_DURABLE]
        assert ResyncReason.KEEPALIVE_GAP not in requests[1].reasons

    def test_the_check_can_be_turned_off(self, make_rig: Callable[..., Rig]) -> None:
        rig = make_rig(continuity_check=False)
        self.in_sync(rig)
        self.away(rig)
        rig.a.remove_subscription(rig.config.client_id, rig.config.client_id)
        self.back(rig)
        rig.system_info(rig.a)
        keepalive(rig.a, 500)
        rig.runner.advance(1.0)
        assert self.reasons(rig) == [ResyncReason.INITIAL]


QUEUE = "Consumer.alarms.VirtualTopic.5620-SAM-topic-xml"


class TestQueue:
    """A queue of a virtual topic that a JMS bridge feeds, instead of a durable topic subscription."""

    def bridged(self, make_rig: Callable[..., Rig], **overrides: Any) -> Rig:
        return make_rig(queue=QUEUE, upstream_client_id="oss1@1", **overrides)

    def reasons(self, rig: Rig) -> list[ResyncReason]:
        return [request.reason for request in rig.handler.of("resync")]

    def test_through_a_bridge_no_system_info_event_is_awaited(self, make_rig: Callable[..., Rig]) -> None:
        """NFM-P greets the bridge's connection, not the client's: neither the first resync nor a reconnect
        waits for a SystemInfoEvent, and its absence is no unknown state."""
        rig = self.bridged(make_rig)
        rig.start()
        rig.runner.advance(0.1)
        assert self.reasons(rig) == [ResyncReason.INITIAL]

        rig.a.drop()
        rig.runner.advance(5 * rig.config.system_info_timeout)
        rig.publish(rig.a, "after")

        assert rig.client.state is ConnectionState.CONNECTED
        assert self.reasons(rig) == [ResyncReason.INITIAL]
        assert rig.handler.names() == ["after"]
        assert rig.broker.transports[-1].config.destination == f"/queue/{QUEUE}"

    def test_a_queue_deleted_while_away_is_one_keepalive_gap_resync(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        rig = self.bridged(make_rig)
        rig.start()
        for second in (0, 10, 20, 30):
            keepalive(rig.a, second)
        rig.runner.advance(0.1)
        rig.a.refuse()
        rig.a.drop()
        rig.runner.advance(1.0)
        assert rig.a.queues() == {QUEUE: 0}  # everything acknowledged
        rig.a.delete_queue(QUEUE)
        assert rig.a.queues() == {}
        keepalive(rig.a, 40)  # no queue: not kept
        rig.a.accept()
        rig.runner.advance(5.0)
        keepalive(rig.a, 70)
        rig.runner.advance(1.0)

        assert self.reasons(rig) == [ResyncReason.INITIAL, ResyncReason.KEEPALIVE_GAP]

    def test_an_exclusive_standby_waits_silently_then_takes_over(self, make_rig: Callable[..., Rig]) -> None:
        """The standby is neither declared dead by the watchdog nor resynced while it waits; when the active
        instance goes, it takes the queue, resyncs (its first start) and gets the events the active one left."""
        active = self.bridged(make_rig, exclusive=True)
        standby_handler = Recorder(active.clock)
        standby_runner = ManualRunner(active.clock)
        standby_config = ClientConfig(
            **{
                **{
                    name: getattr(active.config, name) for name in ("servers", "heartbeats", "retry", "queue")
                },
                "client_id": "alarms-b@1",
                "upstream_client_id": "oss1@1",
                "exclusive": True,
                "keepalive_timeout": active.config.keepalive_timeout,
                "state_dir": active.config.state_dir / "b",  # type: ignore[operator]
                "resync_coalesce_window": 0.0,
                "resync_min_interval": 0.0,
            }
        )
        standby = NfmpClient(
            standby_config,
            standby_handler,
            clock=active.clock,
            transport=active.broker,
            runner=standby_runner,
        )
        active.start()
        standby.start()

        def both(seconds: float) -> None:
            """Run both for *seconds*, with NFM-P's keep-alive every second (the active one stays alive)."""
            for step in range(int(seconds / 0.1)):
                if step % 10 == 0:
                    keepalive(active.a, active.now)
                active.runner.advance(0.1)
                standby_runner.run_until_idle()

        both(0.5)
        for name in ("one", "two"):
            message = encode_event(named_alarm(name))
            active.a.publish(message.body, message.headers)
        both(3 * active.config.keepalive_timeout)

        assert active.handler.names() == ["one", "two"]
        assert active.handler.of("lost") == []
        assert standby_handler.names() == []
        assert (
            standby_handler.of("resync") == standby_handler.of("lost") == standby_handler.of("system") == []
        )
        assert standby.state is ConnectionState.CONNECTED
        assert standby.health().status is HealthStatus.STANDBY
        assert active.client.health().status is HealthStatus.LIVE

        active.client.stop()
        message = encode_event(named_alarm("three"))
        active.a.publish(message.body, message.headers)
        for _ in range(20):
            active.clock.advance(0.1)
            standby_runner.run_until_idle()

        assert standby_handler.names() == ["three"]
        assert standby.health().status is not HealthStatus.STANDBY
        assert [r.reason for r in standby_handler.of("resync")] == [ResyncReason.INITIAL]
        standby.stop()

    def test_through_a_bridge_a_gap_within_one_connection_is_a_resync(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """The bridge lost NFM-P and its subscription there (nothing kept): the client's own connection stayed up;
        the keep-alives after the bridge's reconnect are far from the last one before."""
        rig = make_rig(queue=QUEUE, upstream_client_id="oss1@1")
        rig.start()
        for second in (0, 10, 20, 30):
            keepalive(rig.a, second)
        rig.runner.advance(60.0)  # the bridge's link is down: nothing at all (the watchdog's 5 s aside)
        keepalive(rig.a, 90)
        rig.runner.advance(1.0)

        assert self.reasons(rig) == [ResyncReason.INITIAL, ResyncReason.KEEPALIVE_GAP]

    def test_through_a_bridge_a_server_restart_is_one_resync(self, make_rig: Callable[..., Rig]) -> None:
        """NFM-P restarted; the bridge resubscribed and NFM-P greeted it: its SystemInfoEvent (new sysStartTime)
        and the first keep-alive after the gap come through the client's open connection: one request."""
        rig = make_rig(queue=QUEUE, upstream_client_id="oss1@1", keepalive_timeout=120.0)
        rig.start()
        rig.system_info(rig.a, start="1000")
        for second in (0, 10, 20, 30):
            keepalive(rig.a, second)
        rig.runner.advance(1.0)
        # The first resync came before any SystemInfoEvent (none is awaited through a bridge): the first
        # identity is taken as it is (a restart before it would have left a gap in the keep-alives).
        assert self.reasons(rig) == [ResyncReason.INITIAL]
        rig.runner.advance(60.0)
        rig.system_info(rig.a, start="2000")
        rig.runner.advance(0.5)
        keepalive(rig.a, 100)
        rig.runner.advance(1.0)

        assert self.reasons(rig) == [ResyncReason.INITIAL, ResyncReason.SERVER_RESTARTED]

    def test_a_resync_asked_before_the_silence_covers_no_gap_after_it(
        self, make_rig: Callable[..., Rig]
    ) -> None:
        """A JmsMissedEvents just before the bridge lost NFM-P: its retrieval came before the events the outage
        lost, so the gap asks for a resync of its own."""
        rig = make_rig(queue=QUEUE, upstream_client_id="oss1@1", keepalive_timeout=120.0)
        rig.start()
        for second in (0, 10, 20, 30):
            keepalive(rig.a, second)
        message = encode_event(JmsMissedEvents(header=EventHeader(client_id="oss1@1")))
        rig.a.publish(message.body, message.headers)
        rig.runner.advance(60.0)
        keepalive(rig.a, 100)
        rig.runner.advance(1.0)

        assert self.reasons(rig) == [
            ResyncReason.INITIAL,
            ResyncReason.MISSED_EVENTS,
            ResyncReason.KEEPALIVE_GAP,
        ]


def test_the_inbox_counts_the_messages_of_a_batch_one_by_one() -> None:
    """The messages of one read travel as one list, but the depth (statistics.queue_depth) counts each."""
    from nfmp_client._delivery import Decoded
    from nfmp_client._supervisor import _Inbox
    from nfmp_client.engine import Opened

    inbox = _Inbox()
    batch = [Decoded(1, f"m{i}", f"m{i}", KeepAliveEvent(), 0.0) for i in range(3)]
    inbox.put(Opened(epoch=1))
    inbox.put(batch)
    assert len(inbox) == 4
    assert isinstance(inbox.pop(), Opened)
    assert len(inbox) == 3
    assert [inbox.pop() for _ in range(3)] == batch
    assert len(inbox) == 0
    assert inbox.pop() is None
