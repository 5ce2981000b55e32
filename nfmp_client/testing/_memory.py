"""MemoryBroker: an ActiveMQ-like broker in memory that speaks the transport Protocol, for virtual-time tests.

The supervisor's tests run on a :class:`~nfmp_client.testing.FakeClock`, to the millisecond, with no thread
and no sleep. They need a broker that behaves like ActiveMQ Classic where the client can tell (durable
subscriptions and their backlog, acknowledgement and redelivery, prefetch, a client id held by another
connection, ERROR frames, a CONNECTED that comes late or never, a silent path) and that answers at once, on
the caller's thread:

* :class:`MemoryBroker` is a :class:`~nfmp_client.engine.TransportFactory`: give it to the client in place
  of the stomp.py transport. It holds the servers, each made on first use by :meth:`MemoryBroker.server`;
  a server nobody asked for refuses every connection.
* :class:`MemoryServer` is one server: a test publishes to it and switches its faults (refuse, hang, hold,
  reject logins, silence heart-beats, drop every connection) and looks at it as an administrator would.
* :class:`MemoryTransport` is one connection, made by the client through the broker.

Everything is synchronous: a report is handed to the transport's sink by the call that caused it (the test's
``publish``, the client's ``open`` or ``ack``), in order; nothing runs in the background. One lock guards
the whole broker, so a supervisor thread and a test thread may both call it; sinks are called with that lock
held (they only enqueue, as the Protocol requires). The conformance suite
(``tests/test_transport_conformance.py``) runs the same cases against this broker and a real ActiveMQ.
"""

from __future__ import annotations

import enum
import itertools
import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Final, final

from attrs import evolve, field, frozen

from .._clock import Clock
from .._config import BrokerEndpoint, ClientConfig
from .._engine import AttemptFailed, FrameReceived, Lost, Opened, TransportReport
from .._status import LossReason
from .._transport import _classify_error
from ._activemq import BrokerAdminError

__all__ = ["MemoryBroker", "MemoryServer", "MemoryTransport"]

_SUBSCRIPTION_ID: Final = "nfmp"  # as StompTransport subscribes
_REFUSED: Final = "connection refused"


