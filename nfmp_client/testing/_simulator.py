"""SimulatedServer: an NFM-P server on the wire, on top of a real ActiveMQ broker.

It publishes what NFM-P publishes (events encoded by the library's own codec, on the NFM-P topics, persistent
so durable subscribers keep them), sends keep-alives (in the same stream, stored for an absent durable
subscriber like any event, unless told otherwise), answers every new subscriber with a SystemInfoEvent
addressed to its client id, and plays the scenarios of Nokia's resync rules on demand: restart, activity
switch, missed events, overflow, terminated session, hung server.

It can also publish into ActiveMQ virtual topics (``VirtualTopic.5620-SAM-topic-xml``: what a JMS bridge
from NFM-P's JMS server may feed), whose consumers read queues
(``Consumer.<name>.VirtualTopic.5620-SAM-topic-xml``; see the ActiveMQ documentation, "Virtual
Destinations").

New subscribers are seen the way the broker sees them: through ActiveMQ's advisory topics, which are readable
over STOMP (``ActiveMQ.Advisory.Connection`` gives each connection's client id, and
``ActiveMQ.Advisory.Consumer.Topic.<topic>`` each subscription with its durable name and selector). Closing a
client's connection and removing its durable subscription, what the NFM-P administrator does, go through the
broker's JMX interface (:class:`~nfmp_client.testing.ActiveMQAdmin`).

A "restart" here keeps the broker process running: every client connection is closed by the broker and the
server identity (``sysStartTime``, ``jmsStartTime``) changes, which is what a client can observe of a real
restart. Tests that need the broker itself down use their own broker control, and tell the simulator with
:meth:`SimulatedServer.broker_restarted` (the broker is NFM-P's JMS server: its restart is a new
``jmsStartTime``); the simulator reconnects to the broker by itself.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import Any, Final, final

import stomp
from attrs import frozen

from .._codec import encode_event
from .._events import (
    DataEvent,
    Event,
    EventHeader,
    JmsMissedEvents,
    KeepAliveEvent,
    SystemInfoEvent,
    TerminateClientSession,
)
from .._exceptions import NfmpError
from .._transport import no_delay
from ._activemq import ActiveMQAdmin, BrokerAdminError
from ._model import EventGenerator, NetworkModel, ServerIdentity

__all__ = ["NFMP_TOPICS", "SimulatedServer", "SimulatorError", "Subscriber"]

log = logging.getLogger("nfmp_client.testing")

NFMP_TOPICS: Final = (
    "5620-SAM-topic-xml",
    "5620-SAM-topic-xml-fault",
    "5620-SAM-topic-xml-general",
    "5620-SAM-topic-xml-file",
    "5620-SAM-topic-xml-stats",
    "5620-SAM-topic-xml-filtered",
)
"""The NFM-P event topics: all events, then by kind (fault, general, file, stats), then the filtered one."""
MAIN_TOPIC: Final = NFMP_TOPICS[0]
_VIRTUAL_TOPIC: Final = "VirtualTopic."  # ActiveMQ's default prefix of virtual topics

_SYNC_DESTINATION = "/topic/nfmp-simulator.sync"  # nobody listens: only the receipt matters
_RETRY_PAUSE = 0.2  # seconds between connection attempts
_ADVISORY_CONNECTION = "/topic/ActiveMQ.Advisory.Connection"
_ADVISORY_CONSUMER = "/topic/ActiveMQ.Advisory.Consumer.Topic."
_SYSTEM_HEADERS: Final = {  # event name -> (MTOSI_objectType, MTOSI_NTType)
    "KeepAliveEvent": ("KeepAliveEvent", "NT_HEARTBEAT"),
    "SystemInfoEvent": ("StateChangeEvent", "ALA_OTHER"),
    "JmsMissedEvents": ("StateChangeEvent", "ALA_OTHER"),
    "TerminateClientSession": ("TerminateClientSession", "NT_STATE_CHANGE"),
}
_CATEGORY_TOPICS: Final = {
    "FAULT": "5620-SAM-topic-xml-fault",
    "STATISTICS": "5620-SAM-topic-xml-stats",
}


class SimulatorError(NfmpError):
    """The simulated server cannot do what was asked (not started, broker unreachable, no admin access)."""


@frozen(kw_only=True)
class Subscriber:
    """A subscription on an NFM-P topic, as the broker announced it."""

    client_id: str
    """The client id of the subscriber's connection (``name@ID`` for an NFM-P client)."""
    topic: str
    """The topic name, e.g. ``5620-SAM-topic-xml``."""
    subscription_name: str | None
    """The durable subscription's name; None for a non-durable subscription."""
    selector: str
    """The subscription's JMS selector ("" when none)."""
    consumer_id: str
    """The broker's id of this consumer (changes on every subscribe)."""

    @property
    def durable(self) -> bool:
        """Whether the subscription is durable."""
        return self.subscription_name is not None


