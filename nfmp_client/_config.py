"""The client's configuration: one frozen, validated value.

Everything the client does is decided here before it connects, so a bad setting fails at start-up with a
clear message, not in the middle of a failover at three in the morning. Every interval is configurable (the
defaults are production values; tests use fractions of a second). The password is never shown in a repr.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import attrs
import tenacity
from attrs import field, frozen

from ._codec import DEFAULT_MAX_MESSAGE_BYTES
from ._dedup import DEFAULT_DEDUP_WINDOW
from ._selector import build_selector, validate_client_id
from ._watchdog import DEFAULT_KEEPALIVE_TIMEOUT

__all__ = [
    "ACTIVEMQ",
    "ARTEMIS",
    "DEFAULT_TOPIC",
    "BrokerDialect",
    "BrokerEndpoint",
    "ClientConfig",
    "ResyncMode",
    "RetryPolicy",
    "TerminatePolicy",
    "TlsConfig",
]

DEFAULT_TOPIC: Final = "5620-SAM-topic-xml"
"""The NFM-P topic that carries every event."""
DEFAULT_STOMP_PORT: Final = 61613


@frozen(kw_only=True)
class BrokerEndpoint:
    """One STOMP server: ``host:port``."""

    host: str
    """The host name or address."""
    port: int = DEFAULT_STOMP_PORT
    """The STOMP port."""

    def __attrs_post_init__(self) -> None:
        """Validate."""
        if not self.host or any(c.isspace() for c in self.host):
            raise ValueError(f"invalid broker host {self.host!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"invalid broker port {self.port!r} for {self.host}")

    @classmethod
    def parse(cls, text: str) -> BrokerEndpoint:
        """Read ``host:port`` (or ``host``, port 61613; ``[v6addr]:port`` for IPv6).

        Raises:
            ValueError: Not a host with an optional numeric port.
        """
        host, port = text.strip(), str(DEFAULT_STOMP_PORT)
        if host.startswith("["):
            address, _, rest = host[1:].partition("]")
            host, port = address, rest.removeprefix(":") or port
        elif host.count(":") == 1:
            host, port = host.split(":")
        if not port.isdigit():
            raise ValueError(f"invalid broker address {text!r}: the port must be a number")
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        """Return ``host:port``."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _endpoints(value: Sequence[str | BrokerEndpoint] | str) -> tuple[BrokerEndpoint, ...]:
    if isinstance(value, str):
        value = [value]
    return tuple(v if isinstance(v, BrokerEndpoint) else BrokerEndpoint.parse(v) for v in value)


@frozen(kw_only=True)
class TlsConfig:
    """TLS to the broker. Without a CA file the system's trust store is used.

    The broker's certificate is always verified, host name included: give ``servers`` the name (or address)
    the certificate carries.
    """

    ca_file: Path | None = field(default=None, converter=attrs.converters.optional(Path))
    """PEM file of the CA(s) that signed the broker's certificate."""
    cert_file: Path | None = field(default=None, converter=attrs.converters.optional(Path))
    """PEM client certificate, for brokers that require one."""
    key_file: Path | None = field(default=None, converter=attrs.converters.optional(Path))
    """PEM private key of the client certificate."""

    def __attrs_post_init__(self) -> None:
        """Validate."""
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("a TLS key file needs its certificate file (cert_file)")


@frozen(kw_only=True)
class RetryPolicy:
    """How the client waits between reconnection attempts: exponential backoff with jitter, capped."""

    initial_delay: float = 0.5
    """Seconds before reconnecting after a lost connection, and before the first retry of a failed attempt."""
    max_delay: float = 30.0
    """The longest wait between two attempts."""
    multiplier: float = 2.0
    """Each wait is this many times the previous one (before jitter), up to *max_delay*."""
    jitter: float = 1.0
    """Up to this many seconds are added at random to each wait, so clients do not reconnect in step."""
    max_attempts: int | None = None
    """Give up after this many failed attempts in a row (None: never give up)."""
    connect_timeout: float = 10.0
    """Seconds one connection attempt (TCP, TLS, STOMP CONNECT, SUBSCRIBE receipt) may take."""
    wait: tenacity.wait.wait_base | None = field(default=None, eq=False)
    """A tenacity wait strategy that replaces the backoff above, e.g. ``tenacity.wait_fixed(5)`` or
    ``tenacity.wait_random_exponential(max=60)``; None: the backoff above."""
    stop: tenacity.stop.stop_base | None = field(default=None, eq=False)
    """A tenacity stop condition that replaces *max_attempts*, e.g. ``tenacity.stop_after_delay(3600)``
    (a stop by the application always ends the retries too); None: *max_attempts*."""

    def __attrs_post_init__(self) -> None:
        """Validate."""
        if self.initial_delay < 0 or self.max_delay < self.initial_delay or self.jitter < 0:
            raise ValueError("retry delays must satisfy 0 <= initial_delay <= max_delay and jitter >= 0")
        if self.multiplier < 1:
            raise ValueError(f"the retry multiplier must be at least 1, got {self.multiplier!r}")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1 or None, got {self.max_attempts!r}")
        if not self.connect_timeout > 0:
            raise ValueError(f"connect_timeout must be positive, got {self.connect_timeout!r}")


