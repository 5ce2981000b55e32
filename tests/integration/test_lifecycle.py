"""The client's own lifecycle on the real broker: stop, terminate, failover, threads.

Each test reproduces a way the lifecycle went wrong when several threads owned parts of it: a stop during a
slow CONNECT that adopted the connection afterwards, a stop from a callback that could not join itself,
run_forever() that never returned after a TerminateClientSession, a failover that always started again from
the first server, threads that outlived the client, a notice for another client obeyed, a stale durable
backlog delivered after a failover. The same behaviour is stepped on a fake clock in tests/test_supervisor.py.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import attrs
import pytest
import stomp

from nfmp_client import (
    ClientStopped,
    ConnectionState,
    DataEvent,
    Handler,
    LossReason,
    NfmpClient,
    ObjectCreation,
    ResyncReason,
    ResyncRequest,
    SessionTerminated,
    SubscriptionRemovalFailed,
    TerminateClientSession,
)
from nfmp_client.codec import encode_event
from nfmp_client.testing import ActiveMQAdmin, FaultProxy, SimulatedServer

from ..conftest import BrokerInfo, free_ports
from .test_client import FAST_RETRY, WAIT, Recorder, config_for, running

pytestmark = pytest.mark.integration


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def in_thread(work: Any) -> tuple[threading.Thread, list[BaseException | None]]:
    """Run *work* in a daemon thread; the list gets what it raised (None: it returned)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # noqa: BLE001  # the outcome is what the test checks
            outcome.append(exc)
        else:
            outcome.append(None)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def alarm_names(events: list[DataEvent]) -> list[str]:
    return [str(e.attributes["alarmName"]) if isinstance(e, ObjectCreation) else repr(e) for e in events]


def nfmp_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("nfmp-supervisor", "nfmp-primary-check")]


def publish_alarm(host: str, port: int, topic: str, name: str) -> None:
    """Publish one alarm with a plain stomp.py connection (as a second NFM-P feed would)."""
    message = encode_event(ObjectCreation(object_class="fm.AlarmInfo", attributes={"alarmName": name}))
    conn = stomp.Connection12([(host, port)], auto_decode=False)
    conn.connect(wait=True, headers={"client-id": f"feed-{uuid.uuid4().hex[:6]}"})
    try:
        conn.send(f"/topic/{topic}", message.body, headers={**message.headers, "persistent": "true"})
    finally:
        conn.disconnect()


class TestStop:
    def test_stop_during_a_slow_connect_leaks_nothing(
        self, broker: BrokerInfo, admin: ActiveMQAdmin, recorder: Recorder
    ) -> None:
        """A CONNECTED 3 s late: stop(timeout=1) stops for good; no callback later, no connection left."""
        with FaultProxy(broker.host, broker.port) as slow:
            slow.delay(1.5)  # each way: CONNECTED comes 3 s after CONNECT
            config = config_for(
                f"127.0.0.1:{slow.port}",
                retry=attrs.evolve(FAST_RETRY, connect_timeout=10.0),
                heartbeats=(0, 0),  # else ActiveMQ drops a client silent for 3 s before CONNECTED reaches it
            )
            client = NfmpClient(config, recorder)
            client.start()
            time.sleep(0.5)

            client.stop(timeout=1.0)
            assert client.state is ConnectionState.STOPPED
            time.sleep(4.0)  # past the late CONNECTED

            assert client.state is ConnectionState.STOPPED
            assert recorder.restored.empty()
            assert config.client_id not in {c.client_id for c in admin.connections()}
            again = running(config_for(f"{broker.host}:{broker.port}", client_id=config.client_id), Handler())
            again.stop()  # the client id was free: no client-id-in-use

    def test_stop_from_a_callback_ends_run_forever(
        self, server: SimulatedServer, broker: BrokerInfo, admin: ActiveMQAdmin, recorder: Recorder
    ) -> None:
        """stop() in on_event: run_forever() returns, the state is STOPPED, no handler error, no connection."""

        class Stopping(Recorder):
            def on_event(self, event: DataEvent) -> None:
                super().on_event(event)
                client.stop()

        client = NfmpClient(config_for(f"{broker.host}:{broker.port}"), Stopping())
        errors_before = 0
        thread, outcome = in_thread(client.run_forever)
        try:
            assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
            server.wait_for_subscriber(client.config.client_id)
            server.generate(3)

            thread.join(WAIT)
            assert outcome == [None]
            assert client.state is ConnectionState.STOPPED
            assert client.statistics.handler_errors == errors_before
            assert client.config.client_id not in {c.client_id for c in admin.connections()}
        finally:
            client.stop()


