"""The client's configuration: one frozen, validated value.

Everything the client does is decided here before it connects, so a bad setting fails at start-up with a
:class:`~nfmp_client.ConfigError` that names the setting, the value and what would be accepted, not in the
middle of a failover at three in the morning. Every interval is configurable (the defaults are production
values; tests use fractions of a second). The password is never shown in a repr or an error message.
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final, TypeGuard

import attrs
import tenacity
from attrs import field, frozen

from ._codec import DEFAULT_MAX_MESSAGE_BYTES
from ._continuity import DEFAULT_GAP_FACTOR
from ._dedup import DEFAULT_DEDUP_WINDOW
from ._exceptions import ConfigError
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

_ADDRESS: Final = "host:port (no scheme), [IPv6]:port for IPv6"
_PORT: Final = "a port number from 1 to 65535"
# Never part of a host name or an IP address: a URL's path, user, query or fragment, or a list separator.
_NOT_IN_HOST: Final = frozenset("/\\@?#[],;'\"")
# A URL's user and password ("stomp://oss:secret@host"), which an error message must not repeat.
_USERINFO: Final = re.compile(r"^(\s*(?:[A-Za-z][A-Za-z0-9+.-]*://)?)[^/]*@")


def _without_userinfo(value: object) -> object:
    """Return *value* with any ``user:password@`` in it replaced by ``***@`` (for an error message)."""
    return _USERINFO.sub(r"\1***@", value) if isinstance(value, str) else value


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _host_problem(host: object) -> str | None:
    """Return what would be accepted instead of *host*, or None when it is a usable host name or address."""
    if not isinstance(host, str) or not host:
        return "a host name or address (it is empty)" if host == "" else "a host name or address as a str"
    if any(c.isspace() or not c.isprintable() for c in host):
        return "a host name or address without whitespace; several servers go in a list of servers"
    if any(c in _NOT_IN_HOST for c in host):
        return f"a host name or address, nothing else: {_ADDRESS}"
    if ":" in host and not _is_ipv6(host):
        return "a host name or an IPv4 address (no ':'), or an IPv6 address"
    return None


def _is_port(port: object) -> bool:
    return isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536


@frozen(kw_only=True)
class BrokerEndpoint:
    """One STOMP server: ``host:port``.

    Raises:
        ConfigError: The host is empty, holds whitespace, a scheme, a path, a user or a list, or a colon
            without being an IPv6 address (field ``host``); the port is not a number from 1 to 65535 (field
            ``port``).
    """

    host: str
    """The host name or address."""
    port: int = DEFAULT_STOMP_PORT
    """The STOMP port."""

    def __attrs_post_init__(self) -> None:
        """Validate."""
        problem = _host_problem(self.host)
        if problem is not None:
            raise ConfigError(field="host", value=_without_userinfo(self.host), expected=problem)
        if not _is_port(self.port):
            raise ConfigError(field="port", value=self.port, expected=_PORT)

    @classmethod
    def parse(cls, text: str) -> BrokerEndpoint:
        """Read ``host:port`` (or ``host``, port 61613; ``[v6addr]:port`` for IPv6).

        Surrounding whitespace is ignored. What cannot be one STOMP server is refused: a URL
        (``stomp://h:61613``, ``tcp://``, ``ssl://``: TLS is set with ``tls=TlsConfig(...)``), several
        addresses in one string (``a:1,b:2``: give a list of servers), an IPv6 address without brackets, an
        empty host, whitespace, a port that is not a number from 1 to 65535.

        Raises:
            ConfigError: Not one host with an optional port (field ``servers``; also a :class:`ValueError`).
                A ``user:password@`` in *text* is shown as ``***@``.
        """

        def refused(expected: str) -> ConfigError:
            return ConfigError(field="servers", value=_without_userinfo(text), expected=expected)

        if not isinstance(text, str):
            raise refused(f"{_ADDRESS}, as a str, or a BrokerEndpoint")
        address = text.strip()
        if "://" in address:
            raise refused(
                f"{_ADDRESS}; STOMP over TLS (stomp+ssl, ssl) is set with tls=TlsConfig(...), not a scheme"
            )
        if "," in address or ";" in address:
            raise refused(f"one address per server: give a list of servers, each {_ADDRESS}")
        if any(c.isspace() for c in address):
            raise refused(f"{_ADDRESS} without whitespace; several servers go in a list of servers")
        port = str(DEFAULT_STOMP_PORT)
        if address.startswith("["):
            host, bracket, rest = address[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise refused("[v6addr]:port: the IPv6 address in brackets, then ':' and the port")
            if rest:
                port = rest[1:]
        elif address.count(":") > 1:
            raise refused("host:port with one ':'; an IPv6 address goes in brackets: [v6addr]:port")
        else:
            host, colon, given = address.partition(":")
            if colon:
                port = given
        problem = _host_problem(host)
        if problem is not None:
            raise refused(problem)
        if not (port.isascii() and port.isdigit() and _is_port(int(port))):
            raise refused(f"host:port with {_PORT}")
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        """Return ``host:port``."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def _endpoints(value: Sequence[str | BrokerEndpoint] | str) -> tuple[BrokerEndpoint, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        raise ConfigError(
            field="servers", value=value, expected=f"a list of servers, each {_ADDRESS} or a BrokerEndpoint"
        )
    return tuple(v if isinstance(v, BrokerEndpoint) else BrokerEndpoint.parse(v) for v in value)