class TerminatePolicy(enum.Enum):
    """What the client does after a TerminateClientSession (an administrator ended the session)."""

    STOP = "stop"
    """Stay stopped: the session was ended on purpose (the default)."""
    RECONNECT_AFTER_DELAY = "reconnect-after-delay"
    """Reconnect after ``ClientConfig.terminate_reconnect_delay`` seconds."""
    RECONNECT_NOW = "reconnect-now"
    """Reconnect at once, as after any other loss."""


class ResyncMode(enum.Enum):
    """What happens to data events that arrive while the application resyncs."""

    HOLD_AND_REPLAY = "hold-and-replay"
    """Held in order and handed to ``on_event`` once the resync completed (Nokia's procedure; the default):
    the application applies them on top of the state it just retrieved."""
    APPLY_LIVE = "apply-live"
    """Handed to ``on_event`` at once, during the resync; the application reconciles them itself."""


@frozen(kw_only=True)
class BrokerDialect:
    """The STOMP headers a broker uses for client ids, durable subscriptions and prefetch.

    Use :data:`ACTIVEMQ` (the default) or :data:`ARTEMIS`.
    """

    name: str
    """The broker family, for logs."""
    client_id_header: str
    """The CONNECT header that carries the client id."""
    durable_name_header: str
    """The SUBSCRIBE header that names a durable subscription (and, on UNSUBSCRIBE, deletes it)."""
    prefetch_header: str
    """The SUBSCRIBE header that bounds unacknowledged messages in flight."""
    prefetch_in_bytes: bool = False
    """Whether the prefetch header counts bytes rather than messages."""

    def connect_headers(self, client_id: str) -> dict[str, str]:
        """Return the CONNECT headers for *client_id*."""
        return {self.client_id_header: client_id}

    def subscribe_headers(
        self, *, selector: str, subscription_name: str | None, prefetch: int, message_size: int = 2048
    ) -> dict[str, str]:
        """Return the SUBSCRIBE headers (selector, durable name if any, prefetch)."""
        window = prefetch * message_size if self.prefetch_in_bytes else prefetch
        headers = {"selector": selector, self.prefetch_header: str(window)}
        if subscription_name is not None:
            headers[self.durable_name_header] = subscription_name
        return headers

    def remove_durable_headers(self, subscription_name: str) -> dict[str, str]:
        """Return the UNSUBSCRIBE headers that delete the durable subscription (after a plain UNSUBSCRIBE)."""
        return {self.durable_name_header: subscription_name}


ACTIVEMQ: Final = BrokerDialect(
    name="ActiveMQ Classic",
    client_id_header="client-id",
    durable_name_header="activemq.subscriptionName",
    prefetch_header="activemq.prefetchSize",
)
"""Apache ActiveMQ Classic (5.x): ``activemq.subscriptionName``, ``activemq.prefetchSize``."""
ARTEMIS: Final = BrokerDialect(
    name="ActiveMQ Artemis",
    client_id_header="client-id",
    durable_name_header="durable-subscription-name",
    prefetch_header="consumer-window-size",
    prefetch_in_bytes=True,
)
"""Apache ActiveMQ Artemis: ``durable-subscription-name``, ``consumer-window-size`` (bytes)."""


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _at_least_one(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value >= 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value!r}")


def _heartbeats(_instance: object, _attribute: object, value: tuple[int, int]) -> None:
    if len(value) != 2 or any(v < 0 for v in value):
        raise ValueError(f"heartbeats must be two milliseconds values >= 0 (send, receive), got {value!r}")


