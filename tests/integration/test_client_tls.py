"""NfmpClient over TLS to the real broker: `scripts/broker --tls-port` and its test CA (see tests/conftest.py).

The simulated server publishes on the broker's plain STOMP port; the client under test reads from the TLS
port. Two brokers serve the whole module: one whose TLS connector only authenticates itself, one that also
requires a client certificate.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from nfmp_client import (
    ConnectionLost,
    ConnectionState,
    LossReason,
    NfmpClient,
    TlsConfig,
)
from nfmp_client.testing import ActiveMQAdmin, SimulatedServer

from ..conftest import BrokerInfo, start_or_fail, stop_all
from .test_client import FAST_RETRY, WAIT, Recorder, config_for, running

pytestmark = pytest.mark.integration

# 127.1 is 127.0.0.1 to the resolver (inet_aton), but a name the broker's certificate does not carry (it
# names IP:127.0.0.1 and DNS:localhost).
UNCERTIFIED_NAME = "127.1"


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerInfo]:
    """A broker with STOMP over TLS, no client certificate required; shared by the module."""
    info = start_or_fail(BrokerInfo.on_free_ports(tmp_path_factory.mktemp("tls-broker"), tls=True))
    yield info
    stop_all([info])


@pytest.fixture(scope="module")
def client_auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerInfo]:
    """A broker whose TLS connector requires a client certificate of its test CA; shared by the module."""
    info = start_or_fail(
        BrokerInfo.on_free_ports(tmp_path_factory.mktemp("tls-auth-broker"), tls_client_auth=True)
    )
    yield info
    stop_all([info])


@pytest.fixture(scope="module")
def stranger_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed CA certificate that signed nothing the brokers show."""
    directory = tmp_path_factory.mktemp("stranger-ca")
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.pem")),
            *("-subj", "/CN=stranger test CA"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return directory / "ca.pem"


def simulator(broker: BrokerInfo) -> SimulatedServer:
    """A simulated NFM-P server on the broker's plain STOMP port (fast keep-alives, its own client id)."""
    return SimulatedServer(
        broker.host,
        broker.port,
        seed=11,
        keepalive_interval=0.2,
        client_id=f"sim-{uuid.uuid4().hex[:8]}",
    )


def tls_address(broker: BrokerInfo, host: str = "127.0.0.1") -> str:
    assert broker.tls_port is not None
    return f"{host}:{broker.tls_port}"


def failed_attempts(
    tls: TlsConfig, address: str, count: int = 2, **overrides: Any
) -> tuple[list[ConnectionLost], NfmpClient]:
    """Start a client that cannot get through; return its first `count` losses and the still running client
    (the caller stops it)."""
    recorder = Recorder()
    client = NfmpClient(config_for(address, tls=tls, **overrides), recorder)
    client.start()
    try:
        losses = [recorder.losses.get(timeout=WAIT) for _ in range(count)]
        assert recorder.restored.empty()
    except BaseException:
        client.stop()
        raise
    return losses, client


class TestServerAuthentication:
    def test_events_arrive_over_tls(self, tls_broker: BrokerInfo) -> None:
        """With the CA file of the broker's certificate the client connects over TLS (on the broker's TLS
        connector, as JMX shows) and receives the events the server publishes, in order."""
        recorder = Recorder()
        with simulator(tls_broker) as server:
            config = config_for(tls_address(tls_broker), tls=TlsConfig(ca_file=tls_broker.ca_file))
            client = running(config, recorder)
            try:
                server.wait_for_subscriber(config.client_id)
                sent = server.generate(20)

                assert recorder.take(20) == sent
                (connection,) = [
                    c
                    for c in ActiveMQAdmin(tls_broker.jmx_url).connections()
                    if c.client_id == config.client_id
                ]
                assert connection.connector == "stomp-tls"
                assert recorder.losses.empty()
            finally:
                client.stop()
        assert client.state is ConnectionState.STOPPED

    def test_localhost_is_a_name_of_the_certificate(self, tls_broker: BrokerInfo) -> None:
        """The broker's certificate names localhost too: hostname checking passes for it."""
        config = config_for(tls_address(tls_broker, "localhost"), tls=TlsConfig(ca_file=tls_broker.ca_file))
        client = running(config, Recorder())
        client.stop()

    def test_unknown_ca_is_a_retried_socket_error(self, tls_broker: BrokerInfo, stranger_ca: Path) -> None:
        """A broker certificate the configured CA did not sign: each attempt fails with a typed SOCKET_ERROR
        loss, and the client keeps retrying (no crash, no give-up)."""
        losses, client = failed_attempts(TlsConfig(ca_file=stranger_ca), tls_address(tls_broker))
        try:
            assert [loss.reason for loss in losses] == [LossReason.SOCKET_ERROR] * 2
            assert [loss.attempt for loss in losses] == [1, 2]
            assert {loss.server for loss in losses} == {tls_address(tls_broker)}
            assert all(loss.retryable for loss in losses)
            assert client.state in (ConnectionState.CONNECTING, ConnectionState.RECONNECTING)
        finally:
            client.stop()

    def test_unknown_ca_loss_names_the_certificate_problem(
        self, tls_broker: BrokerInfo, stranger_ca: Path
    ) -> None:
        """The loss of an attempt that failed certificate verification says so."""
        losses, client = failed_attempts(TlsConfig(ca_file=stranger_ca), tls_address(tls_broker), count=1)
        client.stop()
        assert "certificate" in losses[0].detail.lower(), losses[0].detail

    def test_hostname_not_in_the_certificate_is_refused(self, tls_broker: BrokerInfo) -> None:
        """A certificate of the trusted CA that does not name the host connected to does not do."""
        address = tls_address(tls_broker, UNCERTIFIED_NAME)
        losses, client = failed_attempts(TlsConfig(ca_file=tls_broker.ca_file), address)
        client.stop()
        assert [loss.reason for loss in losses] == [LossReason.SOCKET_ERROR] * 2
        assert "hostname mismatch" in losses[0].detail.lower(), losses[0].detail

    def test_broker_side_close_is_noticed_at_once(self, tls_broker: BrokerInfo) -> None:
        """The broker drops a TLS connection: the client sees a SOCKET_ERROR at once, as over plain TCP (not a
        heart-beat timeout later)."""
        recorder = Recorder()
        config = config_for(tls_address(tls_broker), tls=TlsConfig(ca_file=tls_broker.ca_file))
        client = running(config, recorder)
        try:
            assert ActiveMQAdmin(tls_broker.jmx_url).close_connection(config.client_id) == 1
            loss = recorder.losses.get(timeout=WAIT)
        finally:
            client.stop()
        assert loss.reason is LossReason.SOCKET_ERROR, loss


class TestClientAuthentication:
    def test_no_client_certificate_is_refused(self, client_auth_broker: BrokerInfo) -> None:
        """A broker that requires a client certificate refuses a client without one; the client retries.

        With TLS 1.3 the refusal is an alert after the client's side of the handshake is done: the connection
        ends at the first read, a SOCKET_ERROR (before the TLS end-of-file fix in the transport, stomp.py spun
        on it until the connect timeout).
        """
        losses, client = failed_attempts(
            TlsConfig(ca_file=client_auth_broker.ca_file),
            tls_address(client_auth_broker),
            retry=attrs.evolve(FAST_RETRY, connect_timeout=1.0),
        )
        try:
            assert [loss.reason for loss in losses] == [LossReason.SOCKET_ERROR] * 2
            assert [loss.attempt for loss in losses] == [1, 2]
            assert client.state in (ConnectionState.CONNECTING, ConnectionState.RECONNECTING)
        finally:
            client.stop()

    def test_client_certificate_gets_in(self, client_auth_broker: BrokerInfo) -> None:
        """With the test CA's client certificate and key the client connects and receives events."""
        tls = TlsConfig(
            ca_file=client_auth_broker.ca_file,
            cert_file=client_auth_broker.client_cert_file,
            key_file=client_auth_broker.client_key_file,
        )
        recorder = Recorder()
        with simulator(client_auth_broker) as server:
            config = config_for(tls_address(client_auth_broker), tls=tls)
            client = running(config, recorder)
            try:
                server.wait_for_subscriber(config.client_id)
                sent = server.generate(5)

                assert recorder.take(5) == sent
                assert recorder.losses.empty()
            finally:
                client.stop()
