"""NfmpClient: a supervised NFM-P event subscription, and the Handler an application writes.

Three threads, one direction::

    stomp.py receiver: decode ──events──> inbox ──> supervisor: dedupe, call the handler, ack ──> Handler
                                            ^
    watchdog ── silence > keepalive_timeout: tear the connection down

* stomp.py's receiver thread only stamps, decodes (bounded work: ``max_message_bytes``) and enqueues, never
  runs application code: a slow handler cannot starve heart-beats. Memory stays bounded because a message is
  acknowledged only after the handler returned and the broker sends at most ``prefetch`` unacknowledged
  messages: a slow handler slows the stream (back-pressure).
* The supervisor thread runs the handler, in order, acknowledges, and reconnects (tenacity backoff, failover
  across the server list, primary first) whenever the connection ends, for whatever reason.
* The watchdog thread declares the connection dead when nothing at all came from the server for
  ``keepalive_timeout`` while nothing was waiting for the handler (a busy handler is not a silent server).

The durable subscription is never removed implicitly: :meth:`NfmpClient.stop` keeps it (and the backlog the
server stores for it); only :meth:`NfmpClient.decommission` deletes it.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime
from typing import Final, Union, final

import tenacity
from attrs import frozen

from ._clock import Clock, MonotonicClock, utc_now
from ._codec import EventCodec
from ._config import BrokerEndpoint, ClientConfig, TerminatePolicy
from ._coordinator import ResyncCoordinator, Settled
from ._dedup import RecentIds
from ._events import DataEvent, Event, SystemEvent, TerminateClientSession, is_system_event
from ._exceptions import MalformedMessage, NfmpError
from ._resync import ResyncRequest
from ._status import (
    ClientStatistics,
    ConnectionLost,
    ConnectionRestored,
    ConnectionState,
    Health,
    HealthStatus,
    LossReason,
)
from ._transport import AttemptFailed, FrameReceived, Lost, StompTransport
from ._watchdog import KeepAliveWatchdog

__all__ = ["ClientStopped", "Handler", "NfmpClient"]

log = logging.getLogger("nfmp_client")

_WATCHDOG_TICK_MAX: Final = 0.5


@frozen
class _ReturnToPrimary:
    """The primary answers again while connection *epoch* is on a standby."""

    epoch: int


@frozen
class _Decoded:
    """A message of connection *epoch*, decoded on stomp.py's receiver thread: an event or why it is not."""

    epoch: int
    message_id: str
    ack_id: str
    event: Event | MalformedMessage


_COUNTERS: Final = (
    "messages",
    "events",
    "system_events",
    "duplicates",
    "malformed",
    "handler_errors",
    "connections",
    "losses",
    "failed_attempts",
)

_Item = Union[_Decoded, Lost, _ReturnToPrimary, Settled, None]
"""What the supervisor's inbox carries (None: wake up)."""


class ClientStopped(NfmpError):
    """The client gave up reconnecting (retry policy exhausted, or a loss that retrying cannot fix)."""

    def __init__(self, last_loss: ConnectionLost | None) -> None:
        """Record the last loss."""
        super().__init__(
            "the client stopped" + (f": {last_loss.reason.value}: {last_loss.detail}" if last_loss else "")
        )
        self.last_loss = last_loss
        """The loss that made it stop, if any."""


