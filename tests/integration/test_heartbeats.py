"""The client's heart-beat defaults against ActiveMQ's real heart-beat behaviour."""

from __future__ import annotations

import time
import uuid

import pytest

from nfmp_client import ClientConfig, ConnectionState, DataEvent
from nfmp_client.testing import FaultProxy, SimulatedServer

from ..conftest import BrokerInfo
from .test_client import WAIT, Recorder, config_for, running

pytestmark = pytest.mark.integration

DEFAULTS = ClientConfig(servers=["nfmp-a"], client_id="defaults@1")
SCALE = 10  # the default heart-beat intervals, ten times shorter; the grace stays the default one
ROUNDS = 6


def test_a_message_after_each_heartbeat_is_not_a_timeout(broker: BrokerInfo) -> None:
    """ActiveMQ skips the heart-beat of an interval in which it sent a message: a message right after each
    heart-beat leaves the connection silent for almost two intervals at a time. At the default grace (with
    the default intervals scaled down) that is no timeout; below a grace of 2 it would be.

    A fault proxy in passthrough shows what reaches the client: a heart-beat is a lone byte (a newline).
    """
    recorder = Recorder()
    heartbeats = (DEFAULTS.heartbeats[0] // SCALE, DEFAULTS.heartbeats[1] // SCALE)
    interval = heartbeats[1] / 1000
    with (
        FaultProxy(broker.host, broker.port) as proxy,
        SimulatedServer(
            broker.host, broker.port, keepalive_interval=0, client_id=f"sim-{uuid.uuid4().hex[:8]}"
        ) as server,
    ):
        config = config_for(f"127.0.0.1:{proxy.port}", heartbeats=heartbeats, keepalive_timeout=60.0)
        assert config.heartbeat_grace == DEFAULTS.heartbeat_grace
        client = running(config, recorder)
        try:
            server.wait_for_subscriber(config.client_id)
            sent: list[DataEvent] = []
            silences: list[float] = []
            seen = proxy.stats().bytes_to_client
            message_at: float | None = None
            while len(silences) < ROUNDS:
                assert recorder.losses.empty(), f"{recorder.losses.get()} after silences of {silences}"
                now_seen = delivered(proxy, seen)
                now = time.monotonic()
                heartbeat, seen = now_seen - seen == 1, now_seen
                if not heartbeat:
                    message_at = now  # a message (or the last part of one) reached the client
                    continue
                if message_at is not None:
                    silences.append(now - message_at)
                sent += server.generate(1)
                message_at = None

            assert recorder.take(len(sent)) == sent
            assert recorder.losses.empty(), recorder.losses.get()
            assert client.state is ConnectionState.CONNECTED
            # The case the grace is for did happen: the broker was silent for more than stomp.py's 1.5
            # intervals after a message (about two, measured), and less than the grace.
            assert 1.5 * interval < max(silences) < config.heartbeat_grace * interval, silences
        finally:
            client.stop()


def delivered(proxy: FaultProxy, before: int) -> int:
    """Wait until more than *before* bytes reached the client; return how many have."""
    return proxy.wait_until(lambda s: s.bytes_to_client > before, timeout=WAIT).bytes_to_client
