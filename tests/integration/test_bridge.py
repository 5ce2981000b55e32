"""NfmpClient through a JMS bridge, end to end on ActiveMQ: the topologies of docs/deployment.rst.

A second ActiveMQ stands in for NFM-P's JMS server ("upstream", OpenWire and ActiveMQ's own JNDI), the
simulated NFM-P server publishes into it, and the bridge broker (``nfmp-broker --bridge``) pulls NFM-P's topic
over a durable subscription under NFM-P's client id into its virtual topic, from which each application
consumes its own queue. Every figure a test measures is printed (``-s`` shows them) for the closing notes.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nfmp_client import (
    ConnectionLost,
    ConnectionState,
    DataEvent,
    HealthStatus,
    LossReason,
    ResyncMode,
    ResyncReason,
    RetryPolicy,
)
from nfmp_client.testing import FaultProxy, SimulatedServer

from ..conftest import (
    NFMP_TOPIC,
    BridgeFactory,
    BridgeTopology,
    BrokerFactory,
    BrokerInfo,
    run_broker_script,
    write_bridge_file,
)
from .test_client import WAIT, bare, config_for, running
from .test_resync import Resyncing

pytestmark = pytest.mark.integration

RETRY = RetryPolicy(initial_delay=0.2, max_delay=1.0, jitter=0.0, connect_timeout=3.0)


def app_config(
    broker: BrokerInfo, topology: BridgeTopology, app: str, state_dir: Path, **overrides: Any
) -> dict[str, Any]:
    """The settings of application *app* reading its own queue of the bridge's virtual topic on *broker*."""
    settings: dict[str, Any] = {
        "client_id": f"{app}-{uuid.uuid4().hex[:6]}@bridge",
        "queue": f"Consumer.{app}.{topology.local_topic}",
        "upstream_client_id": topology.client_id,
        "state_dir": state_dir / app,
        "keepalive_timeout": 2.0,
        "resync_coalesce_window": 0.3,
        "resync_min_interval": 0.1,
        "retry": RETRY,
    }
    settings.update(overrides)
    return settings


def start_app(
    broker: BrokerInfo, topology: BridgeTopology, app: str, state_dir: Path, **overrides: Any
) -> Any:
    """Start application *app* on *broker*; return (client, handler) once its first resync completed."""
    handler = Resyncing()
    client = running(
        config_for(
            f"{broker.host}:{broker.port}", **app_config(broker, topology, app, state_dir, **overrides)
        ),
        handler,
    )
    assert handler.next_request().reason is ResyncReason.INITIAL
    return client, handler


@pytest.fixture
def topology(bridge_factory: BridgeFactory) -> BridgeTopology:
    return bridge_factory(reconnect_delay=0.5, openwire=True)


@pytest.fixture
def nfmp(topology: BridgeTopology) -> Iterator[SimulatedServer]:
    """The simulated NFM-P server, publishing into the upstream broker (keep-alives every 0.2 s)."""
    upstream = topology.upstream
    with SimulatedServer(
        upstream.host,
        upstream.port,
        admin=topology.upstream_admin,
        seed=14,
        keepalive_interval=0.2,
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
    ) as sim:
        yield sim


def drain(handler: Resyncing, count: int, timeout: float = WAIT) -> list[DataEvent]:
    return [bare(event) for event in handler.take(count, timeout=timeout)]


def nothing_more(handler: Resyncing, within: float = 0.5) -> list[DataEvent]:
    extra: list[DataEvent] = []
    try:
        while True:
            extra.append(handler.events.get(timeout=within))
    except queue.Empty:
        return extra


def losses(handler: Resyncing) -> list[ConnectionLost]:
    found: list[ConnectionLost] = []
    while not handler.losses.empty():
        found.append(handler.losses.get_nowait())
    return found


