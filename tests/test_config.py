"""ClientConfig: validated on construction, secrets out of reprs, dialects produce the right headers."""

from __future__ import annotations

import pickle

import pytest

from nfmp_client import (
    ACTIVEMQ,
    ARTEMIS,
    BrokerEndpoint,
    ClientConfig,
    ConfigError,
    NfmpError,
    RetryPolicy,
    TerminatePolicy,
    TlsConfig,
)
from nfmp_client.selector import build_selector, validate_client_id


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
        with pytest.raises(ValueError, match="is not accepted"):
            BrokerEndpoint.parse(text)

    def test_str(self) -> None:
        """str() gives host:port back."""
        assert str(BrokerEndpoint.parse("nfmp-a:1234")) == "nfmp-a:1234"
        assert str(BrokerEndpoint.parse("[::1]:1")) == "[::1]:1"

    @pytest.mark.parametrize(
        "text",
        [
            "nfmp-a",
            "nfmp-a:61613",
            " nfmp-a:61613\n",
            "NFMP-A.example.com:1",
            "10.0.0.1:65535",
            "[::1]",
            "[::1]:6000",
            "[fe80::1%eth0]:61613",
        ],
    )
    def test_still_accepted(self, text: str) -> None:
        """Host, host:port, IPv4 and bracketed IPv6 (with or without a port) stay accepted."""
        assert isinstance(BrokerEndpoint.parse(text), BrokerEndpoint)

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("stomp://h:61613", "host:port (no scheme), [IPv6]:port for IPv6"),
            ("tcp://h:61613", "no scheme"),
            ("ssl://h:61613", "tls=TlsConfig(...)"),
            ("stomp+ssl://h:61613", "tls=TlsConfig(...)"),
            ("a:1,b:2", "give a list of servers"),
            ("a:1, b:2", "give a list of servers"),
            ("a:1;b:2", "give a list of servers"),
            ("a:1 b:2", "without whitespace"),
            ("a\tb", "without whitespace"),
            ("::1", "[v6addr]:port"),
            ("2001:db8::1:61613", "[v6addr]:port"),
            ("h:61613:1", "[v6addr]:port"),
            ("", "(it is empty)"),
            (":61613", "(it is empty)"),
            ("[]:61613", "(it is empty)"),
            ("h:", "a port number from 1 to 65535"),
            ("h:port", "a port number from 1 to 65535"),
            ("h:0", "a port number from 1 to 65535"),
            ("h:65536", "a port number from 1 to 65535"),
            ("h:-1", "a port number from 1 to 65535"),
            ("h:\u0661\u0662", "a port number from 1 to 65535"),
            ("[::1]:", "a port number from 1 to 65535"),
            ("[::1", "[v6addr]:port"),
            ("[::1]61613", "[v6addr]:port"),
            ("[h:1]:2", "an IPv6 address"),
            ("h/path:1", "a host name or address, nothing else"),
            ("h#x:1", "a host name or address, nothing else"),
        ],
    )
    def test_rejected_forms(self, text: str, expected: str) -> None:
        """What cannot be one STOMP server is a ConfigError on servers naming the value and the remedy."""
        with pytest.raises(ConfigError) as caught:
            BrokerEndpoint.parse(text)

        error = caught.value
        assert isinstance(error, ValueError)
        assert isinstance(error, NfmpError)
        assert error.field == "servers"
        assert error.value == text
        assert expected in error.expected
        assert str(error).startswith(f"servers: {text!r} is not accepted: expected ")

    def test_scheme_message(self) -> None:
        """A URL is refused with the message the issue asks for: no scheme, and how IPv6 is written."""
        with pytest.raises(ConfigError) as caught:
            BrokerEndpoint.parse("stomp://h:61613")

        assert str(caught.value).startswith(
            "servers: 'stomp://h:61613' is not accepted: expected host:port (no scheme), [IPv6]:port for IPv6"
        )

    @pytest.mark.parametrize(
        "text", ["stomp://oss:hunter2@h:61613", "oss:hunter2@h:61613", "oss:p@hunter2@h"]
    )
    def test_url_credentials_not_repeated(self, text: str) -> None:
        """A user and password written into a server address are shown as ***@, never repeated."""
        with pytest.raises(ConfigError) as caught:
            BrokerEndpoint.parse(text)

        assert "hunter2" not in str(caught.value)
        assert "hunter2" not in repr(caught.value.value)
        assert "***@h" in str(caught.value)

    def test_not_a_string(self) -> None:
        """Something that is neither a string nor a BrokerEndpoint is refused as a ConfigError."""
        with pytest.raises(ConfigError, match="servers: 61613 is not accepted"):
            BrokerEndpoint.parse(61613)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("host", "port", "field"),
        [
            ("", 61613, "host"),
            ("a b", 61613, "host"),
            ("h:61613", 61613, "host"),
            ("stomp://h", 61613, "host"),
            ("a,b", 61613, "host"),
            ("h", 0, "port"),
            ("h", 65536, "port"),
            ("h", "61613", "port"),
            ("h", True, "port"),
        ],
    )
    def test_constructor_refuses(self, host: str, port: int, field: str) -> None:
        """BrokerEndpoint itself refuses a host or port that cannot work, naming host or port."""
        with pytest.raises(ConfigError) as caught:
            BrokerEndpoint(host=host, port=port)

        assert caught.value.field == field

    @pytest.mark.parametrize("host", ["nfmp-a", "10.0.0.1", "::1", "fe80::1%eth0"])
    def test_constructor_accepts(self, host: str) -> None:
        """Host names, IPv4 and IPv6 addresses make endpoints."""
        assert BrokerEndpoint(host=host, port=1).host == host


