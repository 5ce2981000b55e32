"""The resync decisions end to end: NfmpClient on the real broker, driven by the simulated NFM-P server.

Each test is a row of the decision table (issue 5): the situation is produced by the simulator (or the fault
proxy), and the test checks which ResyncRequest the application gets, if any, and what happens to the events.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from nfmp_client import (
    ConnectionState,
    DataEvent,
    FindRequest,
    Handler,
    HealthStatus,
    KeepAliveEvent,
    NfmpClient,
    ResyncMode,
    ResyncReason,
    ResyncRequest,
    RetryPolicy,
    SystemInfoEvent,
    XmlApiClient,
)
from nfmp_client.metrics import register
from nfmp_client.state import StateStore
from nfmp_client.testing import (
    PORT_CLASS,
    ActiveMQAdmin,
    FaultProxy,
    NetworkModel,
    SimulatedServer,
    SnapshotServer,
)
from nfmp_client.xmlapi import XMLAPI_PATH

from ..conftest import BrokerInfo
from .test_client import WAIT, Recorder, bare, config_for, running

pytestmark = pytest.mark.integration

# The simulator removes subscriptions through JMX (about 0.15 s a call): a client must not be back before.
PATIENT = RetryPolicy(initial_delay=0.5, max_delay=1.0, jitter=0.1, connect_timeout=3.0)


class Resyncing(Recorder):
    """Records resync requests; completes them at once, or defers them when told to."""

    def __init__(self, *, defer: bool = False) -> None:
        super().__init__()
        self.requests: queue.Queue[ResyncRequest] = queue.Queue()
        self.defer = defer
        self.epochs: list[int] = []

    def on_event(self, event: DataEvent) -> None:
        self.epochs.append(event.header.resync_epoch)
        super().on_event(event)

    def on_resync_required(self, request: ResyncRequest) -> None:
        if self.defer:
            request.defer()
        self.requests.put(request)

    def next_request(self, timeout: float = WAIT) -> ResyncRequest:
        return self.requests.get(timeout=timeout)

    def no_request(self, within: float = 1.0) -> None:
        try:
            request = self.requests.get(timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected {request!r} (evidence {dict(request.evidence)})")


def synced(client: NfmpClient) -> bool:
    """client.in_sync, read through a call (mypy would narrow the property across statements)."""
    return client.in_sync


def settings(state_dir: Path, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "state_dir": state_dir,
        "resync_coalesce_window": 0.05,
        "resync_min_interval": 0.1,
        "system_info_timeout": 3.0,
        "keepalive_timeout": 5.0,
    }
    values.update(overrides)
    return values


def started(server: SimulatedServer, broker: BrokerInfo, handler: Resyncing, **config: Any) -> NfmpClient:
    """A client past its first start: subscribed, and its INITIAL resync completed."""
    client = running(config_for(f"{broker.host}:{broker.port}", **config), handler)
    server.wait_for_subscriber(client.config.client_id)
    first = handler.next_request()
    assert first.reason is ResyncReason.INITIAL
    if handler.defer:
        first.complete()
    deadline = time.monotonic() + WAIT
    while not synced(client) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert synced(client)
    return client


def test_first_start_holds_events_until_the_resync_completes(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """INITIAL, once subscribed and the server's identity known; events arriving during it are held, then
    replayed in order with its epoch once complete; the baseline on disk says in sync."""
    handler = Resyncing(defer=True)
    client = running(config_for(f"{broker.host}:{broker.port}", **settings(tmp_path)), handler)
    try:
        server.wait_for_subscriber(client.config.client_id)
        request = handler.next_request()
        assert request.reason is ResyncReason.INITIAL
        assert request.epoch == 1
        during = server.generate(5)
        server.sync()
        time.sleep(0.3)
        assert handler.events.empty()  # held
        assert not synced(client)

        threading.Thread(target=request.complete).start()  # from another thread, as a worker would

        assert handler.take(5) == during
        assert handler.epochs == [1] * 5
        after = server.generate(2)
        assert handler.take(2) == after
        assert synced(client)
    finally:
        client.stop()
    saved = StateStore(tmp_path).load(client.config.client_id)
    assert saved is not None
    assert (saved.resync_epoch, saved.in_sync) == (1, True)
    assert saved.sys_start_time == server.identity.sys_start_time


def test_durable_reconnect_same_server_needs_no_resync(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """A dropped link, the same server behind it: no resync, and the events of the gap arrive."""
    handler = Resyncing()
    with FaultProxy(broker.host, broker.port) as proxy:
        client = started_via(proxy, server, handler, tmp_path)
        try:
            proxy.reset()
            during = server.generate(3)
            proxy.passthrough()
            assert client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)

            assert handler.take(3) == during
            handler.no_request(within=1.5)
            assert synced(client)
        finally:
            client.stop()


def run_again(broker: BrokerInfo, client_id: str, config: dict[str, Any]) -> tuple[NfmpClient, Resyncing]:
    """The application started again: a new client with the same client id and state directory."""
    handler = Resyncing()
    return running(
        config_for(f"{broker.host}:{broker.port}", client_id=client_id, **config), handler
    ), handler


def started_via(
    proxy: FaultProxy, server: SimulatedServer, handler: Resyncing, state_dir: Path
) -> NfmpClient:
    client = running(config_for(f"127.0.0.1:{proxy.port}", **settings(state_dir)), handler)
    server.wait_for_subscriber(client.config.client_id)
    assert handler.next_request().reason is ResyncReason.INITIAL
    return client


def test_process_restart_with_a_durable_subscription(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """The OSS process restarts (a new client, the same state dir): no resync, the backlog drains; with
    another filter, SUBSCRIPTION_CHANGED (the broker dropped the backlog)."""
    handler = Resyncing()
    config = settings(tmp_path)
    first = started(server, broker, handler, **config)
    client_id = first.config.client_id
    first.stop()
    backlog = server.generate(3)
    server.sync()

    second, second_handler = run_again(broker, client_id, config)
    try:
        assert second_handler.take(3) == backlog
        second_handler.no_request(within=1.5)
    finally:
        second.stop()

    third_handler = Resyncing()
    third = running(
        config_for(
            f"{broker.host}:{broker.port}",
            client_id=client_id,
            filter="MTOSI_objectType = 'fm.AlarmObject'",
            **config,
        ),
        third_handler,
    )
    try:
        request = third_handler.next_request()
        assert request.reason is ResyncReason.SUBSCRIPTION_CHANGED
        assert "new_selector" in request.evidence
    finally:
        third.decommission()


def test_server_restart(server: SimulatedServer, broker: BrokerInfo, tmp_path: Path) -> None:
    """sysStartTime and jmsStartTime change: SERVER_RESTARTED with the old and new values."""
    handler = Resyncing()
    client = started(server, broker, handler, **settings(tmp_path))
    try:
        before = server.identity
        after = server.restart()
        request = handler.next_request()

        assert request.reason is ResyncReason.SERVER_RESTARTED
        assert request.epoch == 2
        assert request.evidence["old_sys_start_time"] == before.sys_start_time
        assert request.evidence["new_sys_start_time"] == after.sys_start_time
    finally:
        client.stop()


def test_switchover(server: SimulatedServer, broker: BrokerInfo, tmp_path: Path) -> None:
    """The primary IP changes: SWITCHOVER."""
    handler = Resyncing()
    client = started(server, broker, handler, retry=PATIENT, **settings(tmp_path))
    try:
        server.switchover("192.0.2.99")
        request = handler.next_request()

        assert request.reason is ResyncReason.SWITCHOVER
        assert request.evidence["new_primary_ip"] == "192.0.2.99"
    finally:
        client.stop()


def test_missed_events_while_connected(server: SimulatedServer, broker: BrokerInfo, tmp_path: Path) -> None:
    """JmsMissedEvents with no disconnect (an overflow): MISSED_EVENTS."""
    handler = Resyncing()
    client = started(server, broker, handler, **settings(tmp_path))
    try:
        server.overflow(client.config.client_id, 3)
        request = handler.next_request()

        assert request.reason is ResyncReason.MISSED_EVENTS
        assert client.state is ConnectionState.CONNECTED
    finally:
        client.stop()


def test_durable_subscription_removed_while_away(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """An administrator removes the session (TerminateClientSession, subscription deleted); the client
    reconnects by its policy and gets JmsMissedEvents: MISSED_EVENTS."""
    from nfmp_client import TerminatePolicy

    handler = Resyncing()
    client = started(
        server,
        broker,
        handler,
        on_terminate=TerminatePolicy.RECONNECT_AFTER_DELAY,
        terminate_reconnect_delay=1.5,
        **settings(tmp_path),
    )
    try:
        server.terminate(client.config.client_id, remove=True)
        request = handler.next_request()

        assert request.reason is ResyncReason.MISSED_EVENTS
    finally:
        client.stop()


def test_non_durable_disconnect(server: SimulatedServer, broker: BrokerInfo, tmp_path: Path) -> None:
    """A non-durable subscription loses what was sent while away: SUBSCRIPTION_NOT_DURABLE."""
    handler = Resyncing()
    with FaultProxy(broker.host, broker.port) as proxy:
        client = running(config_for(f"127.0.0.1:{proxy.port}", durable=False, **settings(tmp_path)), handler)
        try:
            server.wait_for_subscriber(client.config.client_id)
            assert handler.next_request().reason is ResyncReason.INITIAL
            proxy.reset()
            proxy.passthrough()

            request = handler.next_request()
            assert request.reason is ResyncReason.SUBSCRIPTION_NOT_DURABLE
        finally:
            client.stop()


def test_no_system_info_in_time(broker: BrokerInfo, tmp_path: Path) -> None:
    """No SystemInfoEvent after connecting (here: no NFM-P at all behind the broker): SERVER_STATE_UNKNOWN,
    once the window ran out (the INITIAL of the first start coalesces into it)."""
    handler = Resyncing()
    config = config_for(f"{broker.host}:{broker.port}", **settings(tmp_path, system_info_timeout=0.5))
    client = running(config, handler)
    try:
        request = handler.next_request()
        assert request.reasons == {ResyncReason.INITIAL, ResyncReason.SERVER_STATE_UNKNOWN}
        assert request.reason is ResyncReason.INITIAL
    finally:
        client.stop()


def test_a_new_trigger_replaces_a_resync_in_progress(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """A restart during a (deferred) resync aborts it: the request says so, a new one comes, and completing the
    old one changes nothing."""
    handler = Resyncing(defer=True)
    client = running(config_for(f"{broker.host}:{broker.port}", **settings(tmp_path)), handler)
    try:
        server.wait_for_subscriber(client.config.client_id)
        first = handler.next_request()
        server.restart()
        second = handler.next_request()

        assert first.aborted
        assert second.epoch == first.epoch + 1
        first.complete()
        time.sleep(0.3)
        assert not synced(client)
        second.complete()
        deadline = time.monotonic() + WAIT
        while not synced(client) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert synced(client)
    finally:
        client.stop()


def test_apply_live_delivers_during_the_resync(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """APPLY_LIVE: events keep coming during the resync, tagged with its epoch."""
    handler = Resyncing(defer=True)
    config = config_for(
        f"{broker.host}:{broker.port}", **settings(tmp_path, resync_mode=ResyncMode.APPLY_LIVE)
    )
    client = running(config, handler)
    try:
        server.wait_for_subscriber(client.config.client_id)
        request = handler.next_request()
        during = server.generate(3)

        assert handler.take(3) == during
        assert handler.epochs == [request.epoch] * 3
        assert not synced(client)
        request.complete()
    finally:
        client.stop()


def test_a_failing_resync_is_requested_again(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """on_resync_required raising: the request failed, another one follows (after the minimum interval)."""

    class FailsOnce(Resyncing):
        def on_resync_required(self, request: ResyncRequest) -> None:
            super().on_resync_required(request)
            if request.epoch == 1:
                raise RuntimeError("XML API unreachable (on purpose)")

    handler = FailsOnce()
    client = running(config_for(f"{broker.host}:{broker.port}", **settings(tmp_path)), handler)
    try:
        server.wait_for_subscriber(client.config.client_id)
        first, second = handler.next_request(), handler.next_request()

        assert (first.epoch, second.epoch) == (1, 2)
        assert second.reason is ResyncReason.INITIAL
        assert "XML API unreachable" in second.evidence["retry"]
        sent = server.generate(2)
        assert [bare(e) for e in handler.take(2)] == sent
    finally:
        client.stop()


class Mirror(Handler):
    """An OSS in miniature: a copy of the alarms and ports, rebuilt from the XML API on every resync and
    kept up to date from the events."""

    def __init__(self, api: XmlApiClient) -> None:
        self.api = api
        self.copy = NetworkModel()
        self.reasons: list[ResyncReason] = []

    def on_resync_required(self, request: ResyncRequest) -> None:
        objects = self.api.find_faults() + self.api.find(FindRequest(full_class_name=PORT_CLASS))
        self.copy = NetworkModel(objects)
        self.reasons.append(request.reason)

    def on_event(self, event: DataEvent) -> None:
        self.copy.apply(event)


def converged(
    client: NfmpClient, mirror: Mirror, truth: NetworkModel, resyncs: int, timeout: float = WAIT
) -> None:
    """Wait until the mirror has done *resyncs* resyncs, the client is in sync and the mirror equals the truth.

    Counting the resyncs matters: right after a reconnect, before the server's SystemInfoEvent is judged, the
    client still says it is in sync, and live events may already have made the mirror equal the truth.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        same = mirror.copy.alarms() == truth.alarms() and mirror.copy.objects(PORT_CLASS) == truth.objects(
            PORT_CLASS
        )
        if same and synced(client) and len(mirror.reasons) >= resyncs:
            return
        time.sleep(0.05)
    raise AssertionError(
        f"the mirror did not converge: {len(mirror.copy.alarms())} alarms vs {len(truth.alarms())} "
        f"(in sync: {synced(client)}, resyncs: {mirror.reasons})"
    )