def _endpoint_key(server: BrokerEndpoint) -> tuple[str, int]:
    """Return what makes two servers the same: host (case, trailing dot, IPv6 spelling aside) and port."""
    host = ipaddress.IPv6Address(server.host).compressed if ":" in server.host else server.host
    return host.lower().rstrip("."), server.port


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
            raise ConfigError(
                field="key_file",
                value=str(self.key_file),
                expected="a TLS key file only together with its certificate file (cert_file)",
            )


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
    failover_after: int = 2
    """With several servers: after this many connections in a row to one server that ended before delivering
    a single message, the next server is tried first (a server that accepts but cannot serve, such as a
    standby bridge). A keep-alive watchdog expiry fails over at once. Each round of attempts tries every
    server, starting from the one that worked last."""
    wait: tenacity.wait.wait_base | None = field(default=None, eq=False)
    """A tenacity wait strategy that replaces the backoff above, e.g. ``tenacity.wait_fixed(5)`` or
    ``tenacity.wait_random_exponential(max=60)``; None: the backoff above."""
    stop: tenacity.stop.stop_base | None = field(default=None, eq=False)
    """A tenacity stop condition that replaces *max_attempts*, e.g. ``tenacity.stop_after_delay(3600)``
    (a stop by the application always ends the retries too); None: *max_attempts*."""

    def __attrs_post_init__(self) -> None:
        """Validate."""
        if not _is_number(self.initial_delay) or not self.initial_delay >= 0:
            raise ConfigError(field="initial_delay", value=self.initial_delay, expected="seconds >= 0")
        if not _is_number(self.max_delay) or not self.max_delay >= self.initial_delay:
            raise ConfigError(
                field="max_delay",
                value=self.max_delay,
                expected=f"seconds, at least initial_delay ({self.initial_delay!r}): "
                "0 <= initial_delay <= max_delay",
            )
        if not _is_number(self.jitter) or not self.jitter >= 0:
            raise ConfigError(field="jitter", value=self.jitter, expected="seconds >= 0")
        if not _is_number(self.multiplier) or not self.multiplier >= 1:
            raise ConfigError(field="multiplier", value=self.multiplier, expected="a number of at least 1")
        if self.max_attempts is not None and not (_is_integer(self.max_attempts) and self.max_attempts >= 1):
            raise ConfigError(
                field="max_attempts",
                value=self.max_attempts,
                expected="an integer of at least 1, or None to never give up",
            )
        if not _is_number(self.connect_timeout) or not self.connect_timeout > 0:
            raise ConfigError(field="connect_timeout", value=self.connect_timeout, expected="seconds > 0")
        if not (_is_integer(self.failover_after) and self.failover_after >= 1):
            raise ConfigError(
                field="failover_after", value=self.failover_after, expected="an integer of at least 1"
            )


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
    exclusive_header: str | None = None
    """The SUBSCRIBE header that makes a queue consumer exclusive (None: the broker has none)."""

    def connect_headers(self, client_id: str) -> dict[str, str]:
        """Return the CONNECT headers for *client_id*."""
        return {self.client_id_header: client_id}

    def subscribe_headers(
        self,
        *,
        selector: str,
        subscription_name: str | None,
        prefetch: int,
        message_size: int = 2048,
        exclusive: bool = False,
    ) -> dict[str, str]:
        """Return the SUBSCRIBE headers (selector, durable name if any, prefetch, exclusive if asked).

        Raises:
            ConfigError: *exclusive* was asked of a broker without an exclusive-consumer header.
        """
        window = prefetch * message_size if self.prefetch_in_bytes else prefetch
        headers = {"selector": selector, self.prefetch_header: str(window)}
        if subscription_name is not None:
            headers[self.durable_name_header] = subscription_name
        if exclusive:
            if self.exclusive_header is None:
                raise ConfigError(
                    field="exclusive",
                    value=True,
                    expected=f"False: {self.name} has no exclusive-consumer header",
                )
            headers[self.exclusive_header] = "true"
        return headers

    def remove_durable_headers(self, subscription_name: str) -> dict[str, str]:
        """Return the UNSUBSCRIBE headers that delete the durable subscription (after a plain UNSUBSCRIBE)."""
        return {self.durable_name_header: subscription_name}