class _Listener(stomp.ConnectionListener):  # type: ignore[misc]
    """Runs on stomp.py's receiver thread: only hands frames over to the simulator's worker.

    Advisories carry the number of their connection attempt, so the worker can tell the current connection's
    from those of a connection that is gone.
    """

    def __init__(self, inbox: queue.Queue[tuple[str, Any]], receipts: queue.Queue[str], serial: int) -> None:
        self._inbox = inbox
        self._receipts = receipts  # straight to the waiting publisher, which may be the worker itself
        self._serial = serial

    def on_message(self, frame: Any) -> None:
        self._inbox.put(("advisory", (self._serial, frame)))

    def on_receipt(self, frame: Any) -> None:
        self._receipts.put(frame.headers.get("receipt-id", ""))

    def on_error(self, frame: Any) -> None:
        log.warning("simulator: the broker sent an ERROR: %s", frame.headers.get("message", "(no message)"))

    def on_disconnected(self) -> None:
        self._inbox.put(("disconnected", None))


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@final
class SimulatedServer:
    """A simulated NFM-P server publishing through an ActiveMQ broker over STOMP.

    Use it as a context manager (or :meth:`start` / :meth:`stop`)::

        admin = ActiveMQAdmin(jmx_url)
        with SimulatedServer("127.0.0.1", 61613, admin=admin, keepalive_interval=0.5) as server:
            server.wait_for_subscriber("oss1@1")
            server.generate(10)
            server.restart()

    All intervals are in seconds and configurable, so tests run in fractions of a second.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 61613,
        *,
        admin: ActiveMQAdmin | None = None,
        model: NetworkModel | None = None,
        seed: int = 0,
        identity: ServerIdentity | None = None,
        keepalive_interval: float = 30.0,
        keepalive_persistent: bool = True,
        topics: Sequence[str] = NFMP_TOPICS,
        client_id: str = "nfmp-simulator",
        username: str | None = None,
        password: str | None = None,
        terminate_grace: float = 0.3,
        connect_timeout: float = 10.0,
    ) -> None:
        """Configure the server; nothing is connected before :meth:`start`.

        Args:
            host: The broker's STOMP host.
            port: The broker's STOMP port.
            admin: Broker-side controls; needed by :meth:`restart`, :meth:`switchover`, :meth:`terminate` and
                :meth:`remove_subscription`.
            model: The network model; a new one filled by the generator's :meth:`EventGenerator.populate`
                when None.
            seed: The seed of the event generator.
            identity: The server identity; started now at ``192.0.2.10`` when None.
            keepalive_interval: Seconds between KeepAliveEvents on every topic; 0 turns them off.
            keepalive_persistent: True: keep-alives are persistent without expiry, stored for an absent
                durable subscriber like any event (the model of NFM-P followed here: its keep-alives travel
                in the event stream). False: non-persistent, expiring after four intervals, for a server that
                does not store keep-alives for absent subscribers (a durable subscriber back from an absence
                finds none from it).
            topics: The topics to serve (keep-alives go to each): NFM-P topics, or ActiveMQ virtual topics
                named after them (``VirtualTopic.5620-SAM-topic-xml``). The welcome (a SystemInfoEvent when a
                subscriber appears) follows the broker's advisories of topic subscriptions: a subscriber on
                the virtual topic itself is welcomed, a consumer of one of its queues is not (through a JMS
                bridge, NFM-P welcomes the bridge's subscription, not each application behind it).
            client_id: The simulator's own client id on the broker (never closed by the scenarios).
            username: STOMP login, if the broker needs one.
            password: STOMP passcode (never logged).
            terminate_grace: Seconds between a TerminateClientSession and closing the client's connection.
            connect_timeout: Seconds to wait for the broker on start and on reconnects.
        """
        if keepalive_interval < 0 or terminate_grace < 0 or connect_timeout <= 0:
            raise ValueError(
                "intervals must be positive (keepalive_interval may be 0 to turn keep-alives off)"
            )
        unknown = {topic for topic in topics if _nfmp_topic(topic) not in NFMP_TOPICS}
        if unknown or not topics:
            raise ValueError(
                f"topics must be NFM-P topics among {NFMP_TOPICS} or virtual topics named after them "
                f"({_VIRTUAL_TOPIC}<topic>), got {sorted(unknown) or topics}"
            )
        self._host, self._port = host, port
        self._admin = admin
        if model is None:
            model = NetworkModel()
            self._generator = EventGenerator(model, seed=seed)
            self._generator.populate()
        else:
            self._generator = EventGenerator(model, seed=seed)
        self._model = model
        self._identity = identity or ServerIdentity.started_at(_utc_now())
        self._keepalive_interval = keepalive_interval
        self._keepalive_persistent = keepalive_persistent
        self._topics = tuple(topics)
        self._client_id = client_id
        self._credentials = (username, password)
        self._terminate_grace = terminate_grace
        self._connect_timeout = connect_timeout

        self._lock = threading.RLock()  # one publisher at a time; model changes and publishes stay in step
        self._inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._receipts: queue.Queue[str] = queue.Queue()
        self._conn: Any = None
        self._attempts = itertools.count(1)  # numbers each connection attempt (see _Listener)
        self._serial = 0  # the number of the attempt that made self._conn
        self._worker: threading.Thread | None = None
        self._running = False
        self._stopping = threading.Event()  # set by stop(): connection attempts give up at once
        self._away_since: float | None = None  # while the broker connection is lost: since when
        self._silent = threading.Event()
        self._rate = 0.0
        self._connections: dict[str, str] = {}  # broker connection id -> client id
        self._subscribers: dict[str, Subscriber] = {}  # consumer id -> active subscriber
        self._durable: dict[tuple[str, str], str] = {}  # (client id, subscription name) -> topic, seen ever
        self._missed_on_connect: set[str] = set()  # clients whose durable subscription was removed
        self._orphans: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # consumers of unknown connections
        self._welcomed: set[str] = set()  # consumer ids whose SystemInfoEvent has gone out
        self._subscribed = threading.Condition(self._lock)
        self.published = 0
        """The number of messages published so far (all topics, keep-alives included)."""

    # ------------------------------------------------------------------------------------------- life

    def __enter__(self) -> SimulatedServer:
        """Start the server."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop the server."""
        self.stop()

    def start(self) -> None:
        """Connect to the broker, watch its advisories and start keep-alives.

        Raises:
            SimulatorError: The broker cannot be reached within the connect timeout.
        """
        with self._lock:
            if self._running:
                return
            self._stopping.clear()
            self._connect()
            self._running = True
        self._worker = threading.Thread(target=self._work, name="nfmp-simulator", daemon=True)
        self._worker.start()
        log.info(
            "simulator: serving %s on %s:%s (sysStartTime %s, primary %s, keep-alive every %gs)",
            ", ".join(self._topics),
            self._host,
            self._port,
            self._identity.sys_start_time,
            self._identity.primary_ip,
            self._keepalive_interval,
        )

    def stop(self) -> None:
        """Stop keep-alives and the generator and disconnect; subscriptions on the broker stay as they are."""
        self._stopping.set()  # before the lock: a publisher reconnecting under it gives up first
        with self._lock:
            if not self._running:
                return
            self._running = False
        self._inbox.put(("stop", None))
        if self._worker is not None:
            self._worker.join(timeout=10)
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None and conn.is_connected():
            try:
                conn.disconnect(receipt=f"bye-{uuid.uuid4()}")
            except Exception:  # best effort: the broker may be gone already
                log.debug("simulator: disconnect failed", exc_info=True)
        log.info("simulator: stopped after %d messages", self.published)

    # ------------------------------------------------------------------------------------- observation

    @property
    def identity(self) -> ServerIdentity:
        """The server identity clients see in SystemInfoEvent."""
        return self._identity

    @property
    def model(self) -> NetworkModel:
        """The network model, the truth a resync must arrive at."""
        return self._model

    @property
    def client_id(self) -> str:
        """The simulator's own client id on the broker."""
        return self._client_id

    @property
    def silent(self) -> bool:
        """Whether the server is hung (see :meth:`silence`)."""
        return self._silent.is_set()

    def subscribers(self) -> list[Subscriber]:
        """Return the active subscriptions on the served topics (the simulator's own excluded)."""
        with self._lock:
            return list(self._subscribers.values())

    def wait_for_subscriber(
        self, client_id: str, *, topic: str | None = None, timeout: float = 10.0
    ) -> Subscriber:
        """Wait until *client_id* has an active subscription (on *topic*, if given), and return it.

        Its SystemInfoEvent has been published when this returns (while the server is silent, it waits for
        :meth:`resume`).

        Raises:
            SimulatorError: No such subscription within *timeout* seconds.
        """
        deadline = time.monotonic() + timeout
        with self._subscribed:
            while True:
                for sub in self._subscribers.values():
                    wanted = sub.client_id == client_id and (topic is None or sub.topic == topic)
                    if wanted and sub.consumer_id in self._welcomed:
                        return sub
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise SimulatorError(f"no subscription from {client_id!r} within {timeout:g} s")
                self._subscribed.wait(remaining)

    # -------------------------------------------------------------------------------------- publishing

    def publish(
        self, event: Event, *, topics: Iterable[str] | None = None, client_id: str | None = None
    ) -> None:
        """Publish *event* as NFM-P would, and apply it to the model if it is a data event.

        Args:
            event: The event.
            topics: Where to publish; by default ``5620-SAM-topic-xml`` and the topic of the event's category
                (``-fault`` for FAULT, ``-stats`` for STATISTICS, ``-general`` otherwise), among the served
                topics.
            client_id: Address the event to this client (``ALA_clientId``) instead of its header's.

        Raises:
            SimulatorError: The server is not running or the broker did not take the message.
        """
        with self._lock:
            self._model.apply(event)
            self._send(
                event, self._topics_for(event) if topics is None else tuple(topics), client_id=client_id
            )

    def generate(self, count: int = 1) -> list[DataEvent]:
        """Generate *count* events from the model, apply and publish each; return them."""
        events: list[DataEvent] = []
        with self._lock:
            for _ in range(count):
                event = self._generator.next_event()
                self.publish(event)
                events.append(event)
        return events

    def sync(self) -> None:
        """Wait until the broker has processed everything published so far.

        Publishing does not wait for the broker; a test that next acts on another connection (subscribes,
        reconnects) calls this first, since the broker orders frames per connection only.

        Raises:
            SimulatorError: The broker did not confirm in time.
        """
        receipt = f"sync-{uuid.uuid4()}"
        with self._lock:
            try:
                self._connection().send(_SYNC_DESTINATION, b"", headers={"receipt": receipt})
            except Exception as exc:  # stomp.py raises its own and OSError
                raise SimulatorError(f"cannot reach the broker: {exc}") from exc
            self._await_receipt(receipt)

    def set_rate(self, events_per_second: float) -> None:
        """Generate events continuously at this rate in the background; 0 stops it."""
        if events_per_second < 0:
            raise ValueError(f"the rate must be 0 or more events per second, got {events_per_second!r}")
        with self._lock:  # after this returns, no generated event is published at the old rate
            self._rate = events_per_second
        self._inbox.put(("wake", None))
        log.info("simulator: generating %g events/s", events_per_second)

    def send_system_info(self, client_id: str, *, topic: str | None = None) -> SystemInfoEvent:
        """Publish a SystemInfoEvent addressed to *client_id*.

        Args:
            client_id: The client.
            topic: The topic to publish on; by default each topic the client subscribes to (or the main one).
        """
        event = SystemInfoEvent(
            header=self._system_header("SystemInfoEvent", client_id),
            sys_start_time=self._identity.sys_start_time,
            jms_start_time=self._identity.jms_start_time,
            sys_primary_ip=self._identity.primary_ip,
        )
        with self._lock:
            self._send(event, (topic,) if topic else self._client_topics(client_id))
        log.info(
            "simulator: SystemInfoEvent to %s (sysStartTime %s, jmsStartTime %s, primary %s)",
            client_id,
            event.sys_start_time,
            event.jms_start_time,
            event.sys_primary_ip,
        )
        return event

    # ---------------------------------------------------------------------------------------- scenarios

    def missed_events(self, client_id: str) -> JmsMissedEvents:
        """Tell *client_id* that the server lost events for it (a JmsMissedEvents addressed to it)."""
        event = JmsMissedEvents(header=self._system_header("JmsMissedEvents", client_id))
        with self._lock:
            self._send(event, self._client_topics(client_id), confirm=True)
        log.info("simulator: JmsMissedEvents to %s", client_id)
        return event

    def overflow(self, client_id: str, count: int) -> list[DataEvent]:
        """Drop *count* events for *client_id* (really: it never gets them), then send it a JmsMissedEvents.

        The events change the model and reach every other known client (each gets them addressed to itself),
        as if the server's queue for this one client had overflowed. Returns the dropped events.
        """
        if count < 1:
            raise ValueError(f"overflow needs at least one event, got {count!r}")
        with self._lock:
            others = sorted({sub.client_id for sub in self._subscribers.values()} - {client_id})
            others += sorted({cid for cid, _ in self._durable} - set(others) - {client_id})
            dropped: list[DataEvent] = []
            for _ in range(count):
                event = self._generator.next_event()
                self._model.apply(event)
                for other in others:
                    self._send(event, self._topics_for(event), client_id=other)
                dropped.append(event)
            log.info(
                "simulator: %d events dropped for %s (delivered to %d other clients)",
                count,
                client_id,
                len(others),
            )
            self.missed_events(client_id)
        return dropped

    def terminate(self, client_id: str, *, remove: bool = False) -> None:
        """End *client_id*'s session as the NFM-P administrator does ("Close" or, with *remove*, "Remove").

        A TerminateClientSession addressed to the client is published, then the broker closes the client's
        connection. With *remove*, its durable subscriptions are deleted too, and on its next subscription the
        client gets a JmsMissedEvents (after its SystemInfoEvent).

        Raises:
            SimulatorError: No broker admin was configured, or the broker refused.
        """
        admin = self._require_admin("terminate")
        event = TerminateClientSession(
            header=self._system_header("TerminateClientSession", client_id), client_id=client_id
        )
        with self._lock:
            self._send(event, self._client_topics(client_id), confirm=True)
        durable = self._durable_subscriptions(admin, lambda cid: cid == client_id) if remove else []
        time.sleep(self._terminate_grace)  # let the broker dispatch it before the connection goes
        closed = self._admin_call(admin.close_connection, client_id)
        log.info("simulator: TerminateClientSession to %s; %d connection(s) closed", client_id, closed)
        if remove:
            self._forget_client(admin, client_id, durable)

    def remove_subscription(self, client_id: str) -> int:
        """Remove the subscriptions of *client_id*, a client that is away, as the NFM-P administrator does.

        Its durable subscriptions on the broker are deleted (with what is stored for them), and on its next
        subscription the client gets a JmsMissedEvents after its SystemInfoEvent, as with
        ``terminate(remove=True)`` but without a TerminateClientSession. If the client is connected after all,
        its connection is closed first. Returns how many subscriptions were removed.

        Raises:
            SimulatorError: No broker admin was configured, or the broker refused.
        """
        admin = self._require_admin("remove_subscription")
        durable = self._durable_subscriptions(admin, lambda cid: cid == client_id)
        with self._lock:
            connected = any(sub.client_id == client_id for sub in self._subscribers.values())
            seen = {name for cid, name in self._durable if cid == client_id}
        if seen - {name for _, name in durable}:
            # One that the client detached a moment ago can be in neither of the broker's lists: ask again.
            time.sleep(_RETRY_PAUSE)
            durable = self._durable_subscriptions(admin, lambda cid: cid == client_id)
        if connected:
            closed = self._admin_call(admin.close_connection, client_id)
            log.info("simulator: %s was connected: %d connection(s) closed", client_id, closed)
        return self._forget_client(admin, client_id, durable)

    def restart(self, *, keep_durable_subscriptions: bool = True) -> ServerIdentity:
        """Restart the server: every client connection dropped, new sysStartTime and jmsStartTime.

        Non-durable subscriptions go with their connections. Durable subscriptions (and their stored
        messages) are kept, or deleted when *keep_durable_subscriptions* is False. Returns the new identity.
        """
        admin = self._require_admin("restart")
        with self._lock:
            self._identity = self._identity.restarted(_utc_now())
        wiped = [] if keep_durable_subscriptions else self._durable_subscriptions(admin, self._not_own)
        closed = self._admin_call(admin.close_all_connections, except_client_ids=(self._client_id,))
        removed = self._remove_durables(admin, wiped)
        log.info(
            "simulator: restarted: %d client connection(s) dropped, %s; sysStartTime %s, jmsStartTime %s",
            closed,
            "durable subscriptions kept"
            if keep_durable_subscriptions
            else f"{removed} durable subscription(s) wiped",
            self._identity.sys_start_time,
            self._identity.jms_start_time,
        )
        return self._identity

    def switchover(self, primary_ip: str | None = None) -> ServerIdentity:
        """Switch activity: the standby becomes primary at *primary_ip*; returns the new identity.

        Every client is disconnected and unsubscribed (durable subscriptions deleted), as NFM-P does.
        """
        admin = self._require_admin("switchover")
        with self._lock:
            new_ip = primary_ip or _other_ip(self._identity.primary_ip)
            self._identity = self._identity.switched_over(new_ip)
        durable = self._durable_subscriptions(admin, self._not_own)
        closed = self._admin_call(admin.close_all_connections, except_client_ids=(self._client_id,))
        removed = self._remove_durables(admin, durable)
        log.info(
            "simulator: activity switch: primary is now %s; %d connection(s) dropped, "
            "%d durable subscription(s) removed",
            new_ip,
            closed,
            removed,
        )
        return self._identity

    def adopt(self, identity: ServerIdentity) -> None:
        """Serve as *identity* from now on; no connection or subscription is touched.

        Subscribers see it in their next SystemInfoEvent. For the standby of a redundant pair that takes over
        after the server on the other broker did :meth:`switchover` (both then share the new identity), or
        for a server whose broker the test restarted (see :meth:`broker_restarted`).
        """
        with self._lock:
            self._identity = identity
        log.info(
            "simulator: serving as sysStartTime %s, jmsStartTime %s, primary %s",
            identity.sys_start_time,
            identity.jms_start_time,
            identity.primary_ip,
        )

    def broker_restarted(self) -> ServerIdentity:
        """Take note that the test restarted the broker (NFM-P's JMS server); return the new identity.

        Only ``jmsStartTime`` changes (see :meth:`ServerIdentity.jms_restarted`). The simulator reconnects
        to the broker by itself, retrying for as long as the broker is away, and each subscription present
        after its reconnect is sent a SystemInfoEvent again. Call this while the broker is down or as soon as
        it is back: a client that subscribes before the call is told the old identity.
        """
        with self._lock:
            identity = self._identity.jms_restarted(_utc_now())
            self.adopt(identity)
        return identity

    def silence(self) -> None:
        """Hang: no keep-alives, generated events or SystemInfoEvents, while every connection stays open."""
        self._silent.set()
        log.info("simulator: silent (hung server: connections open, nothing sent)")

    def resume(self) -> None:
        """End :meth:`silence`; SystemInfoEvents held back meanwhile are sent now."""
        self._silent.clear()
        self._inbox.put(("wake", None))
        log.info("simulator: resumed")

    # ---------------------------------------------------------------------------------------- internals

    def _require_admin(self, scenario: str) -> ActiveMQAdmin:
        if self._admin is None:
            raise SimulatorError(
                f"the {scenario} scenario needs broker admin access: pass admin=ActiveMQAdmin(...)"
            )
        return self._admin

    @staticmethod
    def _admin_call(call: Any, *args: Any, **kwargs: Any) -> int:
        try:
            return int(call(*args, **kwargs))
        except BrokerAdminError as exc:
            raise SimulatorError(f"the broker refused: {exc}") from exc

    def _not_own(self, client_id: str) -> bool:
        return client_id != self._client_id

    def _durable_subscriptions(
        self, admin: ActiveMQAdmin, wanted: Callable[[str], bool]
    ) -> list[tuple[str, str]]:
        # Asked before the connections close: while the broker detaches a subscription it is briefly in
        # neither of its lists, so a listing taken afterwards can miss it.
        try:
            subs = admin.durable_subscriptions()
        except BrokerAdminError as exc:
            raise SimulatorError(f"the broker refused: {exc}") from exc
        return [(s.client_id, s.subscription_name) for s in subs if wanted(s.client_id)]

    def _remove_durables(self, admin: ActiveMQAdmin, subscriptions: list[tuple[str, str]]) -> int:
        # NFM-P removes a subscription server-side at once. Here the broker frees it only once its connection
        # is closed, and a client that reconnects quickly holds it in use again: the admin closes and removes
        # in one call, closing again while it re-attaches.
        for client_id, name in subscriptions:
            try:
                admin.remove_durable_subscription(client_id, name, force=True)
            except BrokerAdminError as exc:
                raise SimulatorError(
                    f"cannot remove the durable subscription {name!r} of {client_id}: {exc}"
                ) from exc
            with self._lock:
                self._durable.pop((client_id, name), None)
        return len(subscriptions)

    def _forget_client(self, admin: ActiveMQAdmin, client_id: str, durable: list[tuple[str, str]]) -> int:
        # The administrator's "Remove": the subscriptions go, and the client is told it missed events when it
        # subscribes again (NFM-P's own bookkeeping of its clients). Marked before and again after: a client
        # that re-subscribes while the removal runs may be told on the subscription about to go.
        with self._lock:
            self._missed_on_connect.add(client_id)
        removed = self._remove_durables(admin, durable)
        with self._lock:
            self._missed_on_connect.add(client_id)
        log.info(
            "simulator: durable subscriptions of %s removed: %s", client_id, [n for _, n in durable] or "none"
        )
        return removed

    def _system_header(self, event_name: str, client_id: str) -> EventHeader:
        # The header values of IBM's replay scripts (its public NFM-P pack, ``alu5620sam_datastage``).
        object_type, nt_type = _SYSTEM_HEADERS[event_name]
        now = _utc_now()
        return EventHeader(
            event_name=event_name,
            object_type=object_type,
            nt_type=nt_type,
            category="GENERAL",
            client_id=client_id,
            os_time=now.replace(microsecond=now.microsecond // 1000 * 1000),
        )

    def _topics_for(self, event: Event) -> tuple[str, ...]:
        wanted = {MAIN_TOPIC, _CATEGORY_TOPICS.get(event.header.category, "5620-SAM-topic-xml-general")}
        return tuple(t for t in self._topics if _nfmp_topic(t) in wanted) or (self._topics[0],)

    def _client_topics(self, client_id: str) -> tuple[str, ...]:
        topics = {sub.topic for sub in self._subscribers.values() if sub.client_id == client_id}
        topics |= {topic for (cid, _), topic in self._durable.items() if cid == client_id}
        return tuple(sorted(topics)) or (self._topics[0],)

    def _send(
        self, event: Event, topics: Iterable[str], *, client_id: str | None = None, confirm: bool = False
    ) -> None:
        message = encode_event(event)
        headers = dict(message.headers)
        if client_id is not None:
            headers["ALA_clientId"] = client_id
        persistent = self._keepalive_persistent or not isinstance(event, KeepAliveEvent)
        headers["persistent"] = "true" if persistent else "false"
        if not persistent and self._keepalive_interval > 0:
            # Keep-alives as news only while fresh: they do not pile up for offline durable subscribers.
            headers["expires"] = str(int(time.time() * 1000 + 4000 * self._keepalive_interval))
        conn = self._connection()
        for topic in topics:
            receipt = f"pub-{uuid.uuid4()}" if confirm else None
            try:
                conn.send(
                    f"/topic/{topic}",
                    message.body,
                    headers=dict(headers, **({"receipt": receipt} if receipt else {})),
                )
            except Exception as exc:  # stomp.py raises its own and OSError
                raise SimulatorError(f"cannot publish to {topic}: {exc}") from exc
            if receipt is not None:
                self._await_receipt(receipt)
            self.published += 1
            log.debug(
                "simulator: %s to %s%s", type(event).__name__, topic, f" for {client_id}" if client_id else ""
            )

    def _await_receipt(self, receipt: str) -> None:
        deadline = time.monotonic() + self._connect_timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SimulatorError("the broker did not confirm a publish in time")
            try:
                got = self._receipts.get(timeout=remaining)
            except queue.Empty:
                continue
            if got == receipt:
                return

    def _connection(self) -> Any:
        if not self._running and self._conn is None:
            raise SimulatorError("the simulated server is not running: call start() first")
        if self._conn is None or not self._conn.is_connected():
            self._connect()
        return self._conn

    def _connect(self) -> None:
        # Under the lock: a publisher that needs the connection now waits for it.
        if not self._open():
            raise SimulatorError("the simulated server is stopping")

    def _open(self, *, reconnect: bool = False) -> bool:
        """Connect within the connect timeout and install the connection; False when no longer needed.

        Each attempt holds the lock until its connection is installed, so two never overlap: the broker
        refuses a CONNECT under a client id that a connection holds ("already connected"), and an attempt
        made beside another one that got through would be refused for as long as that one lives, unused.
        Between attempts the lock is free unless the caller holds it: the worker waits for the broker
        without blocking publishers. Gives up (False) once :meth:`stop` was called and, with *reconnect*,
        once the connection is no longer lost (a publisher reconnected).

        Raises:
            SimulatorError: No connection within the connect timeout.
        """
        deadline = time.monotonic() + self._connect_timeout
        username, password = self._credentials
        while True:
            with self._lock:
                if self._stopping.is_set() or (reconnect and not self._lost()):
                    return False
                serial = next(self._attempts)
                # No sleep inside stomp.py after a refused attempt (the lock is held): the pause is below.
                conn = stomp.Connection12(
                    [(self._host, self._port)],
                    heartbeats=(0, 0),
                    reconnect_attempts_max=1,
                    reconnect_sleep_initial=0,
                )
                conn.set_listener("simulator", _Listener(self._inbox, self._receipts, serial))
                try:
                    conn.connect(username, password, wait=True, headers={"client-id": self._client_id})
                except Exception as exc:  # noqa: BLE001  # any failure: retry until the deadline
                    failure = type(exc).__name__
                else:
                    no_delay(conn.transport)  # each event goes out at once, not after a delayed ACK
                    self._install(conn, serial)
                    return True
            if time.monotonic() > deadline:
                raise SimulatorError(
                    f"cannot connect to the broker at {self._host}:{self._port} as {self._client_id!r}: "
                    f"{failure}"
                )
            time.sleep(_RETRY_PAUSE)

    def _install(self, conn: Any, serial: int) -> None:
        """Make *conn* the connection (under the lock) and watch the advisories through it.

        What was tracked through an earlier connection is dropped: the advisories replay the connections and
        subscriptions the broker has now, and each subscription among them is welcomed again (a broker that
        restarted has none of the old ones; a client that reconnected has a new consumer id).
        """
        self._serial = serial
        self._conn = conn
        if self._away_since is not None:
            away, self._away_since = time.monotonic() - self._away_since, None
            log.info(
                "simulator: reconnected to the broker at %s:%s after %.1f s", self._host, self._port, away
            )
        self._connections.clear()
        self._subscribers.clear()
        self._orphans.clear()
        self._welcomed.clear()
        conn.subscribe(_ADVISORY_CONNECTION, id="adv-connections", ack="auto")
        for topic in self._topics:
            conn.subscribe(_ADVISORY_CONSUMER + topic, id=f"adv-{topic}", ack="auto")

    def _reconnect(self) -> bool:
        """Reconnect after the connection was lost; False when the broker is still away (retry later)."""
        try:
            self._open(reconnect=True)
        except SimulatorError as exc:
            log.debug("simulator: %s; retrying", exc)  # said once, when the connection was lost
            return False
        return True

    def _lost(self) -> bool:
        # Running without a connection. Not once a publisher reconnected (it needed the connection first).
        conn = self._conn
        return self._running and (conn is None or not conn.is_connected())

    # The worker thread: advisories, receipts, keep-alives and the generator's ticks.

    def _work(self) -> None:
        next_keepalive = time.monotonic()
        next_event = time.monotonic()
        reconnect_at: float | None = None  # while the connection is lost: when to try again
        pending_info: list[Subscriber] = []
        while True:
            now = time.monotonic()
            rate = self._rate  # read once: set_rate() may change it meanwhile
            if reconnect_at is not None:
                deadlines = [reconnect_at]
            elif self._silent.is_set():
                deadlines = []  # nothing is sent: wait for an advisory, resume() or stop()
            else:
                deadlines = [next_keepalive] if self._keepalive_interval > 0 else []
                if rate > 0:
                    deadlines.append(next_event)
            timeout = max(0.0, min(deadlines) - now) if deadlines else None
            try:
                kind, item = self._inbox.get(timeout=timeout)
            except queue.Empty:
                kind, item = "tick", None
            if kind == "stop":
                return
            try:
                if kind == "advisory":
                    pending_info.extend(self._advisory(*item))
                if reconnect_at is None and self._lost():
                    # Noticed here rather than by a keep-alive that would wait for the broker under the lock.
                    # A "disconnected" notice wakes the worker for it (an old connection's finds a live one).
                    self._away("the connection was lost")
                    reconnect_at = time.monotonic()
                if reconnect_at is not None:
                    reconnect_at = self._reconnect_when_due(reconnect_at)
                    if reconnect_at is not None:
                        continue  # nothing is sent until the broker is back
                if self._silent.is_set():
                    continue
                while pending_info:
                    self._welcome(pending_info.pop(0))
                now = time.monotonic()
                if self._keepalive_interval > 0 and now >= next_keepalive:
                    self._send_keepalives()
                    next_keepalive = now + self._keepalive_interval
                if rate > 0 and now >= next_event:
                    with self._lock:
                        if self._rate > 0:
                            self.generate(1)
                    next_event = max(next_event + 1 / rate, now - 1.0)
                elif rate <= 0:
                    next_event = now
            except Exception as exc:  # noqa: BLE001  # the server's heartbeat must not die with one failure
                if self._running:
                    self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        # The broker went away under a publish: one line per outage. Anything else is a bug: its traceback.
        if isinstance(exc, SimulatorError) and self._lost():
            self._away(str(exc))
        elif isinstance(exc, SimulatorError):
            log.warning("simulator: %s; continuing", exc)
        else:
            log.exception("simulator: background work failed; continuing")

    def _away(self, why: str) -> None:
        """Say once per outage that the broker is away (the retries that follow are logged at DEBUG)."""
        if self._away_since is not None:
            log.debug("simulator: %s", why)
            return
        self._away_since = time.monotonic()
        log.warning(
            "simulator: lost the broker at %s:%s (%s); retrying until it is back", self._host, self._port, why
        )

    def _reconnect_when_due(self, reconnect_at: float) -> float | None:
        """Reconnect if it is time to; return when to try again, None once connected.

        A failed round is retried, however long the broker stays away.
        """
        if time.monotonic() < reconnect_at:
            return reconnect_at
        return None if self._reconnect() else time.monotonic() + _RETRY_PAUSE

    def _send_keepalives(self) -> None:
        with self._lock:
            # Stamped (MTOSI_osTime) once the lock and the connection are there: the time it is sent.
            self._connection()
            event = KeepAliveEvent(header=self._system_header("KeepAliveEvent", ""))
            self._send(event, self._topics)

    def _welcome(self, sub: Subscriber) -> None:
        self.send_system_info(sub.client_id, topic=sub.topic)
        with self._lock:
            missed = sub.client_id in self._missed_on_connect
            self._missed_on_connect.discard(sub.client_id)
        if missed:
            self.missed_events(sub.client_id)
        with self._lock:
            self._welcomed.add(sub.consumer_id)
            self._subscribed.notify_all()

    def _advisory(self, serial: int, frame: Any) -> list[Subscriber]:
        """Track connections and subscriptions; return the subscriptions that just started.

        An advisory that came through an earlier connection of the simulator is ignored: the current one's
        advisories replayed what is still there.
        """
        try:
            body = json.loads(frame.body)
        except (TypeError, ValueError):
            log.warning("simulator: unreadable advisory on %s", frame.headers.get("destination"))
            return []
        topic = frame.headers.get("destination", "").removeprefix(_ADVISORY_CONSUMER)
        started: list[Subscriber] = []
        with self._lock:
            if serial != self._serial:
                return []
            if "ConnectionInfo" in body:
                info = body["ConnectionInfo"]
                connection_id = info["connectionId"]["value"]
                self._connections[connection_id] = info.get("clientId") or ""
                # A consumer advisory that overtook its connection's advisory waited for this.
                for waiting_topic, consumer in self._orphans.pop(connection_id, []):
                    started.extend(self._subscription(waiting_topic, consumer))
            elif "ConsumerInfo" in body:
                info = body["ConsumerInfo"]
                connection_id = info["consumerId"]["connectionId"]
                if connection_id in self._connections:
                    started.extend(self._subscription(topic, info))
                else:
                    self._orphans.setdefault(connection_id, []).append((topic, info))
            elif "RemoveInfo" in body:
                removed = body["RemoveInfo"]["objectId"]
                if removed.get("@class") == "ConsumerId":
                    gone = self._subscribers.pop(_consumer_key(removed), None)
                    if gone is not None:
                        self._welcomed.discard(gone.consumer_id)
                        log.info("simulator: %s unsubscribed from %s", gone.client_id, gone.topic)
                elif removed.get("@class") == "ConnectionId":
                    self._connections.pop(removed.get("value", ""), None)
                    self._orphans.pop(removed.get("value", ""), None)
        return started

    def _subscription(self, topic: str, info: dict[str, Any]) -> list[Subscriber]:
        client_id = self._connections[info["consumerId"]["connectionId"]]
        if not client_id or client_id == self._client_id:
            return []
        selector = (info.get("selector") or "").removeprefix("convert_string_expressions:")
        sub = Subscriber(
            client_id=client_id,
            topic=topic,
            subscription_name=info.get("subscriptionName"),
            selector=selector,
            consumer_id=_consumer_key(info["consumerId"]),
        )
        self._subscribers[sub.consumer_id] = sub
        if sub.subscription_name is not None:
            self._durable[(client_id, sub.subscription_name)] = topic
        log.info(
            "simulator: %s subscribed to %s (%s, selector %r)",
            client_id,
            topic,
            f"durable {sub.subscription_name!r}" if sub.durable else "non-durable",
            selector,
        )
        return [sub]


def _nfmp_topic(topic: str) -> str:
    """Return the NFM-P topic that *topic* is, or that the virtual topic *topic* is named after."""
    return topic.removeprefix(_VIRTUAL_TOPIC)


def _consumer_key(consumer: dict[str, Any]) -> str:
    return f"{consumer.get('connectionId')}:{consumer.get('sessionId')}:{consumer.get('value')}"


def _other_ip(ip: str) -> str:
    head, _, last = ip.rpartition(".")
    try:
        return f"{head}.{int(last) % 254 + 1}"
    except ValueError:
        return "192.0.2.11"