@frozen(kw_only=True)
class ClientConfig:
    """Everything an :class:`NfmpClient` needs to know, validated on construction.

    Example::

        ClientConfig(servers=["nfmp-a:61613", "nfmp-b:61613"], username="oss",
                     password=os.environ["NFMP_PASSWORD"], client_id="oss1@1",
                     topic="5620-SAM-topic-xml", durable=True)
    """

    servers: tuple[BrokerEndpoint, ...] = field(converter=_endpoints)
    """The STOMP servers in order of preference: the primary first, then the standby."""
    client_id: str = field(validator=lambda _i, _a, v: validate_client_id(v))
    """The OSS client id, ``name@ID``; it binds the durable subscription."""
    username: str | None = None
    """The STOMP login."""
    password: str | None = field(default=None, repr=False)
    """The STOMP passcode; never logged or shown."""
    topic: str = DEFAULT_TOPIC
    """The NFM-P topic to subscribe to."""
    durable: bool = True
    """A durable subscription (the server keeps events while the client is away)."""
    subscription_name: str | None = None
    """The durable subscription's name; the client id when None (as in Nokia's samples)."""
    filter: str = ""
    """An application selector for data events; system events always pass (see :func:`build_selector`)."""
    heartbeats: tuple[int, int] = field(default=(10_000, 10_000), validator=_heartbeats)
    """STOMP heart-beats in milliseconds: (we send every, we want to receive every); 0 turns one off."""
    heartbeat_grace: float = field(default=2.5, validator=_at_least_one)
    """Intervals of total silence from the broker after which the path is declared dead. ActiveMQ skips the
    heart-beat of an interval in which it sent a message, so up to two intervals of silence are normal: a
    grace below 2 turns a quiet but healthy connection into false timeouts (stomp.py's own 1.5 does)."""
    keepalive_timeout: float = field(default=DEFAULT_KEEPALIVE_TIMEOUT, validator=_positive)
    """Seconds without any message after which the connection is declared dead (Nokia: 120)."""
    retry: RetryPolicy = field(factory=RetryPolicy)
    """Reconnection backoff."""
    tls: TlsConfig | None = None
    """TLS settings; None for plain TCP."""
    dialect: BrokerDialect = ACTIVEMQ
    """The broker's STOMP header dialect."""
    return_to_primary: bool = False
    """When connected to a standby, go back to the first server once it answers again."""
    primary_check_interval: float = field(default=60.0, validator=_positive)
    """Seconds between checks whether the primary is back (with *return_to_primary*)."""
    on_terminate: TerminatePolicy = TerminatePolicy.STOP
    """What to do after a TerminateClientSession."""
    terminate_reconnect_delay: float = field(default=60.0, validator=_positive)
    """Seconds to wait before reconnecting with ``TerminatePolicy.RECONNECT_AFTER_DELAY``."""
    state_dir: Path | None = field(default=None, converter=attrs.converters.optional(Path))
    """Where the resync baseline is kept, one file per client id, across restarts of the application;
    None: ``$XDG_STATE_HOME/nfmp_client`` (``~/.local/state/nfmp_client``)."""
    resync_mode: ResyncMode = ResyncMode.HOLD_AND_REPLAY
    """What happens to data events while the application resyncs."""
    system_info_timeout: float = field(default=30.0, validator=_positive)
    """Seconds after a (re)connection within which a SystemInfoEvent is expected."""
    resync_on_unknown_state: bool = True
    """Request a resync (``SERVER_STATE_UNKNOWN``) when no SystemInfoEvent came in time: a restart or a
    switchover could not be ruled out. False: only log a warning."""
    resync_coalesce_window: float = field(default=1.0, validator=attrs.validators.ge(0))
    """Seconds the first trigger waits for others, so that what comes together becomes one request."""
    resync_min_interval: float = field(default=10.0, validator=attrs.validators.ge(0))
    """The least number of seconds between two resync requests (spares the server a storm of retrievals)."""
    hold_limit: int = field(default=100_000, validator=attrs.validators.ge(1))
    """Data events held during a resync (``HOLD_AND_REPLAY``); one more starts the resync over
    (``HOLD_OVERFLOW``) instead of growing memory without bound."""
    prefetch: int = 100
    """Unacknowledged messages the broker may send ahead. A message is acknowledged only once the handler
    returned, so this also bounds the messages waiting for the handler: a slow handler slows the stream down
    and the backlog waits on the broker, not in memory."""
    dedup_window: int = DEFAULT_DEDUP_WINDOW
    """Message ids remembered to drop redeliveries of messages already handled."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Larger messages are reported as malformed without being parsed."""
    stomp_headers: Mapping[str, str] = field(factory=dict, hash=False)
    """Extra CONNECT headers (e.g. ``host`` for a broker that needs a virtual host)."""

    def __attrs_post_init__(self) -> None:
        """Validate what needs several fields."""
        if not self.servers:
            raise ValueError("at least one server is needed")
        if not self.topic or any(c.isspace() or c in "'\"" for c in self.topic):
            raise ValueError(f"invalid topic {self.topic!r}")
        if self.prefetch < 1 or self.dedup_window < 1:
            raise ValueError("prefetch and dedup_window must be at least 1")
        if self.max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        if (self.username is None) != (self.password is None):
            raise ValueError("give both username and password, or neither")
        if self.subscription_name is not None and not self.subscription_name.strip():
            raise ValueError("the subscription name must not be blank")
        build_selector(self.client_id, self.filter)  # raises ValueError on a broken filter

    @property
    def selector(self) -> str:
        """The subscription's JMS selector (own and broadcast events, the filter, system events always)."""
        return build_selector(self.client_id, self.filter)

    @property
    def durable_name(self) -> str | None:
        """The durable subscription's name, or None for a non-durable subscription."""
        if not self.durable:
            return None
        return self.subscription_name or self.client_id