class TestBridged:
    def test_each_application_gets_every_event_with_its_properties(
        self, topology: BridgeTopology, nfmp: SimulatedServer, tmp_path: Path
    ) -> None:
        """Two applications, one queue each: every event NFM-P published arrives at both, in order, equal to
        what was published (the JMS properties as headers: object type, class, client id, server time; the
        body), and nothing asks for a resync."""
        alarms, alarms_handler = start_app(topology.bridge, topology, "alarms", tmp_path)
        tickets, tickets_handler = start_app(topology.bridge, topology, "tickets", tmp_path)
        try:
            started = time.monotonic()
            published = nfmp.generate(50)
            assert drain(alarms_handler, 50) == published
            assert drain(tickets_handler, 50) == published
            took = time.monotonic() - started
            assert nothing_more(alarms_handler) == nothing_more(tickets_handler) == []
            alarms_handler.no_request(within=0.5)
            tickets_handler.no_request(within=0.1)
            print(f"\nbridge: 50 events to 2 applications in {took:.2f} s, 0 lost, 0 duplicates")
        finally:
            alarms.decommission()
            tickets.decommission()

    def test_a_restart_of_nfmps_jms_server_loses_nothing_and_resyncs_once(
        self, topology: BridgeTopology, nfmp: SimulatedServer, tmp_path: Path
    ) -> None:
        """The upstream server restarts: the bridge reconnects by itself and its durable subscription kept
        what was published before it was back; the application gets every event, once, and one resync (the
        new jmsStartTime and the keep-alives missing during the restart, coalesced). Events are applied live
        here, to see each one arrive: held for the resync (the default), those that came before its last
        trigger are dropped, as the retrieval covers them."""
        client, handler = start_app(
            topology.bridge,
            topology,
            "alarms",
            tmp_path,
            keepalive_timeout=30.0,
            resync_mode=ResyncMode.APPLY_LIVE,
        )
        try:
            time.sleep(1.0)
            before = nfmp.generate(5)
            assert drain(handler, 5) == before
            started = time.monotonic()
            topology.upstream.restart()
            nfmp.broker_restarted()
            after = nfmp.generate(10)  # published as soon as the server is back, before the bridge is
            assert drain(handler, 10) == after
            resumed = time.monotonic() - started
            request = handler.next_request()
            assert request.reasons <= {
                ResyncReason.SERVER_RESTARTED,
                ResyncReason.KEEPALIVE_GAP,
                ResyncReason.SERVER_STATE_UNKNOWN,
            }
            handler.no_request(within=2.0)
            assert nothing_more(handler) == []
            assert client.state is ConnectionState.CONNECTED  # the client's own link never broke
            print(
                f"\nupstream restart: events flowing again {resumed:.1f} s after the restart began; "
                f"0 lost, 0 duplicates; 1 resync ({', '.join(sorted(r.value for r in request.reasons))})"
            )
        finally:
            client.decommission()

    def test_a_bridge_cut_off_from_nfmp_is_noticed_by_the_keepalive_watchdog(
        self, broker_factory: BrokerFactory, tmp_path: Path
    ) -> None:
        """The bridge's link to NFM-P dies silently (a fault proxy between them drops everything) while the
        bridge broker lives and its heart-beats keep coming: only the silence of NFM-P's keep-alives shows it,
        after keepalive_timeout. When the link is back, what NFM-P kept for the bridge arrives."""
        upstream = broker_factory(openwire=True)
        assert upstream.openwire_port is not None
        with FaultProxy(upstream.host, upstream.openwire_port) as link:
            behind_link = dataclasses.replace(upstream, openwire_port=link.port)
            path = write_bridge_file(tmp_path / "conf", behind_link, reconnect_delay=0.5)
            # The bridge notices a dead link to NFM-P only by OpenWire's inactivity monitor (30 s by
            # default): shortened here, as NFM-P's JNDI client settings would be in production.
            text = path.read_text()
            path.write_text(
                text.replace(
                    behind_link.openwire_url,
                    f"{behind_link.openwire_url}?wireFormat.maxInactivityDuration=1500"
                    "&wireFormat.maxInactivityDurationInitalDelay=1500",
                )
            )
            topology = BridgeTopology(
                upstream=upstream,
                bridge=broker_factory(bridge=path),
                bridge_file=path,
                client_id="oss1@1",
                subscription_name="oss1-bridge",
                topic=NFMP_TOPIC,
                local_topic=f"VirtualTopic.{NFMP_TOPIC}",
            )
            topology.wait_connected()
            with SimulatedServer(
                upstream.host, upstream.port, admin=topology.upstream_admin, keepalive_interval=0.2
            ) as nfmp:
                client, handler = start_app(
                    topology.bridge, topology, "alarms", tmp_path, keepalive_timeout=2.0
                )
                try:
                    time.sleep(1.0)
                    link.blackhole()
                    cut = time.monotonic()
                    during = nfmp.generate(5)
                    loss = handler.losses.get(timeout=WAIT)
                    noticed = time.monotonic() - cut
                    assert loss.reason is LossReason.WATCHDOG_EXPIRED
                    assert noticed < 2.0 + 1.0
                    assert all(lost.reason is LossReason.WATCHDOG_EXPIRED for lost in losses(handler))

                    link.passthrough()
                    assert drain(handler, 5) == during
                    back = time.monotonic() - cut
                    handler.no_request(within=1.0)  # NFM-P kept everything for the bridge: no gap
                    print(
                        f"\ndead bridge: noticed by the watchdog {noticed:.1f} s after the cut "
                        f"(keepalive_timeout 2 s); the 5 events of the cut arrived {back:.1f} s after it"
                    )
                finally:
                    client.decommission()