def test_a_mirror_rebuilt_from_snapshots_and_events_equals_the_truth(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """After the first start, a server restart, an overflow (events lost while connected) and a
    switchover, each with events flowing during the resync, the mirror equals the simulator's model."""
    with SnapshotServer(server.model) as snapshot:
        api = XmlApiClient(snapshot.url.removesuffix(XMLAPI_PATH), credentials=None, timeout=10.0)
        mirror = Mirror(api)
        config = config_for(f"{broker.host}:{broker.port}", retry=PATIENT, **settings(tmp_path))
        client = running(config, mirror)
        try:
            server.wait_for_subscriber(config.client_id)
            server.generate(10)
            converged(client, mirror, server.model, resyncs=1)

            server.restart()
            server.generate(5)
            converged(client, mirror, server.model, resyncs=2)

            server.overflow(config.client_id, 5)  # these five never reach the client
            server.generate(3)
            converged(client, mirror, server.model, resyncs=3)

            server.switchover()
            server.generate(4)
            converged(client, mirror, server.model, resyncs=4)

            assert mirror.reasons == [
                ResyncReason.INITIAL,
                ResyncReason.SERVER_RESTARTED,
                ResyncReason.MISSED_EVENTS,
                ResyncReason.SWITCHOVER,
            ]
        finally:
            client.stop()


def test_holding_too_many_events_starts_the_resync_over(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """More events during a resync than hold_limit: the request is aborted and HOLD_OVERFLOW follows."""
    handler = Resyncing(defer=True)
    client = running(config_for(f"{broker.host}:{broker.port}", **settings(tmp_path, hold_limit=3)), handler)
    try:
        server.wait_for_subscriber(client.config.client_id)
        first = handler.next_request()
        server.generate(5)
        second = handler.next_request()

        assert first.aborted
        assert second.reason is ResyncReason.HOLD_OVERFLOW
        assert second.evidence["hold_limit"] == "3"
        second.complete()
    finally:
        client.stop()


def test_terminated_session_kept_durable_needs_no_resync(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """TerminateClientSession ("Close": the durable subscription stays), then a reconnect by policy: as any
    durable reconnect, no resync, and the events of the gap arrive."""
    from nfmp_client import TerminatePolicy

    handler = Resyncing()
    client = started(
        server,
        broker,
        handler,
        on_terminate=TerminatePolicy.RECONNECT_AFTER_DELAY,
        terminate_reconnect_delay=1.0,
        **settings(tmp_path),
    )
    try:
        server.terminate(client.config.client_id)
        handler.terminated.get(timeout=WAIT)
        during = server.generate(2)

        assert handler.take(2) == during
        handler.no_request(within=1.5)
    finally:
        client.stop()


def test_health_and_statistics_follow_the_story(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """health(): SYNCING during the first resync, LIVE after it, DOWN once stopped; the statistics count
    events by type, resyncs and losses by reason."""
    handler = Resyncing(defer=True)
    client = running(config_for(f"{broker.host}:{broker.port}", **settings(tmp_path)), handler)
    try:
        server.wait_for_subscriber(client.config.client_id)
        request = handler.next_request()
        syncing = client.health()
        assert syncing.status is HealthStatus.SYNCING
        assert "initial" in syncing.reason
        request.complete()
        sent = server.generate(4)
        handler.take(4)

        assert client.health().status is HealthStatus.LIVE
        registry = CollectorRegistry()
        register(client, registry)
        exposed = generate_latest(registry).decode()
        cid = client.config.client_id
        assert f'nfmp_resyncs_total{{client_id="{cid}",reason="initial"}} 1.0' in exposed
        assert f'nfmp_health{{client_id="{cid}",status="live"}} 1.0' in exposed
        assert f'nfmp_up{{client_id="{cid}"}} 1.0' in exposed
        stats = client.statistics
        assert sum(stats.events_by_type.values()) == 4
        assert set(stats.events_by_type) <= {type(e).__name__ for e in sent}
        assert stats.resyncs_by_reason == {"initial": 1}
        assert stats.seconds_since_last_message is not None
        assert stats.handler_max_seconds >= 0
    finally:
        client.stop()
    down = client.health()
    assert down.status is HealthStatus.DOWN
    assert down.state is ConnectionState.STOPPED


def test_a_synchronous_retrieval_does_not_block_the_client(
    server: SimulatedServer, broker: BrokerInfo, admin: ActiveMQAdmin, tmp_path: Path
) -> None:
    """on_resync_required that simply takes its time (the first way the docs offer): meanwhile system events
    are observed, arriving events are held and acknowledged (nothing piles up on the broker), and a newer
    trigger aborts the request; returning completes the request that replaced it. It used to block the
    client for the whole retrieval."""
    release = threading.Event()
    seen_aborted: list[bool] = []

    class Slow(Resyncing):
        def on_resync_required(self, request: ResyncRequest) -> None:
            self.requests.put(request)
            if request.epoch == 1:
                release.wait(WAIT)  # a long retrieval
                seen_aborted.append(request.aborted)

    handler = Slow()
    client = running(config_for(f"{broker.host}:{broker.port}", **settings(tmp_path)), handler)
    try:
        server.wait_for_subscriber(client.config.client_id)
        first = handler.next_request()
        while not handler.system.empty():
            handler.system.get_nowait()
        server.generate(20)

        assert isinstance(handler.system.get(timeout=WAIT), (KeepAliveEvent, SystemInfoEvent))  # observed
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            pending = [
                s.pending for s in admin.durable_subscriptions() if s.client_id == client.config.client_id
            ]
            if pending == [0] and client.statistics.messages >= 20:
                break
            time.sleep(0.1)
        assert pending == [0]  # held and acknowledged meanwhile
        server.missed_events(client.config.client_id)
        second = handler.next_request()
        assert second.reason is ResyncReason.MISSED_EVENTS
        assert first.aborted
        release.set()
        deadline = time.monotonic() + WAIT
        while not (synced(client) and seen_aborted) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen_aborted == [True]  # what the slow retrieval saw when it ended
        assert synced(client)
    finally:
        release.set()
        client.stop()


# ------------------------------------------------------------------------------ the continuity check

KEEPALIVES_LEARNED = 0.9  # seconds of the simulator's 0.2 s keep-alives: enough intervals to learn the period


def ran_in_sync(server: SimulatedServer, broker: BrokerInfo, state_dir: Path) -> tuple[str, dict[str, Any]]:
    """An application that ran in sync long enough to learn the keep-alive period, then stopped: its client
    id and settings."""
    config = settings(state_dir)
    first = started(server, broker, Resyncing(), **config)
    time.sleep(KEEPALIVES_LEARNED)
    first.stop()
    return first.config.client_id, config


def test_a_subscription_lost_while_away_without_jms_missed_events_is_one_keepalive_gap_resync(
    server: SimulatedServer, broker: BrokerInfo, admin: ActiveMQAdmin, tmp_path: Path
) -> None:
    """The issue's reproduction: the durable subscription is removed on the broker while the application is
    down (an administrator, a broker that lost its store) and nothing says so. Before the continuity check the
    5 alarms published meanwhile were lost without a resync; now the first keep-alive after the restart is
    seconds later than the last one before it, and the application resyncs, once."""
    client_id, config = ran_in_sync(server, broker, tmp_path)
    admin.remove_durable_subscription(client_id, client_id)
    lost = server.generate(5)
    server.sync()
    time.sleep(1.0)  # five keep-alive periods with nothing kept for the client

    second, second_handler = run_again(broker, client_id, config)
    try:
        request = second_handler.next_request()
        assert request.reason is ResyncReason.KEEPALIVE_GAP
        assert float(request.evidence["gap"].split()[0]) > 1.0
        assert float(request.evidence["keepalive_period"].split()[0]) == pytest.approx(0.2, abs=0.05)
        second_handler.no_request(within=1.5)
        received = []
        while not second_handler.events.empty():
            received.append(second_handler.events.get_nowait())
        assert not [event for event in received if bare(event) in lost]  # lost: the retrieval brings them
    finally:
        second.decommission()


def test_a_long_absence_with_the_subscription_kept_needs_no_resync(
    server: SimulatedServer, broker: BrokerInfo, tmp_path: Path
) -> None:
    """Down for a dozen keep-alive periods, the subscription kept everything (keep-alives included): the first
    keep-alive after the restart is one from the gap, so no resync, and the backlog drains."""
    client_id, config = ran_in_sync(server, broker, tmp_path)
    backlog = server.generate(5)
    time.sleep(2.5)

    second, second_handler = run_again(broker, client_id, config)
    try:
        assert second_handler.take(5) == backlog
        second_handler.no_request(within=1.5)
    finally:
        second.decommission()


def test_a_silent_restart_is_one_resync(server: SimulatedServer, broker: BrokerInfo, tmp_path: Path) -> None:
    """The server stops sending (no keep-alives: it is going down), then restarts: the gap in the keep-alives
    and the new sysStartTime come together, and make one request, not two."""
    handler = Resyncing()
    client = started(server, broker, handler, retry=PATIENT, **settings(tmp_path, keepalive_timeout=30.0))
    try:
        time.sleep(KEEPALIVES_LEARNED)
        server.silence()
        time.sleep(1.5)
        server.restart()
        server.resume()
        request = handler.next_request()

        assert request.reason is ResyncReason.SERVER_RESTARTED
        handler.no_request(within=2.0)
    finally:
        client.stop()
