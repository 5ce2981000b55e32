"""The supervisor: the one owner of the connection, the resync state and the application's callbacks.

Everything that happens to the client arrives in the supervisor's inbox, from whichever thread it happens on:
the transport's reports (the subscription is up, a message, the connection ended), the application's verdict
on a resync, the answer of a check whether the primary is back, a request to stop. The supervisor takes one
item at a time, or, when there is none, does what is due on the client's clock: give up on a connect that
takes too long, reconnect after a backoff, declare a silent connection dead (the keep-alive watchdog, the
broker's heart-beats), ask for a resync, check the primary. Its loop body is :meth:`Supervisor.step`; a runner
calls it (a thread in production, a test step by step on a fake clock).

Nothing else touches the transport, the resync coordinator, the state store or the callbacks, so none of them
needs a lock, and the lifecycle has one order of events: a stop takes effect between two steps, a connection
that comes up after a stop is never adopted, a callback never runs after the client stopped.

Failover: a round of attempts tries each server once, starting with the one that worked last (across process
restarts too: the persisted baseline names it). The next server is preferred after the keep-alive watchdog
expired on a connection (the broker is alive, the server behind it silent), or after
``RetryPolicy.failover_after`` connections in a row on one server ended before delivering anything.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from typing import Final, Union, final

import tenacity
from attrs import frozen

from ._clock import Clock, MonotonicClock, utc_now
from ._codec import EventCodec
from ._config import BrokerEndpoint, ClientConfig, TerminatePolicy
from ._coordinator import ResyncCoordinator, Settled, answer
from ._delivery import COUNTERS, Decoded, Delivery, HandOverAbandoned, Terminate, Verdict
from ._engine import (
    AttemptFailed,
    FrameBatch,
    FrameReceived,
    Lost,
    Opened,
    Transport,
    TransportFactory,
    TransportReport,
)
from ._events import DataEvent, Event, TerminateClientSession
from ._exceptions import (
    ClientFailed,
    ClientStopped,
    MalformedMessage,
    SessionTerminated,
    SubscriptionRemovalFailed,
)
from ._resync import ResyncRequest
from ._status import ClientStatistics, ConnectionLost, ConnectionRestored, ConnectionState, LossReason
from ._watchdog import KeepAliveWatchdog

__all__ = ["GIVING_UP", "Supervisor"]

log = logging.getLogger("nfmp_client")

GIVING_UP: Final = "%s: giving up: %s: %s"
"""The log line (client id, reason, detail) of a client that gave up reconnecting (nfmp-client filters it)."""

_INF: Final = float("inf")
_HEADER_BYTES: Final = 64  # what a header costs, on average, as counted against hold_limit_bytes
_BUSY_CHECK: Final = 0.01  # seconds between looks at the deadlines while messages keep coming


@frozen
class _PrimaryAnswer:
    """The check whether the primary is back, made while connection *epoch* was on a standby."""

    epoch: int
    ok: bool
    detail: str


@frozen
class _Wake:
    """Nothing but a reason to look at the stop request."""


@frozen
class _Crashed:
    """A callback run beside the loop (the resync's) raised what stops the client."""

    error: BaseException


_Item = Union[Decoded, Opened, Lost, Settled, _PrimaryAnswer, _Wake, _Crashed]
_Post = Union[_Item, "list[Decoded]"]  # what goes into the inbox: an item, or the messages of one read


class _Phase(enum.Enum):
    IDLE = "idle"  # not started
    CONNECTING = "connecting"  # a transport is opening
    CONNECTED = "connected"  # subscribed
    WAITING = "waiting"  # until the next round of attempts
    FINISHED = "finished"  # stopped, for whatever reason


@final
class _Inbox:
    """Items from any thread for the supervisor, in order.

    A C queue carries them (one put and one get per item, no Python lock; the messages of one read from the
    socket travel as one list, taken apart here); a blocking wait on the real clock is the queue's own. Any
    other clock (a test's) waits on an event that is set only while someone waits on it, so the stream pays
    nothing for it.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[_Post] = queue.SimpleQueue()
        self._held: deque[_Item] = deque()  # taken off the queue, not handled yet
        self._ready = threading.Event()
        self._watched = False
        self._count_lock = threading.Lock()
        self._in_lists = 0  # the messages in the lists on the queue, beyond one per list (see __len__)

    def put(self, item: _Post) -> None:
        if type(item) is list:
            with self._count_lock:
                self._in_lists += len(item) - 1
        self._queue.put(item)
        if self._watched:  # read after the put: a waiter that set it checks the queue after setting it
            self._ready.set()

    def pop(self) -> _Item | None:
        if self._held:
            return self._held.popleft()
        try:
            item = self._queue.get_nowait()
        except queue.Empty:
            return None
        if type(item) is list:
            self._unpack(item)
            return self._held.popleft()
        return item  # type: ignore[return-value]  # not a list: an item

    def _unpack(self, items: list[Decoded]) -> None:
        self._held.extend(items)
        with self._count_lock:
            self._in_lists -= len(items) - 1

    def wait(self, clock: Clock, timeout: float | None) -> None:
        if self._held or not self._queue.empty():
            return
        if isinstance(clock, MonotonicClock):
            with suppress(queue.Empty):
                item = self._queue.get(timeout=timeout)
                if type(item) is list:
                    self._unpack(item)
                else:
                    self._held.append(item)  # type: ignore[arg-type]  # not a list: an item
            return
        self._watched = True
        self._ready.clear()
        try:
            if self._queue.empty():
                clock.wait(self._ready, timeout)
        finally:
            self._watched = False

    def clear(self) -> None:
        self._held.clear()
        while self.pop() is not None:
            pass

    def __len__(self) -> int:
        # The items waiting, a list of messages counted as its messages.
        return len(self._held) + self._queue.qsize() + self._in_lists


@final
class Supervisor:
    """Runs one client: connects, fails over, delivers, resyncs, stops.

    Every method runs on its loop, except :meth:`begin` and those said to be safe from any thread.
    """

    def __init__(
        self,
        config: ClientConfig,
        handler: object,
        *,
        clock: Clock,
        transport_factory: TransportFactory,
        spawn: Callable[[Callable[[], None], str], None],
    ) -> None:
        """Prepare; nothing happens before :meth:`begin`.

        Args:
            config: The client configuration.
            handler: The application's :class:`~nfmp_client.Handler`.
            clock: The client's clock.
            transport_factory: Makes each connection.
            spawn: Runs side work beside the loop (the primary check, the application's retrieval).
        """
        self._config = config
        self._handler = handler
        self._clock = clock
        self._factory = transport_factory
        self._spawn = spawn
        self._inbox = _Inbox()
        self._codec = EventCodec(max_message_bytes=config.max_message_bytes)
        self._counts: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self._losses_by_reason: dict[str, int] = {}
        self.resync = ResyncCoordinator(config, ask=self._ask_resync, settle=self._inbox.put)
        """The resync coordinator (read it from any thread; only the loop changes it)."""
        self._delivery = Delivery(
            config,
            call=self._call,
            resync=self.resync,
            counts=self._counts,
            clock=clock.monotonic,
            last_error=lambda: self._last_error,
        )
        self._watchdog = KeepAliveWatchdog(config.keepalive_timeout)
        self._stop_requested = threading.Event()
        self._remove_durable = False
        self._state = ConnectionState.STOPPED
        self.state_changed = threading.Condition()
        """Notified on every state change."""
        self._phase = _Phase.IDLE
        self._transport: Transport | None = None
        self._epoch = 0
        self._connect_deadline = _INF
        self._wait_until = _INF
        self._order: list[int] = []
        self._position = 0
        self._rounds_failed = 0
        self._series_started = 0.0
        self._series_attempts = 0
        self._preferred = 0
        self._server_index = 0
        self._empty_losses = 0
        self._delivered = False
        # An exclusive consumer subscribed, not handed the queue yet; and the server its durable state was on
        # before, if it moved (judged once it is handed the queue).
        self._standby = False
        self._standby_moved_from: str | None = None
        self._lost_at: float | None = None
        self._last_loss: ConnectionLost | None = None
        self._last_error: BaseException | None = None  # what the last callback that raised raised
        self._probe_at = _INF
        self._probing = False
        self._replay_failing = ("", 0)  # the replayed message the handler raised on, and how often in a row
        self._early: list[Decoded] = []  # messages of the connection being made, before its confirmation
        self._next_check = -_INF  # when the deadlines are looked at next while messages keep coming
        self._idle_until: float | None = None  # the deadline the last idle step found
        self._waiting_since: float | None = None  # when the last step found messages waiting in the inbox
        self._last_message_at: float | None = None
        self.failure: BaseException | None = None
        """Why the client stopped by itself (see :attr:`NfmpClient.failure`), or None."""
        self.removal_error: SubscriptionRemovalFailed | None = None
        """Why the durable subscription could not be removed at the last stop, if it was asked."""

    # -------------------------------------------------------------------- read from any thread

    @property
    def state(self) -> ConnectionState:
        """The connection state now."""
        return self._state

    @property
    def last_loss(self) -> ConnectionLost | None:
        """The most recent connection loss or failed attempt, or None."""
        return self._last_loss

    @property
    def finished(self) -> bool:
        """Whether the loop has ended."""
        return self._phase in (_Phase.FINISHED, _Phase.IDLE)

    @property
    def stopping(self) -> bool:
        """Whether a stop was requested and has not taken effect yet."""
        return self._stop_requested.is_set() and not self.finished

    @property
    def last_message_at(self) -> datetime | None:
        """When the last message of any kind arrived (aware UTC), or None."""
        since = self.since_last_message()
        return None if since is None else utc_now() - timedelta(seconds=since)

    def since_last_message(self) -> float | None:
        """Seconds since the last message of any kind, or None."""
        last = self._last_message_at
        return None if last is None else max(0.0, self._clock.monotonic() - last)

    def statistics(self) -> ClientStatistics:
        """Return a snapshot of the counters."""
        return ClientStatistics(
            **self._counts,
            losses_by_reason=dict(self._losses_by_reason),
            resyncs_by_reason=self.resync.requests_by_reason(),
            events_by_type=dict(self._delivery.events_by_type),
            handler_seconds=self._delivery.handler_seconds,
            handler_max_seconds=self._delivery.handler_max,
            queue_depth=len(self._inbox),
            seconds_since_last_message=self.since_last_message(),
        )

    # ------------------------------------------------------------------ safe from any thread

    def request_stop(self, *, remove_durable: bool) -> None:
        """Ask the loop to stop (and delete the durable subscription); it does so at its next step."""
        self._remove_durable = self._remove_durable or remove_durable
        self._stop_requested.set()
        self._inbox.put(_Wake())

    def receive(self, report: TransportReport) -> None:
        """Take a transport's report (the sink): decode a message here, on the transport's thread; enqueue.

        Decoding here (bounded: ``max_message_bytes``) rather than on the loop keeps the two threads from
        taking turns on the GIL for every message; only the application's code, unbounded, stays off it.
        """
        if isinstance(report, FrameReceived):
            self._inbox.put(self._decode(report))
        elif isinstance(report, FrameBatch):
            self._inbox.put([self._decode(frame) for frame in report.frames])
        else:
            self._inbox.put(report)

    def _decode(self, frame: FrameReceived) -> Decoded:
        headers = frame.headers
        message_id = headers.get("message-id", "")
        try:
            event: Event | MalformedMessage = self._codec.decode(headers, frame.body)
        except MalformedMessage as error:
            event = error
        except Exception as exc:  # noqa: BLE001  # a codec bug must not stall the stream: report it
            body = frame.body if isinstance(frame.body, bytes) else b""
            event = MalformedMessage(
                f"undecodable: {type(exc).__name__}: {exc}", payload=body, headers=headers
            )
        return Decoded(
            frame.epoch,
            message_id,
            headers.get("ack", message_id),
            event,
            frame.at,
            len(frame.body) + _HEADER_BYTES * len(headers),
        )

    # ----------------------------------------------------------------------------- the loop

    def begin(self) -> None:
        """Prepare a run (on the caller's thread, before the runner starts the loop).

        Raises:
            StateError: The persisted resync baseline cannot be used (corrupt, another client id's).
        """
        now = self._clock.monotonic()
        self.resync.begin(now)
        self._inbox.clear()
        self._stop_requested.clear()
        self._remove_durable = False
        self.failure = self.removal_error = None
        self._transport = None
        self._preferred = self._index_of(self.resync.last_server) or 0
        self._series_started, self._series_attempts, self._rounds_failed = now, 0, 0
        self._lost_at = None
        self._phase, self._wait_until = _Phase.WAITING, now
        self._set_state(ConnectionState.CONNECTING, "starting")

    def step(self) -> bool:
        """Do one piece of work; return whether there was any (False: wait for the inbox or a deadline)."""
        if self.finished:
            return False
        try:
            return self._step()
        except BaseException as exc:  # noqa: BLE001  # the handler's SystemExit included: stop visibly
            self._crash(exc)
            return True

    def next_deadline(self) -> float:
        """When something is due (``inf``: nothing until an item arrives)."""
        phase = self._phase
        if phase is _Phase.CONNECTING:
            return min(self._connect_deadline, self.resync.deadline())
        if phase is _Phase.WAITING:
            return self._wait_until
        if phase is _Phase.CONNECTED:
            transport = self._transport
            heartbeats = transport.heartbeat_deadline() if transport is not None else None
            return min(
                self.resync.deadline(),
                self._watchdog.deadline() or _INF,
                _INF if heartbeats is None else heartbeats,
                self._probe_at,
            )
        return _INF

    def wait(self, timeout: float | None) -> None:
        """Block until an item arrives, the next deadline, or *timeout* seconds of the client's clock."""
        due, self._idle_until = self._idle_until, None
        wait = (self.next_deadline() if due is None else due) - self._clock.monotonic()
        if timeout is not None:
            wait = min(wait, timeout)
        if wait > 0:
            self._inbox.wait(self._clock, None if wait == _INF else wait)

    def _step(self) -> bool:
        # What is due first (a resync request must not wait for a backlog to drain), then one item. While
        # items stream in, deadlines are looked at every _BUSY_CHECK seconds, not for every message; with
        # the inbox empty, always (so a test's virtual time sees each deadline at its exact time).
        if self._stop_requested.is_set():
            self._shutdown()
            return True
        now = self._clock.monotonic()
        waiting = len(self._inbox)
        if self._waiting_since is not None:  # messages waited all along since the last step
            self.resync.postpone_system_info(now - self._waiting_since)
        self._waiting_since = now if waiting else None
        fired, due = False, None
        if now >= self._next_check or not waiting:
            self._next_check = now + _BUSY_CHECK
            due = self.next_deadline()
            fired = due <= now and self._fire(now)
        if self._stop_requested.is_set() or self.finished:
            return True
        item = self._inbox.pop()
        if item is not None:
            self._handle(item)
            return True
        self._delivery.flush_acks()  # nothing more to handle: what is owed goes now
        self._idle_until = None if fired else due  # what wait() needs, unless something changed
        return fired

    def _handle(self, item: _Item) -> None:
        if isinstance(item, Decoded):
            if item.epoch == self._epoch and self._phase is _Phase.CONNECTED:
                self._take(item)
            elif item.epoch == self._epoch and self._phase is _Phase.CONNECTING:
                self._early.append(item)  # the broker may dispatch before it confirms the subscription
        elif isinstance(item, Opened):
            if item.epoch == self._epoch and self._phase is _Phase.CONNECTING:
                self._adopt(item)
        elif isinstance(item, Lost):
            if item.epoch == self._epoch and self._phase is _Phase.CONNECTING:
                self._attempt_failed(item.reason, item.detail)
            elif item.epoch == self._epoch and self._phase is _Phase.CONNECTED:
                self._lose(item.reason, item.detail)
        elif isinstance(item, Settled):
            self._replay(self.resync.settled(item, self._clock.monotonic()))
        elif isinstance(item, _Crashed):
            raise item.error  # stops the client (step() turns it into the failure run_forever raises)
        elif isinstance(item, _PrimaryAnswer):
            self._probing = False
            if item.ok and item.epoch == self._epoch and self._phase is _Phase.CONNECTED:
                self._return_to_primary()
            elif not item.ok:
                log.debug("%s: the primary is still down: %s", self._config.client_id, item.detail)

    def _fire(self, now: float) -> bool:
        # Return whether anything was done. Silence is judged only with nothing waiting in the inbox: what
        # waits there arrived, and is a sign of life the watchdog has not seen yet.
        phase = self._phase
        if phase is _Phase.WAITING and now >= self._wait_until:
            self._start_round()
            return True
        if phase is _Phase.CONNECTING and now >= self._connect_deadline:
            timeout = self._config.retry.connect_timeout
            self._attempt_failed(
                LossReason.CONNECT_TIMEOUT, f"no subscription confirmed within {timeout:g} s"
            )
            return True
        fired = False
        if phase is _Phase.CONNECTED and not len(self._inbox):
            transport = self._transport
            heartbeats = transport.heartbeat_deadline() if transport is not None else None
            if heartbeats is not None and now >= heartbeats:
                self._lose(LossReason.HEARTBEAT_TIMEOUT, "no heart-beat from the broker in time")
                return True
            if self._watchdog.expired(now):
                silence = self._watchdog.silence(now)
                self._set_state(ConnectionState.STALE, f"silent for {silence:.1f} s")
                self._lose(
                    LossReason.WATCHDOG_EXPIRED,
                    f"nothing from the server for {silence:.1f} s "
                    f"(keepalive_timeout {self._config.keepalive_timeout:g} s)",
                )
                return True
        if phase is _Phase.CONNECTED and now >= self._probe_at:
            self._probe_primary(now)
            fired = True
        if self.resync.deadline() <= now:
            replay = self.resync.replay_due(now)
            if replay is not None:
                self._replay(replay)
            # The application's retrieval runs beside the loop (inline on a test's manual runner, where its
            # time is then the application's, not the server's silence).
            with self._busy():
                self.resync.tick(now)
            fired = True
        return fired

    # ----------------------------------------------------------------------- connecting

    def _index_of(self, server: str | None) -> int | None:
        for index, endpoint in enumerate(self._config.servers):
            if str(endpoint) == server:
                return index
        return None

    def _start_round(self) -> None:
        count = len(self._config.servers)
        self._order = [(self._preferred + offset) % count for offset in range(count)]
        self._position = 0
        self._open_next()

    def _open_next(self) -> None:
        self._early = []
        index = self._order[self._position]
        server = self._config.servers[index]
        self._epoch += 1
        self._series_attempts += 1
        self._server_index = index
        now = self._clock.monotonic()
        self._phase, self._connect_deadline = _Phase.CONNECTING, now + self._config.retry.connect_timeout
        # A durable subscription is current on one server only: one left on another server (an earlier stay,
        # before a failover) holds events the client has since had from elsewhere, or a gap. It is
        # discarded, not drained, and the resync covers what it held (see ResyncReason.SUBSCRIPTION_CHANGED).
        moved_from = self._moved_from(server)
        transport = self._factory(
            self._config, server, epoch=self._epoch, sink=self.receive, clock=self._clock
        )
        self._transport = transport
        log.debug("%s: connecting to %s (#%d)", self._config.client_id, server, self._epoch)
        transport.open(fresh=moved_from is not None)

    def _moved_from(self, server: BrokerEndpoint) -> str | None:
        last = self.resync.last_server
        if not self._config.durable or last is None or last == str(server) or self._index_of(last) is None:
            return None
        return last

    def _adopt(self, opened: Opened) -> None:
        transport = self._transport
        assert transport is not None  # noqa: S101  # CONNECTING always has one
        now = self._clock.monotonic()
        server = transport.server
        moved_from = self._moved_from(server)
        self._phase = _Phase.CONNECTED
        self._preferred = self._server_index
        self._delivered = False
        downtime = 0.0 if self._lost_at is None else now - self._lost_at
        attempts = self._series_attempts
        self._series_attempts, self._rounds_failed = 0, 0
        self._counts["connections"] += 1
        if self._config.exclusive:
            # A standby until the broker hands this consumer the queue (its first message): its silence is no
            # fault (heart-beats still watch the path) and nothing it has not received is judged yet.
            self._standby, self._standby_moved_from = True, moved_from
            log.info("%s: subscribed on %s as a standby (exclusive consumer)", self._config.client_id, server)
        else:
            self._watchdog.start(now)
            self.resync.connected(str(server), now, moved_from=moved_from)
        self._probe_at = (
            now + self._config.primary_check_interval
            if self._config.return_to_primary and self._server_index != 0
            else _INF
        )
        self._set_state(ConnectionState.CONNECTED, f"subscribed on {server}")
        self._call(
            "on_connection_restored",
            ConnectionRestored(
                server=str(server), at=utc_now(), attempts=attempts, downtime=downtime, session=opened.session
            ),
        )
        early, self._early = self._early, []
        for message in early:
            if self._phase is not _Phase.CONNECTED or self._transport is not transport:
                break  # the connection ended on one of them: the broker delivers the rest again
            self._take(message)

    def _attempt_failed(self, reason: LossReason, detail: str) -> None:
        transport, self._transport = self._transport, None
        assert transport is not None  # noqa: S101  # CONNECTING always has one
        transport.abort()
        self._counts["failed_attempts"] += 1
        cause = ConnectionLost(
            reason=reason,
            detail=detail,
            server=str(transport.server),
            at=utc_now(),
            attempt=self._rounds_failed + 1,
        )
        self._last_loss = cause
        log.warning(
            "%s: attempt %d on %s failed: %s: %s",
            self._config.client_id,
            cause.attempt,
            transport.server,
            reason.value,
            detail,
        )
        self._call("on_connection_lost", cause)
        if not reason.retryable:
            self._give_up(cause)
            return
        self._position += 1
        if self._position < len(self._order):
            self._open_next()
            return
        self._rounds_failed += 1
        delay = self._backoff(cause)
        if delay is None:
            self._give_up(cause)
            return
        self._wait(delay)

    def _backoff(self, cause: ConnectionLost) -> float | None:
        # tenacity's strategies, fed the client's clock: a stop after a delay counts fake seconds in tests.
        retry = self._config.retry
        limit: tenacity.stop.stop_base = retry.stop or (
            tenacity.stop_after_attempt(retry.max_attempts) if retry.max_attempts else tenacity.stop_never
        )
        wait: tenacity.wait.wait_base = retry.wait or (
            # Stable across tenacity versions (wait_exponential_jitter renamed its arguments).
            tenacity.wait_exponential(
                multiplier=retry.initial_delay, max=retry.max_delay, exp_base=retry.multiplier
            )
            + tenacity.wait_random(0, retry.jitter)
        )
        state = tenacity.RetryCallState(tenacity.Retrying(), None, (), {})
        state.start_time = self._series_started
        state.attempt_number = self._rounds_failed
        failed: Future[None] = Future()
        failed.set_exception(
            AttemptFailed(cause.reason, cause.detail, self._config.servers[self._server_index])
        )
        state.outcome, state.outcome_timestamp = failed, self._clock.monotonic()  # type: ignore[assignment]
        if limit(state):
            return None
        return float(wait(state))

    def _wait(self, delay: float) -> None:
        self._phase, self._wait_until = _Phase.WAITING, self._clock.monotonic() + max(0.0, delay)

    def _give_up(self, cause: ConnectionLost) -> None:
        log.error(GIVING_UP, self._config.client_id, cause.reason.value, cause.detail)
        self._finish(ClientStopped(cause), ConnectionState.STOPPED, f"gave up: {cause.reason.value}")

    # ------------------------------------------------------------------------ connected

    def _take(self, message: Decoded) -> None:
        transport = self._transport
        assert transport is not None  # noqa: S101  # CONNECTED always has one
        if self._standby:
            self._activate(transport, message.at)
        self._watchdog.observe(message.at)
        self._last_message_at = message.at
        self._delivered = True
        started = self._clock.monotonic()  # as _busy(), inline: this is the path of every message
        try:
            outcome = self._delivery.deliver(message, transport, message.at)
        finally:
            self._watchdog.pause(self._clock.monotonic() - started)
        if outcome is Verdict.REDELIVER:
            self._redeliver(message.message_id)
        elif isinstance(outcome, Terminate):
            self._terminated(outcome.notice)

    def _activate(self, transport: Transport, now: float) -> None:
        # The broker handed the queue to this standby: from here on it is watched and judged as any connection
        # (the continuity check judges what the active instance consumed meanwhile).
        moved_from, self._standby, self._standby_moved_from = self._standby_moved_from, False, None
        log.info("%s: active: %s handed the queue to this consumer", self._config.client_id, transport.server)
        self._watchdog.start(now)
        self.resync.connected(str(transport.server), now, moved_from=moved_from)

    @property
    def standby(self) -> bool:
        """Whether the client is an exclusive consumer that the broker has not handed the queue yet."""
        return self._standby

    def _replay(self, events: list[DataEvent]) -> None:
        # The held events, in order. A handler that raises on one is treated as on the stream: that event
        # and the rest wait (held, ahead of what arrives meanwhile) and come again with the retry policy's
        # growing delay; after max_handler_failures it is given up and the replay goes on.
        with self._busy():
            for index, event in enumerate(events):
                handled = self._delivery.hand_over(event)
                if handled is None:
                    return  # stopping: not all replayed, so not complete (the next run resyncs)
                if handled:
                    continue
                message_id = event.header.stomp_headers.get("message-id", "")
                same, count = self._replay_failing
                count = count + 1 if same == message_id else 1
                self._replay_failing = (message_id, count)
                now = self._clock.monotonic()
                if count >= self._config.max_handler_failures:
                    self._delivery.give_up(event, message_id, count, now)
                    self._replay_failing = ("", 0)
                    continue
                delay = self._handler_retry_delay(count)
                log.warning(
                    "%s: the handler raised on replayed message %s (%d time(s)); it and the %d after it are "
                    "handed over again in %.1f s",
                    self._config.client_id,
                    message_id or "(no id)",
                    count,
                    len(events) - index - 1,
                    delay,
                )
                self.resync.replay_failed(events[index:], now, delay)
                return
            self.resync.replayed()

    def _handler_retry_delay(self, failures: int) -> float:
        # Before the next try of an event the handler raised on *failures* times: the retry policy's backoff.
        retry = self._config.retry
        return float(min(retry.initial_delay * retry.multiplier ** (failures - 1), retry.max_delay))

    @contextmanager
    def _busy(self) -> Iterator[None]:
        # Time spent in the application's code is not the server's silence (a slow handler also keeps the
        # prefetch window full, so the broker cannot send): the watchdog's clock stands still meanwhile. It
        # is no sign of life either: the silence before it still counts.
        started = self._clock.monotonic()
        try:
            yield
        finally:
            self._watchdog.pause(self._clock.monotonic() - started)

    def _detach(self) -> Transport | None:
        # The current connection stops being the client's: no request waits on it, no watchdog watches it.
        # What it is owed is acknowledged first (on a connection already lost, the ACK goes nowhere).
        self._delivery.flush_acks()
        transport, self._transport = self._transport, None
        self._standby, self._standby_moved_from = False, None
        self.resync.disconnected()
        self._watchdog.stop()
        self._probe_at = _INF
        return transport

    def _announce_loss(self, cause: ConnectionLost) -> None:
        # An established connection ended: count it, keep it as the last loss, tell the application.
        self._last_loss = cause
        self._counts["losses"] += 1
        self._losses_by_reason[cause.reason.value] = self._losses_by_reason.get(cause.reason.value, 0) + 1
        self._call("on_connection_lost", cause)

    def _lost(self, reason: LossReason, detail: str, server: BrokerEndpoint | None) -> None:
        self._lost_at = self._clock.monotonic()
        self._series_started, self._series_attempts, self._rounds_failed = self._lost_at, 0, 0
        cause = ConnectionLost(reason=reason, detail=detail, server=str(server or ""), at=utc_now())
        self._announce_loss(cause)

    def _lose(self, reason: LossReason, detail: str) -> None:
        transport = self._detach()
        assert transport is not None  # noqa: S101  # CONNECTED always has one
        transport.abort()
        log.warning(
            "%s: connection to %s lost: %s: %s",
            self._config.client_id,
            transport.server,
            reason.value,
            detail,
        )
        self._fail_over_if(reason)
        self._lost(reason, detail, transport.server)
        self._set_state(ConnectionState.RECONNECTING, reason.value)
        # Not at once: a server that just dropped everyone (a restart, a switchover) is spared a stampede,
        # and one that is removing this client's subscription gets the time to do it.
        self._wait(self._config.retry.initial_delay)

    def _fail_over_if(self, reason: LossReason) -> None:
        count = len(self._config.servers)
        if count == 1:
            return
        if reason is LossReason.WATCHDOG_EXPIRED:
            self._empty_losses = 0
            self._prefer_next("the server behind it was silent")
            return
        self._empty_losses = 0 if self._delivered else self._empty_losses + 1
        if self._empty_losses >= self._config.retry.failover_after:
            self._empty_losses = 0
            self._prefer_next(f"{self._config.retry.failover_after} connection(s) in a row delivered nothing")

    def _prefer_next(self, why: str) -> None:
        self._preferred = (self._server_index + 1) % len(self._config.servers)
        log.warning(
            "%s: failing over from %s to %s: %s",
            self._config.client_id,
            self._config.servers[self._server_index],
            self._config.servers[self._preferred],
            why,
        )

    def _redeliver(self, message_id: str) -> None:
        # The handler raised. Handing it the next message would reorder the stream (the failed one would come
        # back after it, at some later reconnect): instead the connection is closed, unacknowledged, so the
        # broker delivers this message again, first, when the client is back. A message that keeps failing
        # is retried with the retry policy's growing delay, and every failure is reported.
        count = self._delivery.failures
        transport = self._detach()
        assert transport is not None  # noqa: S101  # CONNECTED always has one
        transport.close()
        delay = self._handler_retry_delay(count)
        detail = (
            f"the handler raised on message {message_id or '(no id)'} ({count} time(s)); "
            f"it is delivered again in {delay:.1f} s"
        )
        log.warning("%s: %s", self._config.client_id, detail)
        self._lost(LossReason.HANDLER_FAILED, detail, transport.server)
        self._set_state(ConnectionState.RECONNECTING, LossReason.HANDLER_FAILED.value)
        self._wait(delay)

    def _terminated(self, notice: TerminateClientSession) -> None:
        policy = self._config.on_terminate
        log.warning("%s: session terminated by the server; policy %s", self._config.client_id, policy.value)
        transport = self._detach()
        assert transport is not None  # noqa: S101  # CONNECTED always has one
        transport.close()
        self._lost(LossReason.SESSION_TERMINATED, "TerminateClientSession received", transport.server)
        if policy is TerminatePolicy.STOP:
            self._finish(SessionTerminated(notice), ConnectionState.TERMINATED, "TerminateClientSession")
            return
        self._set_state(ConnectionState.RECONNECTING, "TerminateClientSession")
        self._wait(
            self._config.terminate_reconnect_delay if policy is TerminatePolicy.RECONNECT_AFTER_DELAY else 0.0
        )

    def _probe_primary(self, now: float) -> None:
        self._probe_at = now + self._config.primary_check_interval
        if self._probing:
            return
        self._probing = True
        epoch, primary = self._epoch, self._config.servers[0]
        side = self._factory(self._config, primary, epoch=-1, sink=_drop, clock=self._clock)

        def probe() -> None:
            try:
                side.probe()
            except AttemptFailed as exc:
                self._inbox.put(_PrimaryAnswer(epoch, False, exc.detail))
                return
            self._inbox.put(_PrimaryAnswer(epoch, True, ""))

        self._spawn(probe, "nfmp-primary-check")

    def _return_to_primary(self) -> None:
        # A planned move: the standby's durable subscription goes (it would collect events the client then
        # has from the primary, a stale backlog for a later failover); the primary's stale one is discarded
        # when the client subscribes there (see _open_next).
        transport = self._detach()
        assert transport is not None  # noqa: S101  # CONNECTED always has one
        primary = self._config.servers[0]
        log.warning(
            "%s: leaving the standby %s: the primary %s answers again",
            self._config.client_id,
            transport.server,
            primary,
        )
        try:
            transport.close(remove_durable=self._config.durable)
        except AttemptFailed as exc:
            log.warning(
                "%s: the standby's subscription could not be removed: %s", self._config.client_id, exc.detail
            )
        self._preferred = 0
        self._lost(LossReason.RETURNING_TO_PRIMARY, f"the primary {primary} answers again", transport.server)
        self._set_state(ConnectionState.RECONNECTING, LossReason.RETURNING_TO_PRIMARY.value)
        self._wait(0.0)

    # ------------------------------------------------------------------------- stopping

    def _shutdown(self) -> None:
        transport, phase = self._detach(), self._phase
        if transport is not None and phase is _Phase.CONNECTED:
            try:
                transport.close(remove_durable=self._remove_durable)
                if self._remove_durable:
                    log.info(
                        "%s: durable subscription %s removed",
                        self._config.client_id,
                        self._config.durable_name,
                    )
            except AttemptFailed as exc:  # the connection failed meanwhile: try without it
                log.warning("%s: removal on the connection failed: %s", self._config.client_id, exc.detail)
                self.removal_error = self.remove_offline()
        else:
            if transport is not None:
                transport.abort()  # a connect in flight is closed, never adopted
            if self._remove_durable:
                self.removal_error = self.remove_offline()
        if self.removal_error is not None:
            log.error("%s: %s", self._config.client_id, self.removal_error)
        self._finish(None, ConnectionState.STOPPED, "stopped by the application")

    def remove_offline(self) -> SubscriptionRemovalFailed | None:
        """Delete the durable subscription without a connection of the client's (blocking); say why not."""
        failures: list[ConnectionLost] = []
        for server in self._config.servers:
            side = self._factory(self._config, server, epoch=-1, sink=_drop, clock=self._clock)
            try:
                side.remove_subscription()
            except AttemptFailed as exc:
                log.warning(
                    "%s: cannot remove the subscription on %s: %s", self._config.client_id, server, exc.detail
                )
                failures.append(self._failure_value(exc))
                continue
            log.info(
                "%s: durable subscription %s removed on %s",
                self._config.client_id,
                self._config.durable_name,
                server,
            )
            return None
        return SubscriptionRemovalFailed(failures)

    @staticmethod
    def _failure_value(exc: AttemptFailed) -> ConnectionLost:
        return ConnectionLost(reason=exc.reason, detail=exc.detail, server=str(exc.server), at=utc_now())

    def _crash(self, exc: BaseException) -> None:
        if isinstance(exc, Exception):
            log.error("%s: the supervisor failed", self._config.client_id, exc_info=exc)
            failure: BaseException = ClientFailed(f"internal error: {type(exc).__name__}: {exc}")
            failure.__cause__ = exc
        else:
            log.error(
                "%s: a callback raised %s: the client stops", self._config.client_id, type(exc).__name__
            )
            failure = exc
        transport, self._transport = self._transport, None
        try:
            if transport is not None:
                transport.abort()
            self.resync.disconnected()
        except Exception:  # already failing: the first error is the one to report
            log.debug("cleaning up after a failure", exc_info=True)
        self._finish(failure, ConnectionState.STOPPED, f"failed: {type(exc).__name__}")

    def _finish(self, failure: BaseException | None, state: ConnectionState, why: str) -> None:
        self._watchdog.stop()
        try:
            self.resync.close()
        except Exception:  # the baseline could not be saved: logged by the coordinator
            log.debug("closing the resync coordinator", exc_info=True)
        self.failure = failure
        self._phase = _Phase.FINISHED
        self._transport = None
        self._set_state(state, why)

    # ---------------------------------------------------------------------------- helpers

    def _set_state(self, state: ConnectionState, why: str) -> None:
        with self.state_changed:
            if state is self._state and not self.finished:
                return
            if state is not self._state:
                log.info("%s: %s -> %s (%s)", self._config.client_id, self._state.value, state.value, why)
            self._state = state
            self.state_changed.notify_all()

    def _call(self, name: str, *arguments: object) -> bool | None:
        # The application's code, fenced: an Exception is logged and counted (False); a BaseException
        # (SystemExit, KeyboardInterrupt) goes up and stops the client. Once a stop was asked, nothing more
        # is called (None); a callback that gives its event back because its application is stopping
        # (HandOverAbandoned) counts as not called.
        if self._stop_requested.is_set():
            return None
        try:
            getattr(self._handler, name)(*arguments)
        except HandOverAbandoned:
            return None
        except Exception as exc:
            self._last_error = exc
            self._counts["handler_errors"] += 1
            log.exception("%s: the handler's %s raised", self._config.client_id, name)
            return False
        return True

    def _ask_resync(self, request: ResyncRequest) -> None:
        # The application's retrieval runs beside the loop, never on it: meanwhile system events are judged
        # (a newer trigger aborts the request: request.aborted), held events are acknowledged (the server's
        # queue for this client does not grow), and the watchdog and heart-beats are watched.
        if self._stop_requested.is_set():
            return  # stopping: left open; the next run owes it (the baseline says not in sync)
        handler, inbox, client_id = self._handler, self._inbox, self._config.client_id

        def retrieve() -> None:
            try:
                answer(handler.on_resync_required, request, client_id)  # type: ignore[attr-defined]
            except BaseException as exc:  # noqa: BLE001  # SystemExit and the like stop the client, visibly
                inbox.put(_Crashed(exc))

        self._spawn(retrieve, f"nfmp-resync-{request.epoch}")


def _drop(_report: TransportReport) -> None:
    """Drop a report of a side connection (a probe, a removal): nothing there concerns the loop."""
