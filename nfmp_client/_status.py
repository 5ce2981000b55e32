"""What the client tells the application about its connection: the state, and why a connection was lost.

Every way a connection can end becomes exactly one :class:`ConnectionLost` value with a :class:`LossReason`,
so an application branches on an enum, never on message text. Whether the client retries is part of the
value (``retryable``): a refused password is not retried in a tight loop; a client id the broker still holds
after a half-open drop is (the broker frees it once it notices the dead connection, after about four
heart-beat intervals on ActiveMQ).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime

from attrs import field, frozen

__all__ = [
    "ClientStatistics",
    "ConnectionLost",
    "ConnectionRestored",
    "ConnectionState",
    "Health",
    "HealthStatus",
    "LossReason",
]


class ConnectionState(enum.Enum):
    """Where the client's connection stands."""

    CONNECTING = "connecting"
    """The first connection is being made."""
    CONNECTED = "connected"
    """Subscribed; messages flow."""
    STALE = "stale"
    """Connected, but the server has been silent for longer than the keep-alive timeout; being torn down."""
    RECONNECTING = "reconnecting"
    """The connection was lost; waiting to retry, or retrying."""
    TERMINATED = "terminated"
    """An administrator ended the session (TerminateClientSession) and the policy is not to reconnect."""
    STOPPED = "stopped"
    """Stopped by the application, or gave up after the configured number of attempts."""


class LossReason(enum.Enum):
    """Why a connection ended (or could not be made)."""

    SOCKET_ERROR = "socket-error"
    """The TCP connection failed or was closed (reset, refused, unreachable, closed by the broker)."""
    HEARTBEAT_TIMEOUT = "heartbeat-timeout"
    """No STOMP heart-beat arrived in time: the path to the broker is dead (half-open)."""
    WATCHDOG_EXPIRED = "watchdog-expired"
    """No message at all for the keep-alive timeout: the server behind the broker is silent."""
    BROKER_ERROR = "broker-error"
    """The broker sent an ERROR frame."""
    CLIENT_ID_IN_USE = "client-id-in-use"
    """The broker still holds this client id (it has not noticed the previous connection died yet)."""
    AUTHENTICATION_FAILED = "authentication-failed"
    """The broker refused the login."""
    CONNECT_TIMEOUT = "connect-timeout"
    """Connecting (TCP, TLS, CONNECT or the subscription receipt) did not complete in time."""
    SESSION_TERMINATED = "session-terminated"
    """The server ended the session (TerminateClientSession)."""
    HANDLER_FAILED = "handler-failed"
    """The application's handler raised: the connection is reopened (after a backoff) so that the broker
    delivers the message again, and nothing after it is handled first."""
    RETURNING_TO_PRIMARY = "returning-to-primary"
    """The client left a standby on purpose: the primary answers again (see ``return_to_primary``)."""

    @property
    def retryable(self) -> bool:
        """Whether reconnecting can help without someone changing something first."""
        return self is not LossReason.AUTHENTICATION_FAILED


@frozen(kw_only=True)
class ConnectionLost:
    """A connection ended, or an attempt failed: passed to ``Handler.on_connection_lost``."""

    reason: LossReason
    """What happened."""
    detail: str
    """A human-readable explanation (the broker's message, the socket error); never a password."""
    server: str
    """The server (``host:port``) concerned."""
    at: datetime
    """When it was noticed (aware UTC)."""
    attempt: int = 0
    """For a failed reconnection attempt, its number in the current series (0: an established connection)."""

    @property
    def retryable(self) -> bool:
        """Whether the client will try again (unless its retry policy is exhausted)."""
        return self.reason.retryable


@frozen(kw_only=True)
class ConnectionRestored:
    """A connection is (again) up and subscribed: passed to ``Handler.on_connection_restored``."""

    server: str
    """The server (``host:port``) now connected."""
    at: datetime
    """When the subscription was confirmed (aware UTC)."""
    attempts: int
    """How many attempts it took since the loss (1 for the first connection)."""
    downtime: float
    """Seconds since the connection was lost (0 for the first connection)."""
    session: str = ""
    """The broker's session id for the connection, if it gave one."""


@frozen(kw_only=True)
class ClientStatistics:
    """Counts since the client was created: a snapshot from ``NfmpClient.statistics``."""

    messages: int = 0
    """Messages received from the server, of every kind, duplicates and malformed ones included."""
    events: int = 0
    """Data events handed to ``on_event`` that it handled without raising."""
    system_events: int = 0
    """System events (keep-alives included) handed to ``on_system_event``."""
    duplicates: int = 0
    """Redeliveries of already handled messages, dropped before the handler."""
    malformed: int = 0
    """Undecodable messages reported to ``on_malformed_message``."""
    undeliverable: int = 0
    """Messages given up after the handler raised on them ``max_handler_failures`` times in a row (handed to
    ``on_undeliverable`` and acknowledged; a resync follows)."""
    ignored_notices: int = 0
    """JmsMissedEvents, SystemInfoEvents and TerminateClientSession addressed to another client id,
    acknowledged and ignored."""
    handler_errors: int = 0
    """Callbacks that raised (for ``on_event``: the message is redelivered later)."""
    connections: int = 0
    """Connections made (subscribed), the first one included."""
    losses: int = 0
    """Established connections that ended (failed attempts are not counted here)."""
    failed_attempts: int = 0
    """Connection attempts that failed."""
    losses_by_reason: Mapping[str, int] = field(factory=dict)
    """Losses by :class:`LossReason` value (``heartbeat-timeout``, ``session-terminated``, ...)."""
    resyncs_by_reason: Mapping[str, int] = field(factory=dict)
    """Resync requests of this process by their main :class:`~nfmp_client.ResyncReason` value."""
    events_by_type: Mapping[str, int] = field(factory=dict)
    """Data events handed to ``on_event``, by class name (``ObjectCreation``, ...)."""
    handler_seconds: float = 0.0
    """Seconds spent in ``on_event`` in all."""
    handler_max_seconds: float = 0.0
    """The longest single ``on_event`` call."""
    queue_depth: int = 0
    """Messages decoded and waiting for the handler now."""
    seconds_since_last_message: float | None = None
    """Seconds since the last message of any kind (None: none yet)."""


class HealthStatus(enum.Enum):
    """Whether an application's copy of the server's state can be trusted now."""

    LIVE = "live"
    """Connected, in sync, messages coming."""
    SYNCING = "syncing"
    """Connected; a resync is due or under way."""
    STALE = "stale"
    """Connected, but the server has been silent for more than half the keep-alive timeout."""
    DOWN = "down"
    """Not connected."""
    STANDBY = "standby"
    """Connected as an exclusive consumer (``ClientConfig.exclusive``) that the broker has not handed the
    queue: another instance is active; this one's copy is not kept up to date until it takes over."""


@frozen(kw_only=True)
class Health:
    """The answer of ``NfmpClient.health()``."""

    status: HealthStatus
    """The verdict."""
    reason: str
    """Why, in words."""
    state: ConnectionState
    """The connection state behind it."""
