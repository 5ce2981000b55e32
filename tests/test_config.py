"""ClientConfig: validated on construction, secrets out of reprs, dialects produce the right headers."""

from __future__ import annotations

import pytest

from nfmp_client import (
    ACTIVEMQ,
    ARTEMIS,
    BrokerEndpoint,
    ClientConfig,
    RetryPolicy,
    TerminatePolicy,
    TlsConfig,
)


def config(**overrides: object) -> ClientConfig:
    settings: dict[str, object] = {"servers": ["nfmp-a:61613", "nfmp-b"], "client_id": "oss1@1"}
    settings.update(overrides)
    return ClientConfig(**settings)  # type: ignore[arg-type]


class TestBrokerEndpoint:
    @pytest.mark.parametrize(
        ("text", "host", "port"),
        [("nfmp-a:61613", "nfmp-a", 61613), ("nfmp-b", "nfmp-b", 61613), ("[::1]:6000", "::1", 6000)],
    )
    def test_parse(self, text: str, host: str, port: int) -> None:
        """host:port, host alone (default port), and bracketed IPv6 are read."""
        assert BrokerEndpoint.parse(text) == BrokerEndpoint(host=host, port=port)

    @pytest.mark.parametrize("text", ["", "a:b", "a:0", "a:70000", "a b:1"])
    def test_invalid(self, text: str) -> None:
        """Bad hosts and ports are refused."""
        with pytest.raises(ValueError, match="invalid broker"):
            BrokerEndpoint.parse(text)

    def test_str(self) -> None:
        """str() gives host:port back."""
        assert str(BrokerEndpoint.parse("nfmp-a:1234")) == "nfmp-a:1234"
        assert str(BrokerEndpoint.parse("[::1]:1")) == "[::1]:1"


class TestClientConfig:
    def test_defaults(self) -> None:
        """Durable on the main topic, Nokia's 120 s watchdog, heart-beats on, no reconnect after terminate."""
        cfg = config()

        assert cfg.servers == (BrokerEndpoint(host="nfmp-a"), BrokerEndpoint(host="nfmp-b"))
        assert cfg.topic == "5620-SAM-topic-xml"
        assert cfg.durable
        assert cfg.durable_name == "oss1@1"
        assert cfg.keepalive_timeout == 120.0
        assert cfg.heartbeats == (10_000, 10_000)
        assert cfg.on_terminate is TerminatePolicy.STOP
        assert cfg.dialect is ACTIVEMQ
        assert cfg.selector == "ALA_clientId in ('oss1@1','')"

    def test_non_durable_has_no_subscription_name(self) -> None:
        """A non-durable subscription has no durable name."""
        assert config(durable=False, subscription_name="x").durable_name is None

    def test_password_never_in_repr(self) -> None:
        """The password is left out of the repr."""
        cfg = config(username="oss", password="hunter2")

        assert "hunter2" not in repr(cfg)
        assert "oss" in repr(cfg)

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"servers": []}, "at least one server"),
            ({"client_id": "oss1"}, "name@ID"),
            ({"topic": "a b"}, "invalid topic"),
            ({"keepalive_timeout": 0}, "keepalive_timeout must be positive"),
            ({"heartbeats": (-1, 0)}, "heartbeats"),
            ({"heartbeat_grace": 0.9}, "heartbeat_grace must be at least 1"),
            ({"hold_limit": 0}, "hold_limit"),
            ({"resync_coalesce_window": -1}, "resync_coalesce_window"),
            ({"system_info_timeout": 0}, "system_info_timeout must be positive"),
            ({"prefetch": 0}, "at least 1"),
            ({"username": "oss"}, "both username and password"),
            ({"filter": "(x = 1"}, "parenthesis"),
            ({"subscription_name": " "}, "blank"),
        ],
    )
    def test_invalid(self, overrides: dict[str, object], message: str) -> None:
        """Each bad setting fails at construction with a message naming it."""
        with pytest.raises(ValueError, match=message):
            config(**overrides)

    @pytest.mark.parametrize(
        ("overrides", "message"),
        [
            ({"initial_delay": 5, "max_delay": 1}, "initial_delay <= max_delay"),
            ({"multiplier": 0.5}, "multiplier"),
            ({"max_attempts": 0}, "max_attempts"),
            ({"connect_timeout": 0}, "connect_timeout"),
        ],
    )
    def test_invalid_retry(self, overrides: dict[str, float], message: str) -> None:
        """Retry policies are validated too."""
        with pytest.raises(ValueError, match=message):
            RetryPolicy(**overrides)  # type: ignore[arg-type]

    def test_tls_key_needs_certificate(self) -> None:
        """A key file without its certificate is refused."""
        with pytest.raises(ValueError, match="cert_file"):
            TlsConfig(key_file="client.key")


class TestDialects:
    def test_activemq(self) -> None:
        """ActiveMQ Classic: activemq.subscriptionName and a prefetch in messages."""
        headers = ACTIVEMQ.subscribe_headers(selector="S", subscription_name="oss1@1", prefetch=50)

        assert headers == {
            "selector": "S",
            "activemq.subscriptionName": "oss1@1",
            "activemq.prefetchSize": "50",
        }
        assert ACTIVEMQ.connect_headers("oss1@1") == {"client-id": "oss1@1"}
        assert ACTIVEMQ.remove_durable_headers("oss1@1") == {"activemq.subscriptionName": "oss1@1"}

    def test_artemis(self) -> None:
        """Artemis: durable-subscription-name and a consumer window in bytes."""
        headers = ARTEMIS.subscribe_headers(
            selector="S", subscription_name="oss1@1", prefetch=50, message_size=2000
        )

        assert headers == {
            "selector": "S",
            "durable-subscription-name": "oss1@1",
            "consumer-window-size": "100000",
        }

    def test_non_durable_has_no_name_header(self) -> None:
        """Without a subscription name no durable header is sent."""
        assert "activemq.subscriptionName" not in ACTIVEMQ.subscribe_headers(
            selector="S", subscription_name=None, prefetch=1
        )