ACTIVEMQ: Final = BrokerDialect(
    name="ActiveMQ Classic",
    client_id_header="client-id",
    durable_name_header="activemq.subscriptionName",
    prefetch_header="activemq.prefetchSize",
    exclusive_header="activemq.exclusive",
)
"""Apache ActiveMQ Classic (5.x): ``activemq.subscriptionName``, ``activemq.prefetchSize``,
``activemq.exclusive``."""
ARTEMIS: Final = BrokerDialect(
    name="ActiveMQ Artemis",
    client_id_header="client-id",
    durable_name_header="durable-subscription-name",
    prefetch_header="consumer-window-size",
    prefetch_in_bytes=True,
)
"""Apache ActiveMQ Artemis: ``durable-subscription-name``, ``consumer-window-size`` (bytes). An exclusive
queue is configured on the Artemis address, not by the consumer."""


_Validator = Callable[[object, "attrs.Attribute[Any]", object], None]


def _positive(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_number(value) or not value > 0:
        raise ConfigError(field=attribute.name, value=value, expected="seconds > 0")


def _at_least_one(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_number(value) or not value >= 1:
        raise ConfigError(field=attribute.name, value=value, expected="a number of at least 1")


def _at_least(minimum: float, what: str) -> _Validator:
    """Return a validator that refuses anything but a number of at least *minimum*, described as *what*."""

    def validate(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not _is_number(value) or not value >= minimum:
            raise ConfigError(field=attribute.name, value=value, expected=f"{what} >= {minimum!r}")

    return validate


def _above_one(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not _is_number(value) or not value > 1:
        raise ConfigError(field=attribute.name, value=value, expected="a number above 1")


def _positive_or_none(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        _positive(_instance, attribute, value)


def _heartbeats(_instance: object, _attribute: object, value: object) -> None:
    if not (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and len(value) == 2
        and all(_is_number(v) and v >= 0 for v in value)
    ):
        raise ConfigError(
            field="heartbeats",
            value=value,
            expected="two millisecond values >= 0, (send, receive); 0 turns one off",
        )


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@frozen(kw_only=True)
class ClientConfig:
    """Everything an :class:`NfmpClient` needs to know, validated on construction.

    Example::

        ClientConfig(servers=["nfmp-a:61613", "nfmp-b:61613"], username="oss",
                     password=os.environ["NFMP_PASSWORD"], client_id="oss1@1",
                     topic="5620-SAM-topic-xml", durable=True)

    Raises:
        ConfigError: A setting cannot work; the exception names it (``field``), the value and what would be
            accepted. Also a :class:`ValueError`.
    """

    servers: tuple[BrokerEndpoint, ...] = field(converter=_endpoints)
    """The STOMP servers in order of preference: the primary first, then the standby."""
    client_id: str = field(validator=lambda _i, _a, v: validate_client_id(v))
    """The OSS client id, ``name@ID``; it binds the durable subscription (:doc:`background <background>`,
    *Client ids and subscriptions*)."""
    username: str | None = None
    """The STOMP login."""
    password: str | None = field(default=None, repr=False)
    """The STOMP passcode; never logged or shown."""
    topic: str = DEFAULT_TOPIC
    """The NFM-P topic to subscribe to."""
    queue: str | None = None
    """A queue to consume instead of subscribing to *topic*: an application's own queue of a virtual topic
    that a JMS bridge feeds (``Consumer.<app>.VirtualTopic.5620-SAM-topic-xml`` on ActiveMQ). The queue keeps
    events while the client is away, as a durable subscription does; no client id is sent to the broker (see
    :doc:`deployment`)."""
    exclusive: bool = False
    """With *queue*: be the queue's exclusive consumer (``activemq.exclusive``), so that two instances of one
    application run active and standby. The standby waits without a watchdog or a resync until the broker
    hands it the queue; the continuity check then judges what it missed."""
    upstream_client_id: str | None = None
    """NFM-P's client id (``name@ID``) when the client reads NFM-P's events through a JMS bridge that holds
    that id upstream; None: *client_id* is NFM-P's client id. NFM-P addresses events, JmsMissedEvents and
    TerminateClientSession to it, so the selector and the addressee checks use it; *client_id* is then the
    client's own id on the local broker and names its state file."""
    durable: bool = True
    """A durable subscription (the server keeps events while the client is away)."""
    subscription_name: str | None = None
    """The durable subscription's name; the client id when None (this library's convention:
    :doc:`background <background>`, *Client ids and subscriptions*)."""
    filter: str = ""
    """An application selector for data events; system events always pass (see :func:`build_selector`)."""
    heartbeats: tuple[int, int] = field(default=(4_000, 4_000), validator=_heartbeats)
    """STOMP heart-beats in milliseconds: (we send every, we want to receive every); 0 turns one off. The
    client declares the path dead after *heartbeat_grace* times the second value of silence (10 s by default:
    :doc:`client`, *Noticing a dead connection*); the broker judges the client by the first."""
    heartbeat_grace: float = field(default=2.5, validator=_at_least_one)
    """Intervals of total silence from the broker after which the path is declared dead. ActiveMQ skips the
    heart-beat of an interval in which it sent a message, so up to two intervals of silence are normal: a
    grace below 2 turns a quiet but healthy connection into false timeouts (stomp.py's own 1.5 does). Measured
    on ActiveMQ: :doc:`background <background>` (*Heart-beats on ActiveMQ*)."""
    keepalive_timeout: float = field(default=DEFAULT_KEEPALIVE_TIMEOUT, validator=_positive)
    """Seconds without any message after which the connection is declared dead (Nokia: 120; NFM-P's keep-alive
    comes about every 30 s: :doc:`background <background>`, *Keep-alives*)."""
    continuity_check: bool = True
    """After each reconnect of a durable subscription (and a restart of the application), compare the server
    time of the first keep-alive received with the last one before: a gap of more than *keepalive_gap_factor*
    periods means the events of the gap were not kept, and asks for a resync (``KEEPALIVE_GAP``). Through a
    JMS bridge (*upstream_client_id* or *queue*) every gap between two keep-alives is judged. See
    :doc:`background <background>`, *The continuity check*."""
    keepalive_gap_factor: float = field(default=DEFAULT_GAP_FACTOR, validator=_above_one)
    """How many keep-alive periods a gap in the keep-alives may last before it counts as a hole."""
    keepalive_period: float | None = field(default=None, validator=_positive_or_none)
    """NFM-P's keep-alive period in seconds; None: learned from the stream (the median of the last intervals
    between keep-alives; Nokia says about 30 s)."""
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
    resync_coalesce_window: float = field(default=1.0, validator=_at_least(0, "seconds"))
    """Seconds the first trigger waits for others, so that what comes together becomes one request."""
    resync_min_interval: float = field(default=10.0, validator=_at_least(0, "seconds"))
    """The least number of seconds between two resync requests (spares the server a storm of retrievals)."""
    max_handler_failures: int = field(default=5, validator=_at_least(1, "a number of failures"))
    """How many times in a row the handler may raise on one message before it is given up: then
    ``Handler.on_undeliverable`` gets it, it is acknowledged (so the stream goes on), counted, and a resync
    (``UNDELIVERABLE``) is asked, because the application's copy lacks that event. Until then each failure
    reopens the connection after a growing delay, so that the broker delivers the message again, first."""
    hold_limit: int = field(default=100_000, validator=_at_least(1, "a number of events"))
    """Data events held during a resync (``HOLD_AND_REPLAY``); one more starts the resync over
    (``HOLD_OVERFLOW``) instead of growing memory without bound."""
    hold_limit_bytes: int = field(default=64 * 1024 * 1024, validator=_at_least(1, "a number of bytes"))
    """Bytes of held data events during a resync, counted on their messages as received (headers included);
    more starts the resync over (``HOLD_OVERFLOW``). The one of the two limits reached first counts. Held
    events are kept packed: measured, the hold takes about a third of this in memory (64 MiB of 2 KB alarms,
    17,600 events: 23 MB)."""
    resync_retry_max_delay: float = field(default=300.0, validator=_at_least(0, "seconds"))
    """The longest wait before a failed resync is asked again: the wait starts at ``resync_min_interval``
    and doubles with each failure in a row, up to this."""
    prefetch: int = 100
    """Unacknowledged messages the broker may send ahead. A message is acknowledged only once the handler
    returned, so this also bounds the messages waiting for the handler: a slow handler slows the stream down
    and the backlog waits on the broker, not in memory."""
    ack_batch: int = field(default=50, validator=_at_least(1, "a number of messages"))
    """Messages acknowledged together by one cumulative ACK (STOMP ``client`` mode: it acknowledges the
    message it names and every one before it on the subscription). What is owed is also acknowledged as soon
    as nothing more waits to be handled, after *ack_interval*, and before the client leaves a connection;
    never more than half the prefetch at a time, so that the broker keeps sending. Safe because messages are
    handled in order and a handler that raises makes the client reconnect without acknowledging: no message
    is acknowledged before every earlier one was handled. A crash leaves up to this many handled messages
    unacknowledged: they come again, and a restarted application sees them twice (within one run, the
    de-duplication drops them). 1: each message is acknowledged on its own (``client-individual``)."""
    ack_interval: float = field(default=0.5, validator=_at_least(0, "seconds"))
    """The longest time, in seconds, a handled message waits for its acknowledgement while the stream goes on
    (a slow handler, say); with nothing more to handle it is acknowledged at once."""
    dedup_window: int = DEFAULT_DEDUP_WINDOW
    """Message ids remembered to drop redeliveries of messages already handled; at least *prefetch*, so that
    every message that can be in flight is remembered."""
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    """Larger messages are reported as malformed without being parsed."""
    stomp_headers: Mapping[str, str] = field(factory=dict, hash=False)
    """Extra CONNECT headers (e.g. ``host`` for a broker that needs a virtual host)."""

    def __attrs_post_init__(self) -> None:
        """Validate what needs several fields."""
        if not self.servers:
            raise ConfigError(field="servers", value=[], expected=f"at least one server, {_ADDRESS}")
        seen: set[tuple[str, int]] = set()
        for server in self.servers:
            if _endpoint_key(server) in seen:
                raise ConfigError(
                    field="servers", value=str(server), expected="each server once (it is listed twice)"
                )
            seen.add(_endpoint_key(server))
        if (
            not isinstance(self.topic, str)
            or not self.topic
            or any(c.isspace() or c in "'\"" for c in self.topic)
        ):
            raise ConfigError(
                field="topic",
                value=self.topic,
                expected=f"a topic name without whitespace or quotes ({DEFAULT_TOPIC!r})",
            )
        if not _is_integer(self.prefetch) or self.prefetch < 1:
            raise ConfigError(field="prefetch", value=self.prefetch, expected="an integer of at least 1")
        if not _is_integer(self.ack_batch):
            raise ConfigError(field="ack_batch", value=self.ack_batch, expected="an integer of at least 1")
        if not _is_integer(self.dedup_window) or self.dedup_window < self.prefetch:
            raise ConfigError(
                field="dedup_window",
                value=self.dedup_window,
                expected=f"an integer of at least prefetch ({self.prefetch}): the dedup window must remember "
                "every message that can be in flight",
            )
        if not _is_integer(self.max_message_bytes) or self.max_message_bytes < 1:
            raise ConfigError(
                field="max_message_bytes", value=self.max_message_bytes, expected="a number of bytes >= 1"
            )
        if (self.username is None) != (self.password is None):
            raise ConfigError(
                field="username",
                value=self.username,
                expected="a username with a password: give both username and password, or neither",
            )
        if self.subscription_name is not None and not self.subscription_name.strip():
            raise ConfigError(
                field="subscription_name",
                value=self.subscription_name,
                expected="a name that is not blank, or None for the client id",
            )
        self._check_destination()
        if self.upstream_client_id is not None:
            try:
                validate_client_id(self.upstream_client_id)
            except ConfigError as exc:
                raise ConfigError(
                    field="upstream_client_id", value=self.upstream_client_id, expected=exc.expected
                ) from None
        if not isinstance(self.filter, str):
            raise ConfigError(field="filter", value=self.filter, expected="a JMS selector, '' for all events")
        try:
            build_selector(self.nfmp_client_id, self.filter)
        except ConfigError:
            raise
        except ValueError as exc:  # a structurally broken filter
            raise ConfigError(
                field="filter",
                value=self.filter,
                expected="a JMS selector with balanced parentheses and quotes, no ';' or '--' outside "
                f"string literals ({exc})",
            ) from exc

    def _check_destination(self) -> None:
        if self.queue is None:
            if self.exclusive:
                raise ConfigError(
                    field="exclusive",
                    value=True,
                    expected="False, or a queue: only a queue has one consumer at a time",
                )
            return
        if (
            not isinstance(self.queue, str)
            or not self.queue
            or any(c.isspace() or c in "'\"" for c in self.queue)
            or self.queue.startswith("/")
        ):
            raise ConfigError(
                field="queue",
                value=self.queue,
                expected="a queue name without whitespace, quotes or a leading '/queue/' "
                "('Consumer.<app>.VirtualTopic.5620-SAM-topic-xml'), or None for the topic",
            )
        if not self.durable:
            raise ConfigError(
                field="durable",
                value=False,
                expected="True with a queue: a queue keeps the events while the client is away",
            )
        if self.subscription_name is not None:
            raise ConfigError(
                field="subscription_name",
                value=self.subscription_name,
                expected="None with a queue: a queue has no durable subscription to name",
            )
        if self.exclusive and self.dialect.exclusive_header is None:
            raise ConfigError(
                field="exclusive",
                value=True,
                expected=f"False: {self.dialect.name} sets an exclusive queue on the broker, "
                "not the consumer",
            )

    @property
    def nfmp_client_id(self) -> str:
        """NFM-P's client id for this client (*upstream_client_id*, else *client_id*)."""
        return self.upstream_client_id or self.client_id

    @property
    def destination(self) -> str:
        """The STOMP destination subscribed to (``/queue/<queue>`` or ``/topic/<topic>``)."""
        return f"/queue/{self.queue}" if self.queue is not None else f"/topic/{self.topic}"

    @property
    def ack_every(self) -> int:
        """How many messages one acknowledgement covers (*ack_batch*, at most half the prefetch, >= 1)."""
        return max(1, min(self.ack_batch, self.prefetch // 2))

    @property
    def ack_mode(self) -> str:
        """The subscription's STOMP ``ack`` mode (``client``, cumulative, or ``client-individual``)."""
        return "client" if self.ack_every > 1 else "client-individual"

    @property
    def via_bridge(self) -> bool:
        """Whether NFM-P's events come through a JMS bridge (*upstream_client_id* or *queue* is set).

        NFM-P then greets the bridge's subscription, not this client's: no SystemInfoEvent is expected after
        each connection of the client's own (the continuity check covers its reconnections).
        """
        return self.upstream_client_id is not None or self.queue is not None

    @property
    def selector(self) -> str:
        """The subscription's JMS selector (own and broadcast events, the filter, system events always)."""
        return build_selector(self.nfmp_client_id, self.filter)

    @property
    def durable_name(self) -> str | None:
        """The durable subscription's name, or None for a non-durable subscription or a queue."""
        if not self.durable or self.queue is not None:
            return None
        return self.subscription_name or self.client_id