class TestTerminate:
    def test_run_forever_ends_with_session_terminated(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """TerminateClientSession with the default policy: run_forever() raises SessionTerminated."""
        client = NfmpClient(config_for(f"{broker.host}:{broker.port}"), recorder)
        thread, outcome = in_thread(client.run_forever)
        try:
            assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
            server.wait_for_subscriber(client.config.client_id)
            server.terminate(client.config.client_id)

            thread.join(WAIT)
            assert len(outcome) == 1
            assert isinstance(outcome[0], SessionTerminated)
            assert client.state is ConnectionState.TERMINATED
        finally:
            client.stop()

    def test_system_exit_in_a_handler_stops_the_client_visibly(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """sys.exit() in on_event: the client stops (STOPPED, not 'syncing'), run_forever() raises SystemExit."""

        class Leaving(Recorder):
            def on_event(self, event: DataEvent) -> None:
                raise SystemExit(3)

        client = NfmpClient(config_for(f"{broker.host}:{broker.port}"), Leaving())
        thread, outcome = in_thread(client.run_forever)
        try:
            assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
            server.wait_for_subscriber(client.config.client_id)
            server.generate(1)

            thread.join(WAIT)
            assert len(outcome) == 1
            assert isinstance(outcome[0], SystemExit)
            assert client.state is ConnectionState.STOPPED
            assert client.health().status.value == "down"
        finally:
            client.stop()

    def test_a_notice_for_another_client_is_not_obeyed(
        self, server: SimulatedServer, broker: BrokerInfo, recorder: Recorder
    ) -> None:
        """A TerminateClientSession whose clientId names another client is ignored (and counted)."""
        client = running(config_for(f"{broker.host}:{broker.port}"), recorder)
        try:
            server.wait_for_subscriber(client.config.client_id)
            server.publish(TerminateClientSession(client_id="someone-else@9"), client_id="")
            sent = server.generate(1)

            assert recorder.take(1) == sent
            assert recorder.terminated.empty()
            assert client.state is ConnectionState.CONNECTED
            assert client.statistics.ignored_notices == 1
        finally:
            client.stop()


class TestFailover:
    def test_a_silent_first_server_does_not_trap_the_client(
        self, server: SimulatedServer, broker: BrokerInfo, broker_factory: Any, recorder: Recorder
    ) -> None:
        """A first broker that accepts and heart-beats but delivers nothing: after the watchdog, the second."""
        silent = broker_factory()
        config = config_for(
            f"{silent.host}:{silent.port}", f"{broker.host}:{broker.port}", keepalive_timeout=1.0
        )
        client = running(config, recorder)
        try:
            assert recorder.restored.get(timeout=WAIT).server == f"{silent.host}:{silent.port}"
            moved = recorder.restored.get(timeout=WAIT)
            assert moved.server == f"{broker.host}:{broker.port}"
            assert recorder.losses.get(timeout=WAIT).reason is LossReason.WATCHDOG_EXPIRED
            server.wait_for_subscriber(config.client_id)
            sent = server.generate(2)

            assert recorder.take(2) == sent
        finally:
            client.stop()

    def test_a_stale_backlog_on_the_other_server_is_discarded(
        self, broker: BrokerInfo, broker_factory: Any, recorder: Recorder
    ) -> None:
        """Back on the primary after a failover: what its durable subscription kept meanwhile is not delivered
        (the client had those events from the standby) and a resync is asked instead."""
        standby = broker_factory()
        requests: list[ResyncRequest] = []

        class Resyncing(Recorder):
            def on_resync_required(self, request: ResyncRequest) -> None:
                requests.append(request)

        recorder = Resyncing()
        topic = f"t-{uuid.uuid4().hex[:6]}"
        with FaultProxy(broker.host, broker.port) as primary:
            config = config_for(
                f"127.0.0.1:{primary.port}",
                f"{standby.host}:{standby.port}",
                topic=topic,
                keepalive_timeout=30.0,
                return_to_primary=True,
                primary_check_interval=0.3,
                system_info_timeout=0.3,
                resync_min_interval=0.0,
            )
            client = running(config, recorder)
            try:
                primary.reset()  # the primary goes: the client fails over to the standby
                assert client.wait_for_state(ConnectionState.RECONNECTING, timeout=WAIT)
                assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
                publish_alarm(broker.host, broker.port, topic, "stale-on-the-primary")
                publish_alarm(standby.host, standby.port, topic, "on-the-standby")
                assert alarm_names(recorder.take(1)) == ["on-the-standby"]

                primary.passthrough()  # the primary is back: the client returns
                deadline = time.monotonic() + WAIT
                while (
                    time.monotonic() < deadline
                    and client.statistics.losses_by_reason.get("returning-to-primary", 0) == 0
                ):
                    time.sleep(0.05)
                assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
                publish_alarm(broker.host, broker.port, topic, "fresh-on-the-primary")

                assert alarm_names(recorder.take(1)) == ["fresh-on-the-primary"]
                deadline = time.monotonic() + WAIT
                while time.monotonic() < deadline and not any(
                    r.reason is ResyncReason.SUBSCRIPTION_CHANGED
                    and r.evidence.get("new_server") == str(config.servers[0])
                    for r in requests
                ):
                    time.sleep(0.05)
                assert any(ResyncReason.SUBSCRIPTION_CHANGED in r.reasons for r in requests)
            finally:
                client.stop()


class TestThreadsAndErrors:
    def test_no_thread_outlives_the_client(self, broker: BrokerInfo) -> None:
        """Three start/stop cycles, one giving up: no thread of the client's is left, none accumulates."""
        before = threading.active_count()
        with FaultProxy(broker.host, broker.port) as primary:
            config = config_for(
                f"127.0.0.1:{primary.port}",
                f"{broker.host}:{broker.port}",
                return_to_primary=True,
                primary_check_interval=0.1,
            )
            client = NfmpClient(config, Handler())
            for _ in range(3):
                primary.reset()
                client.start()
                assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
                time.sleep(0.3)  # a few checks of the primary
                client.stop()
                assert nfmp_threads() == []
        dead = config_for(*(f"127.0.0.1:{port}" for port in free_ports(2)))
        gives_up = NfmpClient(attrs.evolve(dead, retry=attrs.evolve(dead.retry, max_attempts=1)), Handler())
        with pytest.raises(ClientStopped):
            gives_up.run_forever()
        deadline = time.monotonic() + 5.0
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)

        assert nfmp_threads() == []
        assert threading.active_count() <= before

    def test_decommission_raises_only_public_errors(self, recorder: Recorder) -> None:
        """decommission() with no server reachable raises SubscriptionRemovalFailed, naming each server."""
        ports = free_ports(2)
        client = NfmpClient(config_for(*(f"127.0.0.1:{port}" for port in ports)), recorder)

        with pytest.raises(SubscriptionRemovalFailed) as failed:
            client.decommission()

        assert [f.server for f in failed.value.failures] == [f"127.0.0.1:{port}" for port in ports]
        assert all(f.reason is LossReason.SOCKET_ERROR for f in failed.value.failures)