class TestClientConfig:
    def test_defaults(self) -> None:
        """Durable on the main topic, Nokia's 120 s watchdog, heart-beats on, no reconnect after terminate."""
        cfg = config()

        assert cfg.servers == (BrokerEndpoint(host="nfmp-a"), BrokerEndpoint(host="nfmp-b"))
        assert cfg.topic == "5620-SAM-topic-xml"
        assert cfg.durable
        assert cfg.durable_name == "oss1@1"
        assert cfg.keepalive_timeout == 120.0
        assert cfg.heartbeats == (4_000, 4_000)
        assert cfg.heartbeat_grace == 2.5
        assert cfg.on_terminate is TerminatePolicy.STOP
        assert cfg.dialect is ACTIVEMQ
        assert cfg.selector == build_selector("oss1@1")

    def test_default_heartbeats_notice_a_half_open_link_within_12_s(self) -> None:
        """The defaults declare a silent path dead within 12 s, and tolerate the two intervals of silence a
        healthy ActiveMQ connection shows after a message (its heart-beat skipped in that interval)."""
        cfg = config()
        receive_s = cfg.heartbeats[1] / 1000

        assert receive_s * cfg.heartbeat_grace <= 12.0
        assert cfg.heartbeat_grace > 2

    @pytest.mark.parametrize(
        ("prefetch", "ack_batch", "every", "mode"),
        [
            (100, 50, 50, "client"),  # the defaults
            (20, 50, 10, "client"),  # never more than half the prefetch: the broker keeps sending
            (3, 50, 1, "client-individual"),
            (100, 1, 1, "client-individual"),
            (1, 1, 1, "client-individual"),
        ],
    )
    def test_acknowledgements_in_batches_within_half_the_prefetch(
        self, prefetch: int, ack_batch: int, every: int, mode: str
    ) -> None:
        """ack_every is ack_batch bounded by half the prefetch; a batch of one is client-individual mode."""
        cfg = config(prefetch=prefetch, dedup_window=max(prefetch, 1), ack_batch=ack_batch)
        assert (cfg.ack_every, cfg.ack_mode) == (every, mode)

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
            ({"topic": "a b"}, "topic: 'a b' is not accepted"),
            ({"keepalive_timeout": 0}, "keepalive_timeout: 0 is not accepted"),
            ({"heartbeats": (-1, 0)}, "heartbeats"),
            ({"heartbeat_grace": 0.9}, "heartbeat_grace: 0.9 is not accepted"),
            ({"hold_limit": 0}, "hold_limit"),
            ({"resync_coalesce_window": -1}, "resync_coalesce_window"),
            ({"system_info_timeout": 0}, "system_info_timeout: 0 is not accepted"),
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

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"servers": []}, "servers"),
            ({"servers": "stomp://h:61613"}, "servers"),
            ({"servers": ["a:1,b:2"]}, "servers"),
            ({"servers": ["::1"]}, "servers"),
            ({"servers": 61613}, "servers"),
            ({"client_id": "oss1"}, "client_id"),
            ({"topic": "a b"}, "topic"),
            ({"topic": ""}, "topic"),
            ({"keepalive_timeout": 0}, "keepalive_timeout"),
            ({"keepalive_timeout": float("nan")}, "keepalive_timeout"),
            ({"keepalive_timeout": "120"}, "keepalive_timeout"),
            ({"heartbeats": (-1, 0)}, "heartbeats"),
            ({"heartbeats": (1, 2, 3)}, "heartbeats"),
            ({"heartbeat_grace": 0.9}, "heartbeat_grace"),
            ({"hold_limit": 0}, "hold_limit"),
            ({"resync_coalesce_window": -1}, "resync_coalesce_window"),
            ({"resync_min_interval": -0.5}, "resync_min_interval"),
            ({"system_info_timeout": 0}, "system_info_timeout"),
            ({"primary_check_interval": 0}, "primary_check_interval"),
            ({"terminate_reconnect_delay": -1}, "terminate_reconnect_delay"),
            ({"prefetch": 0}, "prefetch"),
            ({"prefetch": 1.5}, "prefetch"),
            ({"dedup_window": 0}, "dedup_window"),
            ({"max_message_bytes": 0}, "max_message_bytes"),
            ({"username": "oss"}, "username"),
            ({"password": "x"}, "username"),
            ({"filter": "(x = 1"}, "filter"),
            ({"subscription_name": " "}, "subscription_name"),
            ({"queue": "/queue/Consumer.a.VirtualTopic.t"}, "queue"),
            ({"queue": "Consumer.a b"}, "queue"),
            ({"queue": ""}, "queue"),
            ({"queue": "Consumer.a.VirtualTopic.t", "durable": False}, "durable"),
            ({"queue": "Consumer.a.VirtualTopic.t", "subscription_name": "x"}, "subscription_name"),
            ({"exclusive": True}, "exclusive"),
            ({"exclusive": True, "queue": "Consumer.a.VirtualTopic.t", "dialect": ARTEMIS}, "exclusive"),
            ({"upstream_client_id": "oss1"}, "upstream_client_id"),
            ({"upstream_client_id": "o'ss@1"}, "upstream_client_id"),
            ({"keepalive_gap_factor": 1}, "keepalive_gap_factor"),
            ({"keepalive_period": 0}, "keepalive_period"),
            ({"ack_batch": 0}, "ack_batch"),
            ({"ack_batch": 2.5}, "ack_batch"),
            ({"ack_interval": -1}, "ack_interval"),
        ],
    )
    def test_invalid_is_config_error(self, overrides: dict[str, object], field: str) -> None:
        """Each refused setting raises a ConfigError naming that field, also a ValueError and an NfmpError."""
        with pytest.raises(ConfigError) as caught:
            config(**overrides)

        error = caught.value
        assert error.field == field
        assert isinstance(error, ValueError)
        assert isinstance(error, NfmpError)
        assert str(error).startswith(f"{field}: ")
        assert f"is not accepted: expected {error.expected}" in str(error)

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"initial_delay": -1}, "initial_delay"),
            ({"initial_delay": 5, "max_delay": 1}, "max_delay"),
            ({"jitter": -1}, "jitter"),
            ({"multiplier": 0.5}, "multiplier"),
            ({"max_attempts": 0}, "max_attempts"),
            ({"max_attempts": 1.5}, "max_attempts"),
            ({"connect_timeout": 0}, "connect_timeout"),
        ],
    )
    def test_invalid_retry_is_config_error(self, overrides: dict[str, float], field: str) -> None:
        """A refused retry setting raises a ConfigError naming that field."""
        with pytest.raises(ConfigError) as caught:
            RetryPolicy(**overrides)  # type: ignore[arg-type]

        assert caught.value.field == field

    def test_tls_error_names_key_file(self) -> None:
        """A key file without its certificate is a ConfigError on key_file that names the file."""
        with pytest.raises(ConfigError) as caught:
            TlsConfig(key_file="client.key")

        assert caught.value.field == "key_file"
        assert "'client.key'" in str(caught.value)

    def test_client_id_is_config_error(self) -> None:
        """validate_client_id refuses a malformed id with a ConfigError on client_id."""
        with pytest.raises(ConfigError) as caught:
            validate_client_id("oss 1@1")

        assert caught.value.field == "client_id"
        assert caught.value.value == "oss 1@1"
        assert "name@ID" in str(caught.value)

    def test_dedup_window_below_prefetch(self) -> None:
        """A dedup window smaller than the prefetch is refused, naming the prefetch it must cover."""
        with pytest.raises(ConfigError) as caught:
            config(prefetch=200, dedup_window=199)

        assert caught.value.field == "dedup_window"
        assert caught.value.value == 199
        assert "at least prefetch (200)" in str(caught.value)
        assert "in flight" in str(caught.value)

    def test_dedup_window_equal_to_prefetch(self) -> None:
        """A dedup window exactly as large as the prefetch is enough."""
        assert config(prefetch=200, dedup_window=200).dedup_window == 200

    @pytest.mark.parametrize(
        "servers",
        [
            ["nfmp-a:61613", "nfmp-a:61613"],
            ["nfmp-a", "nfmp-a:61613"],
            ["nfmp-a:1", "NFMP-A:1"],
            ["nfmp-a:1", "nfmp-a.:1"],
            ["[::1]:1", "[0:0::1]:1"],
            [BrokerEndpoint(host="nfmp-a"), "nfmp-b", "nfmp-a:61613"],
        ],
    )
    def test_duplicate_servers(self, servers: list[object]) -> None:
        """The same server listed twice is refused: it names the server listed twice."""
        with pytest.raises(ConfigError, match="listed twice") as caught:
            config(servers=servers)

        assert caught.value.field == "servers"

    def test_same_host_other_port(self) -> None:
        """Two servers on one host with different ports are two servers."""
        assert len(config(servers=["nfmp-a:61613", "nfmp-a:61614"]).servers) == 2

    @pytest.mark.parametrize(
        "overrides",
        [
            {"username": None, "password": "hunter2"},
            {"servers": ["stomp://oss:hunter2@nfmp-a:61613"], "username": "oss", "password": "hunter2"},
            {"servers": ["oss:hunter2@nfmp-a"], "username": "oss", "password": "hunter2"},
        ],
    )
    def test_password_never_in_error(self, overrides: dict[str, object]) -> None:
        """The password appears in no ConfigError: not in its message, repr, args or fields."""
        with pytest.raises(ConfigError) as caught:
            config(**overrides)

        error = caught.value
        shown = [str(error), repr(error), repr(error.args), repr(error.value), error.expected]
        assert not any("hunter2" in text for text in shown)