class Handler:
    """What an application implements: override the callbacks it cares about (the defaults do nothing).

    Callbacks run on the client's supervisor thread, one at a time, in the order of the stream. A callback
    that raises is logged. If :meth:`on_event` or :meth:`on_system_event` raises, the message is not
    acknowledged and the client reconnects (``LossReason.HANDLER_FAILED``, after a backoff that grows while
    the same message keeps failing): the broker delivers that message again, before anything that followed
    it. Nothing is lost and the order holds.
    """

    def on_event(self, event: DataEvent) -> None:
        """Handle a data event (alarm, inventory change, file, ...)."""

    def on_system_event(self, event: SystemEvent) -> None:
        """Handle a system event: KeepAliveEvent, SystemInfoEvent, JmsMissedEvents, TerminateClientSession."""

    def on_resync_required(self, request: ResyncRequest) -> None:
        """Rebuild the application's copy from the server's current state (the XML API), because *request*.

        Return when done (the request is then complete) or raise (it failed; another follows). To do it
        elsewhere, call ``request.defer()`` here, then ``request.complete()`` or ``request.fail()`` from any
        thread. Meanwhile data events are held, and replayed once it is complete (``HOLD_AND_REPLAY``), or
        keep coming (``APPLY_LIVE``). The default does nothing, so the request completes at once.
        """

    def on_session_terminated(self, notice: TerminateClientSession) -> None:
        """React to the server ending this client's session (an administrator, or a server-side limit)."""

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        """React to a lost connection or a failed reconnection attempt: *cause* says why."""

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        """React to the connection being up and subscribed (also after the first connect)."""

    def on_malformed_message(self, error: MalformedMessage) -> None:
        """Report an undecodable message (*error* keeps its payload); it is acked and the stream goes on."""


