"""The in-memory broker's own switches: what no real broker can be told to do on demand.

What it shares with ActiveMQ is checked by the conformance suite (tests/test_transport_conformance.py).
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from nfmp_client import BrokerEndpoint, ClientConfig, LossReason
from nfmp_client.engine import (
    AttemptFailed,
    FrameReceived,
    Lost,
    Opened,
    Transport,
    TransportFactory,
    TransportReport,
)
from nfmp_client.testing import BrokerAdminError, FakeClock, MemoryBroker, MemoryServer, MemoryTransport

from ..test_transport_conformance import AUTH_ERROR, HEARTBEATS, Reports


class TestMemoryBroker:
    """What only the memory broker offers (no real broker can be told to do it on demand)."""

    @staticmethod
    def setup(**changes: Any) -> tuple[FakeClock, MemoryBroker, MemoryServer, Reports, ClientConfig]:
        clock = FakeClock()
        broker = MemoryBroker(clock)
        server = broker.server("nfmp-a:61613")
        config = ClientConfig(servers=["nfmp-a:61613"], client_id="oss@1", heartbeats=HEARTBEATS, **changes)
        return clock, broker, server, Reports(), config

    def test_is_a_transport_factory(self) -> None:
        """The broker is a TransportFactory and makes Transports, each listed, open ones apart."""
        clock, broker, server, reports, config = self.setup()
        factory: TransportFactory = broker
        transport = factory(config, server.endpoint, epoch=1, sink=reports.sink, clock=clock)
        assert isinstance(transport, Transport)
        assert isinstance(transport, MemoryTransport)
        assert broker.transports == [transport]
        assert broker.open_transports() == []
        transport.open()
        assert broker.open_transports() == [transport]
        assert server.connections() == ["oss@1"]
        assert repr(transport) == "<MemoryTransport #1 nfmp-a:61613 open>"
        assert "nfmp-a:61613" in repr(server)
        assert "nfmp-a:61613" in repr(broker)

    def test_redelivered_header_and_counts(self) -> None:
        """Messages given back carry redelivered: true; subscriptions() counts what is stored and unacked."""
        clock, broker, server, reports, config = self.setup(prefetch=2)
        first = broker(config, server.endpoint, epoch=1, sink=reports.sink, clock=clock)
        first.open()
        ids = [server.publish(f"m{i}", {"ALA_clientId": ""}) for i in range(3)]
        assert server.subscriptions() == {("oss@1", "oss@1"): 3}
        first.ack(ids[0])
        assert server.subscriptions() == {("oss@1", "oss@1"): 2}
        first.close()
        ids.append(server.publish("m3"))
        assert server.subscriptions() == {("oss@1", "oss@1"): 3}

        roomy = attrs.evolve(config, prefetch=10)
        second = broker(roomy, server.endpoint, epoch=2, sink=reports.sink, clock=clock)
        second.open()
        frames = reports.frames(2)
        assert [f.headers["message-id"] for f in frames] == ids[1:]
        assert [f.headers.get("redelivered") for f in frames] == ["true", "true", None]
        assert frames[0].headers["ALA_clientId"] == ""
        assert frames[0].at == clock.monotonic()

    def test_unknown_server_refuses_everything(self) -> None:
        """A server never made refuses open(), probe() and remove_subscription()."""
        clock, broker, _, reports, config = self.setup()
        elsewhere = BrokerEndpoint(host="nfmp-b")
        transport = broker(config, elsewhere, epoch=1, sink=reports.sink, clock=clock)
        transport.open()
        assert reports.of(1) == [Lost(epoch=1, reason=LossReason.SOCKET_ERROR, detail="connection refused")]
        for operation in (transport.probe, transport.remove_subscription):
            with pytest.raises(AttemptFailed) as failed:
                operation()
            assert failed.value.reason is LossReason.SOCKET_ERROR

    @pytest.mark.parametrize(
        ("fault", "reason"),
        [
            ("refuse", LossReason.SOCKET_ERROR),
            ("hang", LossReason.CONNECT_TIMEOUT),
            ("hold", LossReason.CONNECT_TIMEOUT),
            ("reject", LossReason.AUTHENTICATION_FAILED),
        ],
    )
    def test_side_operations_fail_with_the_server(self, fault: str, reason: LossReason) -> None:
        """probe() and remove_subscription() fail as the server does; accept() and release() undo the faults."""
        clock, broker, server, reports, config = self.setup()
        if fault == "reject":
            server.reject_logins(AUTH_ERROR)
        else:
            getattr(server, fault)()
        transport = broker(config, server.endpoint, epoch=1, sink=reports.sink, clock=clock)
        for operation in (transport.probe, transport.remove_subscription):
            with pytest.raises(AttemptFailed) as failed:
                operation()
            assert failed.value.reason is reason
        server.accept()
        server.release()
        server.reject_logins(None)
        transport.probe()
        transport.remove_subscription()
        assert reports.of(1) == []

    def test_drop_ends_waiting_connections_too(self) -> None:
        """drop() ends open, hung and held connections alike, each with one Lost of the given reason."""
        clock, broker, server, reports, config = self.setup()
        configs = [attrs.evolve(config, client_id=f"oss@{n}") for n in range(3)]
        transports = [
            broker(c, server.endpoint, epoch=n, sink=reports.sink, clock=clock) for n, c in enumerate(configs)
        ]
        transports[0].open()
        server.hang()
        transports[1].open()
        server.accept()
        server.hold()
        transports[2].open()
        server.drop(LossReason.SESSION_TERMINATED, "closed by the administrator")

        for n in range(3):
            assert reports.lost(n) == [
                Lost(epoch=n, reason=LossReason.SESSION_TERMINATED, detail="closed by the administrator")
            ]
        server.release()
        assert server.connections() == []
        assert [len(reports.of(n)) for n in range(3)] == [2, 1, 1]

    def test_held_connection_checks_the_client_id_on_release(self) -> None:
        """A held connection is answered on release(): refused if its client id got connected meanwhile."""
        clock, broker, server, reports, config = self.setup()
        server.hold()
        held = broker(config, server.endpoint, epoch=1, sink=reports.sink, clock=clock)
        held.open()
        server.release()
        server.hold()
        late = broker(config, server.endpoint, epoch=2, sink=reports.sink, clock=clock)
        late.open()
        server.release()

        assert [type(r) for r in reports.of(1)] == [Opened]
        assert [r.reason for r in reports.lost(2)] == [LossReason.CLIENT_ID_IN_USE]

    def test_administrator_removal(self) -> None:
        """remove_subscription() on the server refuses an active or missing subscription, deletes an idle one."""
        clock, broker, server, reports, config = self.setup()
        transport = broker(config, server.endpoint, epoch=1, sink=reports.sink, clock=clock)
        transport.open()
        with pytest.raises(BrokerAdminError, match="in use"):
            server.remove_subscription("oss@1", "oss@1")
        transport.close()
        server.remove_subscription("oss@1", "oss@1")
        assert server.subscriptions() == {}
        with pytest.raises(BrokerAdminError):
            server.remove_subscription("oss@1", "oss@1")

    def test_heartbeat_deadline_follows_the_silence(self) -> None:
        """Silenced at T the deadline is T + grace, fixed; resumed it is ahead again; off without heart-beats."""
        clock, broker, server, reports, config = self.setup()
        transport = broker(config, server.endpoint, epoch=1, sink=reports.sink, clock=clock)
        assert transport.heartbeat_deadline() is None  # not open yet
        transport.open()
        window = HEARTBEATS[1] / 1000 * config.heartbeat_grace
        silenced_at = clock.monotonic()
        server.silence_heartbeats()
        clock.advance(0.7)
        assert transport.heartbeat_deadline() == silenced_at + window
        server.resume_heartbeats()
        assert transport.heartbeat_deadline() == clock.monotonic() + window

        quiet = attrs.evolve(config, client_id="oss@2", heartbeats=(500, 0))
        no_beats = broker(quiet, server.endpoint, epoch=2, sink=reports.sink, clock=clock)
        no_beats.open()
        assert no_beats.heartbeat_deadline() is None

    def test_ack_from_the_sink_keeps_the_order(self) -> None:
        """A sink that acknowledges each message as it comes gets the whole backlog, in order, without recursion."""
        clock, broker, server, reports, config = self.setup(prefetch=1)
        received: list[bytes] = []
        transport: MemoryTransport | None = None

        def sink(report: TransportReport) -> None:
            if isinstance(report, FrameReceived):
                received.append(report.body)
                assert transport is not None
                transport.ack(report.headers["ack"])

        broker(config, server.endpoint, epoch=0, sink=reports.sink, clock=clock).open()
        broker.transports[0].close()
        bodies = [f"m{i}".encode() for i in range(3000)]  # deeper than the recursion limit
        for body in bodies:
            server.publish(body)
        transport = broker(config, server.endpoint, epoch=1, sink=sink, clock=clock)
        transport.open()
        assert received == bodies
        assert server.subscriptions() == {("oss@1", "oss@1"): 0}

    def test_sink_that_aborts_hears_nothing_more(self) -> None:
        """A sink that aborts its transport on the first message gets none of the backlog already on its way."""
        clock, broker, server, reports, config = self.setup()
        broker(config, server.endpoint, epoch=0, sink=reports.sink, clock=clock).open()
        broker.transports[0].close()
        for i in range(3):
            server.publish(f"m{i}")
        heard: list[TransportReport] = []

        def sink(report: TransportReport) -> None:
            heard.append(report)
            if isinstance(report, FrameReceived):
                broker.transports[-1].abort()

        broker(config, server.endpoint, epoch=1, sink=sink, clock=clock).open()
        assert [type(r) for r in heard] == [Opened, FrameReceived]
        assert server.subscriptions() == {("oss@1", "oss@1"): 3}  # the one delivered goes back too

    def test_close_removing_a_subscription_it_cannot_reach(self) -> None:
        """close(remove_durable=True) on a connection that is not open raises AttemptFailed (nothing confirmed)."""
        clock, broker, server, reports, config = self.setup()
        server.refuse()
        transport = broker(config, server.endpoint, epoch=1, sink=reports.sink, clock=clock)
        transport.open()
        with pytest.raises(AttemptFailed):
            transport.close(remove_durable=True)