class TestConfigError:
    def test_message(self) -> None:
        """The message names the field, the value given and what would be accepted."""
        error = ConfigError(field="prefetch", value=0, expected="an integer of at least 1")

        assert str(error) == "prefetch: 0 is not accepted: expected an integer of at least 1"
        assert (error.field, error.value, error.expected) == ("prefetch", 0, "an integer of at least 1")

    def test_families(self) -> None:
        """A ConfigError is caught by except ValueError and by except NfmpError."""
        assert issubclass(ConfigError, ValueError)
        assert issubclass(ConfigError, NfmpError)

    def test_password_masked(self) -> None:
        """A value of the password field is shown as '***', in the message and on the exception."""
        error = ConfigError(field="password", value="hunter2", expected="a password")

        assert str(error) == "password: '***' is not accepted: expected a password"
        assert error.value == "***"
        assert "hunter2" not in repr(error)
        assert b"hunter2" not in pickle.dumps(error)

    def test_pickle_round_trip(self) -> None:
        """Pickling keeps the type, the fields and the message."""
        error = ConfigError(field="servers", value="a:1,b:2", expected="a list of servers")

        copy = pickle.loads(pickle.dumps(error))

        assert type(copy) is ConfigError
        assert (copy.field, copy.value, copy.expected) == (error.field, error.value, error.expected)
        assert str(copy) == str(error)

    def test_pickle_round_trip_of_a_raised_error(self) -> None:
        """An error raised by the configuration survives pickling (e.g. to another process)."""
        with pytest.raises(ConfigError) as caught:
            config(servers=["stomp://h:61613"])

        copy = pickle.loads(pickle.dumps(caught.value))

        assert str(copy) == str(caught.value)
        assert copy.field == "servers"