class TestFannedOut:
    def test_an_exclusive_pair_runs_active_and_standby(
        self, topology: BridgeTopology, nfmp: SimulatedServer, tmp_path: Path
    ) -> None:
        """Two instances of one application on one queue: the first is active, the second waits as a standby
        (no watchdog, no resync) and takes over when the first stops; no event is lost."""
        first, first_handler = start_app(topology.bridge, topology, "pair", tmp_path / "a", exclusive=True)
        standby_handler = Resyncing()
        standby = running(
            config_for(
                f"{topology.bridge.host}:{topology.bridge.port}",
                **app_config(topology.bridge, topology, "pair", tmp_path / "b", exclusive=True),
            ),
            standby_handler,
        )
        try:
            time.sleep(1.0)
            early = nfmp.generate(10)
            assert drain(first_handler, 10) == early
            time.sleep(2.5)  # longer than keepalive_timeout: the standby's silence is no fault
            assert standby.health().status is HealthStatus.STANDBY
            assert losses(standby_handler) == []
            standby_handler.no_request(within=0.1)

            first.stop()
            stopped = time.monotonic()
            late = nfmp.generate(10)
            got = drain(standby_handler, 10)
            took = time.monotonic() - stopped
            assert got == late
            assert standby_handler.next_request().reason is ResyncReason.INITIAL  # its own first start
            assert standby.health().status is not HealthStatus.STANDBY
            print(f"\nexclusive pair: the standby had the queue and 10 events {took:.1f} s after the stop")
        finally:
            first.decommission()
            standby.decommission()


class TestNetworked:
    def test_events_cross_a_network_of_brokers_through_restarts_and_a_cut_link(
        self,
        topology: BridgeTopology,
        nfmp: SimulatedServer,
        broker_factory: BrokerFactory,
        tmp_path: Path,
    ) -> None:
        """Bridge broker A, consumers' broker B linked to A's OpenWire (through a fault proxy), the
        application on B: events flow across; a restart of B, a restart of A and a silently cut link lose
        nothing; the cut is noticed by the client's watchdog and the link heals by itself."""
        assert topology.bridge.openwire_port is not None
        with FaultProxy(topology.bridge.host, topology.bridge.openwire_port) as link:
            b = broker_factory(network_to=link.port, network_inactivity=2000)
            assert json.loads((b.data_dir / "broker.json").read_text())["network"] == {
                "to": f"127.0.0.1:{link.port}",
                "inactivity_ms": 2000,
            }
            status = run_broker_script("status", "--data", str(topology.bridge.data_dir)).stdout
            assert f"tcp://127.0.0.1:{topology.bridge.openwire_port} (OpenWire)" in status
            client, handler = start_app(b, topology, "far", tmp_path, keepalive_timeout=3.0)
            try:
                first = nfmp.generate(5)
                assert drain(handler, 5) == first

                started = time.monotonic()
                b.restart()
                during_b = nfmp.generate(5)
                assert drain(handler, 5) == during_b
                b_back = time.monotonic() - started

                started = time.monotonic()
                topology.bridge.restart()
                during_a = nfmp.generate(5)
                assert drain(handler, 5) == during_a
                a_back = time.monotonic() - started

                losses(handler)  # those of the restarts
                link.blackhole()
                cut = time.monotonic()
                during_cut = nfmp.generate(5)
                loss = handler.losses.get(timeout=WAIT)
                noticed = time.monotonic() - cut
                link.passthrough()
                assert drain(handler, 5) == during_cut
                healed = time.monotonic() - cut
                assert loss.reason is LossReason.WATCHDOG_EXPIRED
                assert healed < 12.0  # the link: 3 inactivity periods of 2 s and a re-dial; the watchdog: 3 s
                assert link.stats().accepted >= 2  # B dialled again
                assert nothing_more(handler) == []
                print(
                    f"\nnetwork: B restarted, events back in {b_back:.1f} s; A restarted, back in {a_back:.1f} s; "
                    f"cut link noticed by the client in {noticed:.1f} s ({loss.reason.value}), healed and "
                    f"drained {healed:.1f} s after the cut; 0 lost"
                )
            finally:
                client.decommission()