class _State(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"  # open() called, CONNECTED not given yet (the server hangs or holds)
    OPEN = "open"
    ENDED = "ended"


@frozen(kw_only=True)
class _Copy:
    """One published message as stored for one subscription."""

    message_id: str
    body: bytes
    headers: Mapping[str, str] = field(hash=False)
    redelivered: bool = False


class _Subscription:
    """A subscription's store: delivered-and-unacknowledged messages, then the ones not delivered yet."""

    def __init__(self, client_id: str, name: str | None) -> None:
        self.client_id = client_id
        self.name = name  # None: non-durable (exists only while its connection does)
        self.stored: deque[_Copy] = deque()
        self.in_flight: dict[str, _Copy] = {}  # ack id -> message, in delivery order
        self.consumer: MemoryTransport | None = None
        self.waiting: list[MemoryTransport] = []  # a queue's other consumers, in arrival order

    def count(self) -> int:
        return len(self.stored) + len(self.in_flight)


@final
class MemoryBroker:
    """A broker in memory that speaks the transport Protocol; its servers are found by endpoint.

    Give it to the client as its transport factory; every connection the client makes goes to the
    :class:`MemoryServer` of the endpoint it names (see :meth:`server`).

    Example::

        clock = FakeClock()
        broker = MemoryBroker(clock)
        primary = broker.server("nfmp-a:61613")
        client = NfmpClient(config, handler, clock=clock, transport=broker, runner=ManualRunner(clock))
        ...
        primary.publish(b"<event/>", {"ALA_clientId": ""})
        primary.drop()    # every connection reports Lost(SOCKET_ERROR)
    """

    def __init__(self, clock: Clock | None = None) -> None:
        """Make a broker with no server yet.

        Args:
            clock: The clock its connections read: arrival times, heart-beat silence and deadlines. Give it
                the client's clock; None: each connection reads the clock of the client that made it.
        """
        self._clock = clock
        self._lock = threading.RLock()
        self._servers: dict[BrokerEndpoint, MemoryServer] = {}
        self._transports: list[MemoryTransport] = []
        self._message_ids = itertools.count(1)
        self._sessions = itertools.count(1)
        self._outbox: deque[tuple[MemoryTransport, TransportReport]] = deque()
        self._flushing = False

    def __call__(
        self,
        config: ClientConfig,
        server: BrokerEndpoint,
        *,
        epoch: int,
        sink: Callable[[TransportReport], None],
        clock: Clock,
    ) -> MemoryTransport:
        """Return a new, unopened connection to *server* (a :class:`~nfmp_client.engine.TransportFactory`).

        Args:
            config: The client configuration (client id, topic, durable name, prefetch, heart-beats).
            server: Where the connection goes; a server never passed to :meth:`server` refuses it.
            epoch: The connection's number; every report carries it.
            sink: Receives the reports, on the thread of the call that caused each.
            clock: The client's clock (used unless the broker was given one).
        """
        transport = MemoryTransport(
            self, config, server, epoch=epoch, sink=sink, clock=clock if self._clock is None else self._clock
        )
        with self._lock:
            self._transports.append(transport)
        return transport

    def server(self, endpoint: str | BrokerEndpoint) -> MemoryServer:
        """Return the server at *endpoint* (``host:port``), made on first use, accepting connections.

        Raises:
            ConfigError: *endpoint* is not ``host:port``.
        """
        key = endpoint if isinstance(endpoint, BrokerEndpoint) else BrokerEndpoint.parse(endpoint)
        with self._lock:
            found = self._servers.get(key)
            if found is None:
                found = self._servers[key] = MemoryServer(self, key)
            return found

    @property
    def transports(self) -> list[MemoryTransport]:
        """Every connection made so far, in order, ended ones included (a copy)."""
        with self._lock:
            return list(self._transports)

    def open_transports(self) -> list[MemoryTransport]:
        """Return the connections that reported :class:`~nfmp_client.engine.Opened` and have not ended."""
        with self._lock:
            return [t for t in self._transports if t._state is _State.OPEN]

    def __repr__(self) -> str:
        """Show the servers and how many connections are open."""
        with self._lock:
            servers = ", ".join(str(s) for s in self._servers)
            return f"<MemoryBroker servers=[{servers}] open={len(self.open_transports())}>"

    # -------------------------------------------------------------------------------- internals

    def _find(self, endpoint: BrokerEndpoint) -> MemoryServer | None:
        return self._servers.get(endpoint)

    def _next_message_id(self) -> str:
        return f"ID:mem-{next(self._message_ids)}"

    def _next_session(self) -> str:
        return f"mem-{next(self._sessions)}"

    def _emit(self, transport: MemoryTransport, report: TransportReport) -> None:
        self._outbox.append((transport, report))

    def _flush(self) -> None:
        # Reports go out in the order they were made; a sink that calls back (an ack from the sink) only
        # queues more, which this loop then hands out: no recursion, no report overtaking another.
        if self._flushing:
            return
        self._flushing = True
        try:
            while self._outbox:
                transport, report = self._outbox.popleft()
                if not transport._muted:
                    transport._sink(report)
        finally:
            self._flushing = False


@final
class MemoryServer:
    """One server of a :class:`MemoryBroker`: what a test publishes to, breaks and inspects.

    It keeps durable subscriptions by (client id, subscription name), as ActiveMQ does: messages published
    while the client is away are stored, and messages delivered but not acknowledged when a connection ends go
    back to the front of the store, to be delivered again first. A non-durable subscription lives only as
    long as its connection. A client configured with a ``queue`` consumes that queue, which (like an ActiveMQ
    virtual topic's queue) exists from its first consumer on and gets a copy of every message published from
    then on; its consumers take turns as exclusive consumers do (the first one gets everything, the next one
    when it leaves: no load balancing here). Made by :meth:`MemoryBroker.server`, never directly.
    """

    def __init__(self, broker: MemoryBroker, endpoint: BrokerEndpoint) -> None:
        """Serve *endpoint* for *broker* (internal: use :meth:`MemoryBroker.server`)."""
        self._broker = broker
        self._lock = broker._lock
        self.endpoint: Final = endpoint
        """Where the server listens."""
        self._refusing = False
        self._hanging = False
        self._holding = False
        self._login_error: str | None = None
        self._silent = False
        self._open: dict[str, MemoryTransport] = {}  # client id -> its open connection
        self._hung: list[MemoryTransport] = []
        self._held: list[MemoryTransport] = []
        self._durables: dict[tuple[str, str], _Subscription] = {}
        self._live: list[_Subscription] = []  # the non-durable subscriptions of open connections
        self._queues: dict[str, _Subscription] = {}
        self.acks = 0
        """ACK frames that acknowledged something, over all connections (cumulative ones count once)."""

    # ------------------------------------------------------------------------------ faults

    def refuse(self) -> None:
        """Refuse new connections: ``open()`` reports ``Lost(SOCKET_ERROR)`` at once; side operations fail.

        Open connections are not touched (see :meth:`drop`).
        """
        with self._lock:
            self._refusing = True

    def accept(self) -> None:
        """Accept and answer new connections again (undoes :meth:`refuse` and :meth:`hang`).

        A connection that hung stays unanswered: its CONNECT was lost; the client's timeout ends it.
        """
        with self._lock:
            self._refusing = self._hanging = False

    def hang(self) -> None:
        """Never answer CONNECT: ``open()`` reports nothing; side operations fail (``CONNECT_TIMEOUT``).

        The client's connect timeout ends such a connection (with ``abort()``); :meth:`drop` ends it too.
        """
        with self._lock:
            self._hanging = True

    def hold(self) -> None:
        """Withhold CONNECTED from new connections until :meth:`release` (a late answer).

        Side operations fail meanwhile (``CONNECT_TIMEOUT``): they cannot wait for the release.
        """
        with self._lock:
            self._holding = True

    def release(self) -> None:
        """Stop holding, and answer each held connection now, in the order they were opened.

        Each one proceeds as if CONNECT had just arrived (it may be refused for its login or its client id),
        reports :class:`~nfmp_client.engine.Opened` and gets its backlog, unless it was aborted or closed
        meanwhile: such a connection reports nothing and never holds its client id.
        """
        with self._lock:
            self._holding = False
            held, self._held = self._held, []
            for transport in held:
                if transport._state is _State.CONNECTING and not transport._muted:
                    self._proceed(transport)
            self._broker._flush()

    def reject_logins(self, message: str | None) -> None:
        """Answer CONNECT with an ERROR frame carrying *message*, as a broker refusing a login does.

        The connection reports ``Lost`` with the reason StompTransport gives that message (e.g.
        ``"User name [oss] or password is invalid."``: ``AUTHENTICATION_FAILED``); ``probe()`` and
        ``remove_subscription()`` raise ``AttemptFailed`` with that reason. None: accept logins again.
        """
        with self._lock:
            self._login_error = message

    def silence_heartbeats(self) -> None:
        """Stop the heart-beats of every open connection (a silent, half-open path).

        From now on each connection's ``heartbeat_deadline()`` stays fixed at the moment of silence plus
        ``heartbeats[1]`` x ``heartbeat_grace``, so it passes as the clock moves on; nothing is reported (the
        client notices by its deadline). Connections opened while silent are silent from their opening.
        """
        with self._lock:
            self._silent = True
            for transport in self._open.values():
                transport._silence()

    def resume_heartbeats(self) -> None:
        """Heart-beats flow again: every open connection's deadline is one grace period ahead of the clock."""
        with self._lock:
            self._silent = False
            for transport in self._open.values():
                transport._silent_since = None

    def drop(
        self, reason: LossReason = LossReason.SOCKET_ERROR, detail: str = "the connection was closed"
    ) -> None:
        """End every connection of this server, as a crash or an administrator's "Close Session" does.

        Each open connection, and each one still waiting for CONNECTED (hung or held), reports
        ``Lost(reason, detail)``. Unacknowledged messages go back to their durable subscription, to be
        delivered again first.
        """
        with self._lock:
            for transport in [*self._open.values(), *self._hung, *self._held]:
                self._end(transport, Lost(epoch=transport.epoch, reason=reason, detail=detail))
            self._broker._flush()

    # ------------------------------------------------------------------------------ traffic

    def publish(self, body: bytes | str, headers: Mapping[str, str] | None = None) -> str:
        """Publish one message to the topic: every subscription of this server gets a copy.

        Durable subscriptions keep it while their client is away; connected ones get it at once, within
        their prefetch. A server has one topic: neither topic names nor selectors are evaluated, every
        subscription matches.

        Args:
            body: The body (a str is encoded as UTF-8).
            headers: Message headers (JMS properties such as ``ALA_clientId``, ``MTOSI_objectType``);
                ``message-id``, ``ack``, ``subscription`` and ``destination`` are the broker's.

        Returns:
            The message id, unique across the broker (``ID:mem-<n>``); it is also the ``ack`` header.
        """
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        with self._lock:
            message_id = self._broker._next_message_id()
            copy = _Copy(message_id=message_id, body=data, headers=dict(headers or {}))
            subscriptions = [*self._durables.values(), *self._live, *self._queues.values()]
            for subscription in subscriptions:
                subscription.stored.append(copy)
            for subscription in subscriptions:
                self._pump(subscription)
            self._broker._flush()
            return message_id

    # ------------------------------------------------------------------------------ inspection

    def subscriptions(self) -> dict[tuple[str, str], int]:
        """Return the durable subscriptions: (client id, name) -> messages stored (undelivered + unacked)."""
        with self._lock:
            return {key: sub.count() for key, sub in self._durables.items()}

    def remove_subscription(self, client_id: str, name: str) -> None:
        """Delete a durable subscription and its stored messages, as an administrator would.

        Raises:
            BrokerAdminError: It does not exist, or its client is connected ("Durable consumer is in use"),
                as :meth:`ActiveMQAdmin.remove_durable_subscription` does.
        """
        with self._lock:
            subscription = self._durables.get((client_id, name))
            if subscription is None:
                raise BrokerAdminError(f"no durable subscription {name!r} of client {client_id!r}")
            if subscription.consumer is not None:
                raise BrokerAdminError(
                    f"Durable consumer is in use for client: {client_id} and subscriptionName: {name}"
                )
            del self._durables[(client_id, name)]

    def queues(self) -> dict[str, int]:
        """Return the queues: name -> messages stored (undelivered + unacknowledged)."""
        with self._lock:
            return {name: queue.count() for name, queue in self._queues.items()}

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages, as an administrator (or a broker that lost its store) would.

        Its consumers stay subscribed to a new, empty queue of the same name.

        Raises:
            BrokerAdminError: There is no such queue.
        """
        with self._lock:
            queue = self._queues.pop(name, None)
            if queue is None:
                raise BrokerAdminError(f"no queue {name!r}")
            if queue.consumer is not None or queue.waiting:
                fresh = self._queues[name] = _Subscription("", name)
                fresh.consumer, fresh.waiting = queue.consumer, queue.waiting
                for transport in [*([queue.consumer] if queue.consumer else []), *queue.waiting]:
                    transport._subscription = fresh

    def connections(self) -> list[str]:
        """Return the client ids of the open connections (CONNECTED given, not ended), in opening order."""
        with self._lock:
            return list(self._open)

    def __repr__(self) -> str:
        """Show the endpoint, the faults in force and the open connections."""
        with self._lock:
            faults = [
                name
                for name, on in (
                    ("refusing", self._refusing),
                    ("hanging", self._hanging),
                    ("holding", self._holding),
                    ("rejecting logins", self._login_error is not None),
                    ("silent", self._silent),
                )
                if on
            ]
            return f"<MemoryServer {self.endpoint} {', '.join(faults) or 'accepting'} open={len(self._open)}>"

    # ------------------------------------------------------------------------------ internals

    def _connect(self, transport: MemoryTransport) -> None:
        """TCP is up and CONNECT sent: answer it, or hang, or hold it."""
        if self._refusing:
            self._end(transport, Lost(epoch=transport.epoch, reason=LossReason.SOCKET_ERROR, detail=_REFUSED))
        elif self._hanging:
            self._hung.append(transport)
        elif self._holding:
            self._held.append(transport)
        else:
            self._proceed(transport)

    def _proceed(self, transport: MemoryTransport) -> None:
        """CONNECT arrived: log in, check the client id, subscribe, report Opened and deliver the backlog."""
        config = transport.config
        if self._login_error is not None:
            lost = Lost(
                epoch=transport.epoch, reason=_classify_error(self._login_error), detail=self._login_error
            )
            self._end(transport, lost)
            return
        holder = self._open.get(config.client_id)
        if holder is not None and config.queue is None:
            in_use = Lost(epoch=transport.epoch, reason=LossReason.CLIENT_ID_IN_USE, detail=_in_use(holder))
            self._end(transport, in_use)
            return
        name = config.durable_name
        if config.queue is not None:
            subscription = self._queues.setdefault(config.queue, _Subscription("", config.queue))
        elif name is None:
            subscription = _Subscription(config.client_id, None)
            self._live.append(subscription)
        else:
            key = (config.client_id, name)
            if transport._fresh:
                self._durables.pop(key, None)
            subscription = self._durables.setdefault(key, _Subscription(config.client_id, name))
        self._open[_key(transport)] = transport
        if subscription.consumer is None:
            subscription.consumer = transport
        else:
            subscription.waiting.append(transport)  # a queue's next consumer
        transport._subscription = subscription
        transport._state = _State.OPEN
        transport._session = self._broker._next_session()
        if self._silent:
            transport._silence()
        self._broker._emit(transport, Opened(epoch=transport.epoch, session=transport._session))
        self._pump(subscription)

    def _pump(self, subscription: _Subscription) -> None:
        """Deliver stored messages to the subscription's connection, up to its prefetch."""
        consumer = subscription.consumer
        if consumer is None:
            return
        while subscription.stored and len(subscription.in_flight) < consumer.config.prefetch:
            copy = subscription.stored.popleft()
            subscription.in_flight[copy.message_id] = copy
            consumer._deliver(copy)

    def _ack(self, transport: MemoryTransport, ack_id: str) -> None:
        # ``client`` mode (cumulative): the message and every one delivered before it; ``client-individual``:
        # that one. An id that is not in flight acknowledges nothing, in either mode.
        subscription = transport._subscription
        if subscription is None or ack_id not in subscription.in_flight:
            return
        self.acks += 1
        if transport.config.ack_mode == "client":
            in_flight = subscription.in_flight
            for earlier in list(in_flight):
                del in_flight[earlier]
                if earlier == ack_id:
                    break
        else:
            del subscription.in_flight[ack_id]
        self._pump(subscription)

    def _end(self, transport: MemoryTransport, lost: Lost | None, *, remove_durable: bool = False) -> None:
        """End *transport*'s connection (reporting *lost*, if any); unacknowledged messages go back."""
        if transport._state is _State.OPEN:
            if self._open.get(_key(transport)) is transport:
                del self._open[_key(transport)]
            subscription = transport._subscription
            if subscription is not None and transport in subscription.waiting:
                subscription.waiting.remove(transport)
            elif subscription is not None:
                subscription.consumer = None
                returned = [evolve(copy, redelivered=True) for copy in subscription.in_flight.values()]
                subscription.in_flight.clear()
                subscription.stored.extendleft(reversed(returned))
                if transport.config.queue is not None:
                    if subscription.waiting:  # the queue goes to its next consumer
                        subscription.consumer = subscription.waiting.pop(0)
                        self._pump(subscription)
                elif subscription.name is None:
                    self._live.remove(subscription)
                elif remove_durable:
                    key = (subscription.client_id, subscription.name)
                    if self._durables.get(key) is subscription:
                        del self._durables[key]
            transport._subscription = None
        for waiting in (self._hung, self._held):
            if transport in waiting:
                waiting.remove(transport)
        transport._state = _State.ENDED
        if lost is not None:
            self._broker._emit(transport, lost)

    def _side_failure(self, transport: MemoryTransport, *, with_client_id: bool) -> AttemptFailed | None:
        """Why a blocking side operation (a probe, a removal) fails now; None if it succeeds."""
        config = transport.config
        if self._refusing:
            return AttemptFailed(LossReason.SOCKET_ERROR, _REFUSED, self.endpoint)
        if self._hanging or self._holding:
            detail = f"no CONNECTED within {config.retry.connect_timeout:g} s"
            return AttemptFailed(LossReason.CONNECT_TIMEOUT, detail, self.endpoint)
        if self._login_error is not None:
            return AttemptFailed(_classify_error(self._login_error), self._login_error, self.endpoint)
        holder = self._open.get(config.client_id)
        if with_client_id and holder is not None:
            return AttemptFailed(LossReason.CLIENT_ID_IN_USE, _in_use(holder), self.endpoint)
        return None


def _key(transport: MemoryTransport) -> str:
    # Open connections by client id (one each, as ActiveMQ enforces); a queue's consumers send none.
    config = transport.config
    return config.client_id if config.queue is None else f"{config.client_id}#{transport.epoch}"


def _in_use(holder: MemoryTransport) -> str:
    # ActiveMQ's words for a client id held by another connection, which StompTransport classifies.
    return f"Broker: memory - Client: {holder.config.client_id} already connected from {holder.session}"


@final
class MemoryTransport:
    """One connection to a :class:`MemoryServer` (a :class:`nfmp_client.engine.Transport`).

    Made by :class:`MemoryBroker`, never directly. It reports to its sink on the thread of the call that
    caused the report, and nothing once :meth:`abort` or :meth:`close` was called.
    """

    def __init__(
        self,
        broker: MemoryBroker,
        config: ClientConfig,
        server: BrokerEndpoint,
        *,
        epoch: int,
        sink: Callable[[TransportReport], None],
        clock: Clock,
    ) -> None:
        """Prepare a connection to *server* of *broker* (internal: the broker is the factory)."""
        self._broker = broker
        self._lock = broker._lock
        self.config: Final = config
        """The client configuration it was made with."""
        self._server = server
        self._epoch = epoch
        self._sink = sink
        self._clock = clock
        self._state = _State.NEW
        self._muted = False  # closed or aborted by its owner: report nothing more
        self._fresh = False
        self._session = ""
        self._subscription: _Subscription | None = None
        self._silent_since: float | None = None

    @property
    def server(self) -> BrokerEndpoint:
        """Where this connection goes."""
        return self._server

    @property
    def epoch(self) -> int:
        """The connection's number; every report carries it."""
        return self._epoch

    @property
    def session(self) -> str:
        """The session id the server gave (``mem-<n>``); "" before it opened."""
        return self._session

    def open(self, *, fresh: bool = False) -> None:
        """Connect: report ``Opened`` then the backlog, or ``Lost``, or (hung, held) nothing yet.

        A server that refuses, or was never made with :meth:`MemoryBroker.server`, reports
        ``Lost(SOCKET_ERROR)`` at once; a client id that has an open connection on the server,
        ``Lost(CLIENT_ID_IN_USE)``; rejected logins, ``Lost`` with the reason of the ERROR message. With
        *fresh*, the durable subscription of this name is deleted first, with what it stored. Only the first
        call does anything.
        """
        with self._lock:
            if self._state is not _State.NEW or self._muted:
                return
            self._state = _State.CONNECTING
            self._fresh = fresh
            server = self._broker._find(self._server)
            if server is None:
                lost = Lost(epoch=self._epoch, reason=LossReason.SOCKET_ERROR, detail=_REFUSED)
                self._state = _State.ENDED
                self._broker._emit(self, lost)
            else:
                server._connect(self)
            self._broker._flush()

    def ack(self, ack_id: str) -> None:
        """Acknowledge one message by its ``ack`` header: the next stored one follows; ignored once ended."""
        with self._lock:
            if self._state is not _State.OPEN or self._muted:
                return
            server = self._broker._find(self._server)
            if server is not None:
                server._ack(self, ack_id)
            self._broker._flush()

    def heartbeat_deadline(self) -> float | None:
        """When the server's heart-beats are overdue: one grace period after the server fell silent.

        While heart-beats flow it is always one grace period (``heartbeats[1]`` x ``heartbeat_grace``) ahead
        of the clock. None when the connection is not open, or heart-beats from the broker are off.
        """
        receive_ms = self.config.heartbeats[1]
        with self._lock:
            if not receive_ms or self._state is not _State.OPEN or self._muted:
                return None
            window = receive_ms / 1000 * self.config.heartbeat_grace
            since = self._clock.monotonic() if self._silent_since is None else self._silent_since
            return since + window

    def close(self, *, remove_durable: bool = False) -> None:
        """Disconnect gracefully; the durable subscription stays unless *remove_durable*; nothing is reported.

        Unacknowledged messages go back to the durable subscription, to be delivered again first.

        Raises:
            AttemptFailed: *remove_durable* was asked for a durable subscription and the connection is not
                open (the removal cannot be confirmed: use :meth:`remove_subscription`).
        """
        with self._lock:
            was_open = self._state is _State.OPEN and not self._muted
            self._muted = True
            server = self._broker._find(self._server)
            if server is not None:
                server._end(self, None, remove_durable=remove_durable)
            self._state = _State.ENDED
            if remove_durable and not was_open and self.config.durable_name is not None:
                raise AttemptFailed(
                    LossReason.SOCKET_ERROR,
                    "not connected: the removal of the durable subscription cannot be confirmed",
                    self._server,
                )

    def abort(self) -> None:
        """End the connection at once, one in progress included; nothing more is reported."""
        with self._lock:
            self._muted = True
            server = self._broker._find(self._server)
            if server is not None:
                server._end(self, None)
            self._state = _State.ENDED

    def remove_subscription(self) -> None:
        """Delete the durable subscription of the client id, as a separate short connection would.

        Nothing is reported. Deleting a subscription that does not exist succeeds (as on ActiveMQ).

        Raises:
            AttemptFailed: The server refuses (``SOCKET_ERROR``), does not answer (``CONNECT_TIMEOUT``),
                rejects the login, or the client id is connected (``CLIENT_ID_IN_USE``).
        """
        with self._lock:
            server = self._broker._find(self._server)
            if server is None:
                raise AttemptFailed(LossReason.SOCKET_ERROR, _REFUSED, self._server)
            failure = server._side_failure(self, with_client_id=True)
            if failure is not None:
                raise failure
            name = self.config.durable_name
            if name is not None:
                server._durables.pop((self.config.client_id, name), None)

    def probe(self) -> None:
        """Check that the server accepts a login, without the client id; nothing is reported.

        Raises:
            AttemptFailed: The server refuses, does not answer, or rejects the login.
        """
        with self._lock:
            server = self._broker._find(self._server)
            if server is None:
                raise AttemptFailed(LossReason.SOCKET_ERROR, _REFUSED, self._server)
            failure = server._side_failure(self, with_client_id=False)
            if failure is not None:
                raise failure

    def __repr__(self) -> str:
        """Show the epoch, the server and the state."""
        return f"<MemoryTransport #{self._epoch} {self._server} {self._state.value}>"

    # -------------------------------------------------------------------------------- internals

    def _deliver(self, copy: _Copy) -> None:
        headers = {
            **copy.headers,
            "message-id": copy.message_id,
            "ack": copy.message_id,
            "subscription": _SUBSCRIPTION_ID,
            "destination": self.config.destination,
        }
        if copy.redelivered:
            headers["redelivered"] = "true"
        report = FrameReceived(epoch=self._epoch, headers=headers, body=copy.body, at=self._clock.monotonic())
        self._broker._emit(self, report)

    def _silence(self) -> None:
        if self._silent_since is None:
            self._silent_since = self._clock.monotonic()