class TestBridged:
    def test_a_queue_through_a_bridge(self) -> None:
        """The queue is the destination, NFM-P's client id (the bridge's) is the selector's and the addressee's,
        the client id names the state; there is no durable subscription, and no SystemInfoEvent per connection."""
        bridged = config(
            client_id="alarms@bridge", queue="Consumer.alarms.VirtualTopic.t", upstream_client_id="oss1@1"
        )

        assert bridged.destination == "/queue/Consumer.alarms.VirtualTopic.t"
        assert bridged.nfmp_client_id == "oss1@1"
        assert "'oss1@1'" in bridged.selector
        assert "alarms@bridge" not in bridged.selector
        assert bridged.durable_name is None
        assert bridged.via_bridge

    def test_direct(self) -> None:
        direct = config()
        assert direct.destination == f"/topic/{direct.topic}"
        assert direct.nfmp_client_id == direct.client_id
        assert not direct.via_bridge

    def test_exclusive_header(self) -> None:
        headers = ACTIVEMQ.subscribe_headers(selector="S", subscription_name=None, prefetch=1, exclusive=True)
        assert headers["activemq.exclusive"] == "true"
        with pytest.raises(ConfigError):
            ARTEMIS.subscribe_headers(selector="S", subscription_name=None, prefetch=1, exclusive=True)


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