@final
class NfmpClient:
    """A supervised subscription to an NFM-P event topic over STOMP.

    Example::

        with NfmpClient(config, MyOss()) as client:
            client.run_forever()
    """

    def __init__(self, config: ClientConfig, handler: Handler, *, clock: Clock | None = None) -> None:
        """Prepare the client; nothing connects before :meth:`start`."""
        self.config = config
        """The configuration."""
        self._handler = handler
        self._clock = clock or MonotonicClock()
        self._codec = EventCodec(max_message_bytes=config.max_message_bytes)
        self._inbox: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._resync = ResyncCoordinator(config, ask=handler.on_resync_required, settle=self._inbox.put)
        self._dedup = RecentIds(config.dedup_window)
        self._watchdog = KeepAliveWatchdog(config.keepalive_timeout)
        self._watch_lock = threading.Lock()
        self._state = ConnectionState.STOPPED
        self._state_changed = threading.Condition()
        self._transport: StompTransport | None = None
        self._epoch = 0
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        self._supervisor: threading.Thread | None = None
        self._watcher: threading.Thread | None = None
        self._homing: threading.Thread | None = None
        self._busy = False
        self._last_loss: ConnectionLost | None = None
        self._lost_at: float | None = None
        self._failure: ClientStopped | None = None
        self._failing = ("", 0)  # the message id the handler failed on, and how many times in a row
        self._counts: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._losses_by_reason: dict[str, int] = {}
        self._events_by_type: dict[str, int] = {}
        self._handler_seconds = 0.0
        self._handler_max = 0.0
        self._last_message_monotonic: float | None = None
        self.last_message_at: datetime | None = None
        """When the last message of any kind arrived (aware UTC), or None."""

    # ----------------------------------------------------------------------------------------- public

    @property
    def state(self) -> ConnectionState:
        """The connection state now."""
        return self._state

    @property
    def last_loss(self) -> ConnectionLost | None:
        """The most recent connection loss or failed attempt, or None."""
        return self._last_loss

    @property
    def statistics(self) -> ClientStatistics:
        """What the client has counted so far (messages, events, duplicates dropped, losses, ...)."""
        return ClientStatistics(
            **self._counts,
            losses_by_reason=dict(self._losses_by_reason),
            resyncs_by_reason=self._resync.requests_by_reason(),
            events_by_type=dict(self._events_by_type),
            handler_seconds=self._handler_seconds,
            handler_max_seconds=self._handler_max,
            queue_depth=self._inbox.qsize(),
            seconds_since_last_message=self._since_last_message(),
        )

    def health(self) -> Health:
        """Say whether the application's copy can be trusted now, and why not.

        ``LIVE``: connected, in sync, messages coming. ``SYNCING``: connected, a resync is pending or under
        way. ``STALE``: connected, but nothing came for more than half the keep-alive timeout (the watchdog
        tears the connection down at the full timeout). ``DOWN``: not connected (reconnecting, terminated or
        stopped), with the last loss as the reason.
        """
        state = self._state
        if state is not ConnectionState.CONNECTED:
            loss = self._last_loss
            why = f"{state.value}" + (f": {loss.reason.value}: {loss.detail}" if loss else "")
            return Health(status=HealthStatus.DOWN, reason=why, state=state)
        silence = self._since_last_message()
        if silence is not None and silence > self.config.keepalive_timeout / 2:
            return Health(
                status=HealthStatus.STALE, reason=f"nothing from the server for {silence:.0f} s", state=state
            )
        if not self._resync.in_sync:
            request = self._resync.request
            why = (
                f"resync #{request.epoch} under way: {request.reason.value}"
                if request is not None
                else "a resync is due"
            )
            return Health(status=HealthStatus.SYNCING, reason=why, state=state)
        return Health(status=HealthStatus.LIVE, reason="connected and in sync", state=state)

    def _since_last_message(self) -> float | None:
        last = self._last_message_monotonic
        return None if last is None else max(0.0, self._clock.monotonic() - last)

    @property
    def resync(self) -> ResyncRequest | None:
        """The resync the application is working on, or None."""
        return self._resync.request

    @property
    def resync_epoch(self) -> int:
        """The epoch of the last resync requested, 0 before any; events carry theirs in the header."""
        return self._resync.epoch

    @property
    def in_sync(self) -> bool:
        """Whether the last resync completed and nothing calls for another (the application's copy holds)."""
        return self._resync.in_sync

    def wait_for_state(self, *states: ConnectionState, timeout: float | None = None) -> bool:
        """Wait until the state is one of *states*; return whether it is."""
        with self._state_changed:
            return self._state_changed.wait_for(lambda: self._state in states, timeout)

    def start(self) -> None:
        """Start connecting in the background; returns at once (see :meth:`wait_for_state`).

        Raises:
            StateError: The persisted resync baseline cannot be used (corrupt, or another client id's).
        """
        if self._supervisor is not None and self._supervisor.is_alive():
            return
        self._resync.begin(self._clock.monotonic())
        self._stopping.clear()
        self._stopped.clear()
        self._failure = None
        self._set_state(ConnectionState.CONNECTING, "starting")
        self._supervisor = threading.Thread(target=self._supervise, name="nfmp-supervisor", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name="nfmp-watchdog", daemon=True)
        self._supervisor.start()
        self._watcher.start()
        if self.config.return_to_primary and len(self.config.servers) > 1:
            self._homing = threading.Thread(target=self._home, name="nfmp-primary-check", daemon=True)
            self._homing.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect and stop. The durable subscription stays, and the server keeps events for it."""
        self._shutdown(remove_durable=False, timeout=timeout)

    def decommission(self, timeout: float = 10.0) -> None:
        """Stop and delete the durable subscription, and with it the events stored for this client.

        Use when this client id is retired for good; a plain :meth:`stop` keeps the subscription.
        """
        self._shutdown(remove_durable=True, timeout=timeout)

    def run_forever(self, duration: float | None = None) -> None:
        """Start (if needed) and block until stopped, or for *duration* seconds; then the client is stopped.

        Ctrl-C stops the client cleanly. The durable subscription stays, as with :meth:`stop`.

        Raises:
            ClientStopped: The client gave up reconnecting.
        """
        self.start()
        clock = self._clock
        deadline = float("inf") if duration is None else clock.monotonic() + duration
        try:
            while not clock.wait(self._stopped, max(0.0, min(0.5, deadline - clock.monotonic()))):
                if clock.monotonic() >= deadline:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            if not self._stopped.is_set():
                self.stop()
        if self._failure is not None:
            raise self._failure

    def __enter__(self) -> NfmpClient:
        """Start the client."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop the client (the durable subscription stays)."""
        self.stop()

    def __repr__(self) -> str:
        """Show the client id and the state."""
        return f"<NfmpClient {self.config.client_id} {self._state.value}>"

    # ------------------------------------------------------------------------------------- internals

    def _shutdown(self, *, remove_durable: bool, timeout: float) -> None:
        self._stopping.set()
        self._inbox.put(None)
        if self._supervisor is not None:
            self._supervisor.join(timeout)
        self._resync.close()
        transport = self._detach()
        if transport is not None:
            transport.close(remove_durable=remove_durable)
            if remove_durable:
                log.info(
                    "%s: durable subscription %s removed", self.config.client_id, self.config.durable_name
                )
        elif remove_durable:
            self._remove_offline(timeout)
        for thread in (self._watcher, self._homing):
            if thread is not None:
                thread.join(timeout)
        self._set_state(ConnectionState.STOPPED, "stopped by the application")
        self._stopped.set()

    def _remove_offline(self, timeout: float) -> None:
        # Not connected: connect once without delivering anything, just to delete the subscription.
        for server in self.config.servers:
            transport = self._side_transport(server)
            try:
                transport.open()
            except AttemptFailed as exc:
                log.warning(
                    "%s: cannot reach %s to remove the subscription: %s", self.config.client_id, server, exc
                )
                continue
            transport.close(remove_durable=True)
            return
        raise NfmpError("no server reachable: the durable subscription could not be removed")

    def _side_transport(self, server: BrokerEndpoint) -> StompTransport:
        # A connection outside the supervised one: it delivers nothing and reports nothing.
        return StompTransport(self.config, server, -1, lambda _item: None, lambda: None)

    def _detach(self) -> StompTransport | None:
        # The current connection stops being the client's: no request waits on it, no watchdog watches it.
        transport, self._transport = self._transport, None
        self._resync.disconnected()
        with self._watch_lock:
            self._watchdog.stop()
        return transport

    def _announce_loss(self, cause: ConnectionLost) -> None:
        # An established connection ended: count it, keep it as the last loss, tell the application.
        self._last_loss = cause
        self._counts["losses"] += 1
        self._losses_by_reason[cause.reason.value] = self._losses_by_reason.get(cause.reason.value, 0) + 1
        self._call("on_connection_lost", cause)

    def _set_state(self, state: ConnectionState, why: str) -> None:
        with self._state_changed:
            if state is self._state:
                return
            log.info("%s: %s -> %s (%s)", self.config.client_id, self._state.value, state.value, why)
            self._state = state
            self._state_changed.notify_all()

    def _activity(self) -> None:
        with self._watch_lock:
            self._watchdog.observe(self._clock.monotonic())

    def _call(self, name: str, *args: object) -> bool:
        try:
            getattr(self._handler, name)(*args)
        except Exception:
            self._counts["handler_errors"] += 1
            log.exception("%s: the handler's %s raised", self.config.client_id, name)
            return False
        return True

    # The supervisor thread.

    def _supervise(self) -> None:
        try:
            while not self._stopping.is_set():
                if self._transport is None and not self._connect():
                    return
                item = self._next_item()
                if item is None:
                    continue
                if isinstance(item, Settled):
                    self._replay(item)
                elif isinstance(item, Lost):
                    if item.epoch == self._epoch:
                        self._lose(item.reason, item.detail)
                elif isinstance(item, _ReturnToPrimary):
                    if item.epoch == self._epoch:
                        self._return_to_primary()
                elif item.epoch == self._epoch:
                    self._busy = True
                    try:
                        self._deliver(item)
                    finally:
                        self._busy = False
                        self._activity()  # the silence clock starts when the handler is done
        except Exception:
            log.exception("%s: supervisor failed", self.config.client_id)
            self._failure = ClientStopped(self._last_loss)
            self._set_state(ConnectionState.STOPPED, "internal error")
            self._stopped.set()

    def _next_item(self) -> _Item:
        # The next message, or None when it is time for the resync coordinator's next step.
        while True:
            wait = self._resync.deadline() - self._clock.monotonic()
            if wait <= 0:
                self._tick()
                continue
            try:
                return self._inbox.get(timeout=None if wait == float("inf") else wait)
            except queue.Empty:
                self._tick()
                return None

    def _tick(self) -> None:
        # The application's on_resync_required may run here, for long: a busy handler, not a silent server.
        started = self._clock.monotonic()
        self._busy = True
        try:
            self._resync.tick(started)
        finally:
            self._busy = False
            self._credit(started)

    def _replay(self, verdict: Settled) -> None:
        started = self._clock.monotonic()
        self._busy = True
        try:
            for event in self._resync.settled(verdict, started):
                if not self._call("on_event", event):
                    self._resync.replay_failed(self._clock.monotonic())
                    break
                self._counts["events"] += 1
        finally:
            self._busy = False
            self._credit(started)

    def _credit(self, busy_since: float) -> None:
        # Time the supervisor spent in the application's code does not count as the server's silence (but,
        # unlike a message, it is no sign of life either: the silence before it still counts).
        with self._watch_lock:
            now = self._clock.monotonic()
            last = self._watchdog.last_seen()
            if last is not None:
                self._watchdog.observe(last + (now - busy_since))

    def _lose(self, reason: LossReason, detail: str) -> None:
        transport = self._detach()
        server = str(transport.server) if transport else ""
        if transport is not None:
            transport.abort(reason, detail)  # make sure the socket is gone (reported once only)
        self._lost_at = self._clock.monotonic()
        cause = ConnectionLost(reason=reason, detail=detail, server=server, at=utc_now())
        log.warning("%s: connection to %s lost: %s: %s", self.config.client_id, server, reason.value, detail)
        self._announce_loss(cause)
        if reason is LossReason.SESSION_TERMINATED:
            return
        if not self._stopping.is_set():
            self._set_state(ConnectionState.RECONNECTING, reason.value)
            # Not at once: a server that just dropped everyone (a restart, a switchover) is spared a stampede,
            # and one that is removing this client's subscription gets the time to do it.
            self._sleep(self.config.retry.initial_delay)

    def _return_to_primary(self) -> None:
        # A planned move: close the standby connection gracefully (its durable subscription stays) and let
        # the next connect start from the primary, as every connect does.
        transport = self._detach()
        if transport is None:
            return
        transport.close()
        self._lost_at = self._clock.monotonic()
        primary = self.config.servers[0]
        cause = ConnectionLost(
            reason=LossReason.RETURNING_TO_PRIMARY,
            detail=f"the primary {primary} answers again",
            server=str(transport.server),
            at=utc_now(),
        )
        log.warning("%s: leaving the standby %s: %s", self.config.client_id, transport.server, cause.detail)
        self._announce_loss(cause)
        self._set_state(ConnectionState.RECONNECTING, cause.reason.value)

    def _receive(self, item: FrameReceived | Lost) -> None:
        # On stomp.py's receiver thread. Decoding here (bounded: max_message_bytes) rather than on the
        # supervisor keeps the two threads from taking turns on the GIL for every message; only the
        # application's code, which has no bound, must stay off this thread.
        if isinstance(item, FrameReceived):
            message_id = item.headers.get("message-id", "")
            try:
                event: Event | MalformedMessage = self._codec.decode(item.headers, item.body)
            except MalformedMessage as error:
                event = error
            self._inbox.put(_Decoded(item.epoch, message_id, item.headers.get("ack", message_id), event))
        else:
            self._inbox.put(item)

    def _deliver(self, message: _Decoded) -> None:
        self.last_message_at = utc_now()
        now = self._last_message_monotonic = self._clock.monotonic()
        self._counts["messages"] += 1
        message_id, ack_id, event = message.message_id, message.ack_id, message.event
        transport = self._transport
        if message_id and message_id in self._dedup:
            self._counts["duplicates"] += 1
            log.debug("%s: duplicate %s dropped", self.config.client_id, message_id)
            if transport is not None:
                transport.ack(ack_id)
            return
        if isinstance(event, MalformedMessage):
            self._counts["malformed"] += 1
            log.warning("%s: malformed message %s: %s", self.config.client_id, message_id, event.reason)
            self._call("on_malformed_message", event)
            self._acknowledge(transport, ack_id, message_id)
            return
        if is_system_event(event):
            self._resync.observe(event, now)  # type: ignore[arg-type]
        else:
            admitted = self._resync.admit(event, now)  # type: ignore[arg-type]
            if admitted is None:  # held until the resync completes
                self._acknowledge(transport, ack_id, message_id)
                return
            event = admitted
        if not self._dispatch(event):
            self._redeliver(message_id)
            return
        if message_id == self._failing[0]:
            self._failing = ("", 0)
        self._acknowledge(transport, ack_id, message_id)
        if isinstance(event, TerminateClientSession):
            self._terminated(event)

    def _redeliver(self, message_id: str) -> None:
        # The handler raised. Handing it the next message would reorder the stream (the failed one would come
        # back after it, at some later reconnect): instead the connection is closed, unacknowledged, so the
        # broker delivers this message again, first, when the client is back. A message that keeps failing
        # is retried with the retry policy's growing delay, and every failure is reported.
        same, count = self._failing
        count = count + 1 if same == message_id else 1
        self._failing = (message_id, count)
        transport = self._detach()
        if transport is not None:
            transport.close()
        retry = self.config.retry
        delay = min(retry.initial_delay * retry.multiplier ** (count - 1), retry.max_delay)
        cause = ConnectionLost(
            reason=LossReason.HANDLER_FAILED,
            detail=f"the handler raised on message {message_id or '(no id)'} ({count} time(s)); "
            f"it is delivered again in {delay:.1f} s",
            server=str(transport.server) if transport else "",
            at=utc_now(),
        )
        self._lost_at = self._clock.monotonic()
        log.warning("%s: %s", self.config.client_id, cause.detail)
        self._announce_loss(cause)
        self._set_state(ConnectionState.RECONNECTING, cause.reason.value)
        self._sleep(delay)

    def _acknowledge(self, transport: StompTransport | None, ack_id: str, message_id: str) -> None:
        if transport is not None:
            transport.ack(ack_id)
        if message_id:
            self._dedup.seen(message_id)

    def _dispatch(self, event: Event) -> bool:
        if is_system_event(event):
            if isinstance(event, TerminateClientSession):
                self._call("on_session_terminated", event)
            handled = self._call("on_system_event", event)
            self._counts["system_events"] += handled
            return handled
        started = self._clock.monotonic()
        handled = self._call("on_event", event)
        took = self._clock.monotonic() - started
        self._handler_seconds += took
        self._handler_max = max(self._handler_max, took)
        self._counts["events"] += handled
        kind = type(event).__name__
        self._events_by_type[kind] = self._events_by_type.get(kind, 0) + 1
        return handled

    def _terminated(self, notice: TerminateClientSession) -> None:
        policy = self.config.on_terminate
        log.warning("%s: session terminated by the server; policy %s", self.config.client_id, policy.value)
        transport = self._detach()
        if transport is not None:
            transport.close()
        cause = ConnectionLost(
            reason=LossReason.SESSION_TERMINATED,
            detail="TerminateClientSession received",
            server=str(transport.server) if transport else "",
            at=utc_now(),
        )
        self._announce_loss(cause)
        if policy is TerminatePolicy.STOP:
            self._set_state(ConnectionState.TERMINATED, "TerminateClientSession")
            self._stopping.wait()  # until the application stops the client
            return
        self._lost_at = self._clock.monotonic()
        self._set_state(ConnectionState.RECONNECTING, "TerminateClientSession")
        if policy is TerminatePolicy.RECONNECT_AFTER_DELAY:
            self._clock.wait(self._stopping, self.config.terminate_reconnect_delay)

    def _connect(self) -> bool:
        retry = self.config.retry
        limit: tenacity.stop.stop_base = retry.stop or (
            tenacity.stop_after_attempt(retry.max_attempts) if retry.max_attempts else tenacity.stop_never
        )
        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(tenacity.stop_when_event_set(self._stopping), limit),
            # Stable across tenacity versions (wait_exponential_jitter renamed its arguments).
            wait=retry.wait
            or tenacity.wait_exponential(
                multiplier=retry.initial_delay, max=retry.max_delay, exp_base=retry.multiplier
            )
            + tenacity.wait_random(0, retry.jitter),
            retry=tenacity.retry_if_exception(
                lambda exc: isinstance(exc, AttemptFailed) and exc.reason.retryable
            ),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._attempt(attempt.retry_state.attempt_number)
        except AttemptFailed as exc:
            if self._stopping.is_set():
                return False
            self._failure = ClientStopped(self._last_loss)
            log.error("%s: giving up: %s", self.config.client_id, exc)
            self._set_state(ConnectionState.STOPPED, f"gave up: {exc.reason.value}")
            self._stopped.set()
            return False
        return self._transport is not None

    def _sleep(self, seconds: float) -> None:
        self._clock.wait(self._stopping, seconds)  # a stop interrupts the backoff

    def _attempt(self, number: int) -> None:
        if self._stopping.is_set():
            return
        failure: AttemptFailed | None = None
        for server in self.config.servers:
            self._epoch += 1
            transport = StompTransport(self.config, server, self._epoch, self._receive, self._activity)
            try:
                transport.open()
            except AttemptFailed as exc:
                failure = exc
                self._counts["failed_attempts"] += 1
                cause = ConnectionLost(
                    reason=exc.reason, detail=exc.detail, server=str(server), at=utc_now(), attempt=number
                )
                self._last_loss = cause
                log.warning(
                    "%s: attempt %d on %s failed: %s: %s",
                    self.config.client_id,
                    number,
                    server,
                    exc.reason.value,
                    exc.detail,
                )
                self._call("on_connection_lost", cause)
                if not exc.reason.retryable:
                    raise
                continue
            self._transport = transport
            with self._watch_lock:
                self._watchdog.start(self._clock.monotonic())
            downtime = 0.0 if self._lost_at is None else self._clock.monotonic() - self._lost_at
            self._counts["connections"] += 1
            self._resync.connected(str(server), self._clock.monotonic())
            self._set_state(ConnectionState.CONNECTED, f"subscribed on {server}")
            self._call(
                "on_connection_restored",
                ConnectionRestored(
                    server=str(server),
                    at=utc_now(),
                    attempts=number,
                    downtime=downtime,
                    session=transport.session,
                ),
            )
            return
        assert failure is not None  # noqa: S101  # the server list is never empty
        raise failure

    # The watchdog thread.

    def _watch(self) -> None:
        tick = min(_WATCHDOG_TICK_MAX, self.config.keepalive_timeout / 4)
        while not self._clock.wait(self._stopping, tick):
            with self._watch_lock:
                now = self._clock.monotonic()
                expired = self._watchdog.expired(now) and not self._busy and self._inbox.empty()
                silence = self._watchdog.silence(now)
                if expired:
                    self._watchdog.stop()
            transport = self._transport
            if transport is not None and not expired and transport.heartbeats_overdue():
                transport.abort(LossReason.HEARTBEAT_TIMEOUT, "no heart-beat from the broker in time")
                continue
            if expired and transport is not None:
                self._set_state(ConnectionState.STALE, f"silent for {silence:.1f} s")
                transport.abort(
                    LossReason.WATCHDOG_EXPIRED,
                    f"nothing from the server for {silence:.1f} s (keepalive_timeout "
                    f"{self.config.keepalive_timeout:g} s)",
                )

    # The primary-check thread (only with return_to_primary and a standby).

    def _home(self) -> None:
        primary = self.config.servers[0]
        while not self._clock.wait(self._stopping, self.config.primary_check_interval):
            transport = self._transport
            if transport is None or transport.server == primary:
                continue
            try:
                self._side_transport(primary).probe()
            except AttemptFailed as exc:
                log.debug("%s: the primary %s is still down: %s", self.config.client_id, primary, exc.detail)
                continue
            log.info("%s: the primary %s answers again", self.config.client_id, primary)
            self._inbox.put(_ReturnToPrimary(transport.epoch))
