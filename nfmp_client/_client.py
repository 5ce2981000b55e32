"""NfmpClient: a supervised NFM-P event subscription, and the Handler an application writes.

The client is a thin facade over its supervisor (``_supervisor``), the one owner of the connection, the resync
state and the callbacks. Three kinds of thread meet here, and only through the supervisor's inbox::

    transport (stomp.py's receiver): decode ──reports──> inbox ──> supervisor: dedupe, resync, handler, ack
    the application: start(), stop(), decommission(), a resync completed ──┘        (one step at a time)

* The transport's thread only stamps, decodes (bounded work: ``max_message_bytes``) and enqueues, never runs
  application code: a slow handler cannot starve heart-beats. Memory stays bounded because a message is
  acknowledged only after the handler returned and the broker sends at most ``prefetch`` unacknowledged
  messages: a slow handler slows the stream (back-pressure).
* The supervisor runs the handler, in order, acknowledges, watches for silence (the keep-alive watchdog and
  the broker's heart-beats are deadlines of its loop, not threads), and reconnects (tenacity backoff, failover
  across the server list) whenever the connection ends, for whatever reason.
* :meth:`NfmpClient.stop` only asks; the supervisor stops between two steps, closes a connection in progress
  instead of adopting it, and calls nothing after that.

The durable subscription is never removed implicitly: :meth:`NfmpClient.stop` keeps it (and the backlog the
server stores for it); only :meth:`NfmpClient.decommission` deletes it.
"""

from __future__ import annotations

import difflib
import logging
import threading
import warnings
from collections.abc import Collection
from datetime import datetime
from typing import Any, ClassVar, final

from ._clock import Clock, MonotonicClock
from ._config import ClientConfig
from ._engine import Runner, ThreadRunner, TransportFactory
from ._events import DataEvent, Event, SystemEvent, TerminateClientSession
from ._exceptions import LifecycleError, MalformedMessage
from ._resync import ResyncRequest
from ._status import (
    ClientStatistics,
    ConnectionLost,
    ConnectionRestored,
    ConnectionState,
    Health,
    HealthStatus,
)
from ._supervisor import Supervisor
from ._transport import stomp_transport

__all__ = ["Handler", "HandlerWarning", "NfmpClient"]

log = logging.getLogger("nfmp_client")


class HandlerWarning(UserWarning):
    """A :class:`Handler` subclass has an ``on_*`` method that is not one of Handler's callbacks.

    The client calls only the callbacks :class:`Handler` defines, so such a method (``on_resync_requested``
    for ``on_resync_required``) would silently never run. The warning comes when the subclass is created and
    names the closest callback. A method of the application's own that is meant to be named so is listed in
    :attr:`Handler.own_methods`.
    """


class Handler:
    """What an application implements: override the callbacks it cares about (the defaults do nothing).

    Callbacks run on the client's supervisor thread, one at a time, in the order of the stream. A callback
    that raises is logged. If :meth:`on_event` or :meth:`on_system_event` raises, the message is not
    acknowledged and the client reconnects (``LossReason.HANDLER_FAILED``, after a backoff that grows while
    the same message keeps failing): the broker delivers that message again, before anything that followed
    it. Nothing is lost and the order holds. A callback may call :meth:`NfmpClient.stop` (the client stops
    when it returns); one that raises a ``BaseException`` that is not an ``Exception`` (``SystemExit``) stops
    the client, and :meth:`NfmpClient.run_forever` raises it again.

    A misspelled callback would never be called, so creating a subclass with a public ``on_*`` method that
    Handler does not define warns (:class:`HandlerWarning`, naming the closest callback). A method of the
    application's own that is meant to be named so is listed in :attr:`own_methods`::

        class MyOss(Handler):
            own_methods = ("on_startup",)

            def on_startup(self) -> None: ...
    """

    own_methods: ClassVar[Collection[str]] = ()
    """Names of the subclass's own ``on_*`` methods, which are not callbacks: no :class:`HandlerWarning` for
    them. Those listed by its base classes count too."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Warn (:class:`HandlerWarning`) for each public ``on_*`` method of *cls* that is not a callback."""
        super().__init_subclass__(**kwargs)
        callbacks = sorted(name for name in vars(Handler) if name.startswith("on_"))
        own: set[str] = set()
        for klass in cls.__mro__:
            names = vars(klass).get("own_methods", ())
            own.update((names,) if isinstance(names, str) else names)
        for name in dir(cls):
            if not name.startswith("on_") or name in callbacks or name in own:
                continue
            if not callable(getattr(cls, name, None)):
                continue
            close = difflib.get_close_matches(name, callbacks, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the callbacks are {', '.join(callbacks)}."
            warnings.warn(
                f"{cls.__qualname__}.{name} is not a Handler callback, so the client never calls it: {hint} "
                f"If it is a method of its own, list it in {cls.__qualname__}.own_methods.",
                HandlerWarning,
                stacklevel=2,
            )

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

        This one callback runs on a thread of its own, beside the client's, so that a retrieval that takes
        minutes does not stop the client: it goes on reading the stream (system events are judged, held
        events acknowledged, silence watched). Check ``request.aborted`` now and then: a newer trigger (or a
        stop) makes this retrieval pointless. With ``APPLY_LIVE``, ``on_event`` may run at the same time.
        """

    def on_session_terminated(self, notice: TerminateClientSession) -> None:
        """React to the server ending this client's session (an administrator, or a server-side limit).

        Only a notice for this client id (or for no client in particular) comes here; one addressed to another
        client is ignored and counted (``ClientStatistics.ignored_notices``). What follows depends on
        ``ClientConfig.on_terminate``: with ``STOP`` the client stops and :meth:`NfmpClient.run_forever`
        raises :class:`~nfmp_client.SessionTerminated`.
        """

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        """React to a lost connection or a failed reconnection attempt: *cause* says why."""

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        """React to the connection being up and subscribed (also after the first connect)."""

    def on_undeliverable(self, event: Event, error: BaseException) -> None:
        """Take an event the handler raised on ``max_handler_failures`` times in a row (*error*: the last).

        The client gives it up so that one event cannot stall the stream: it is acknowledged, counted
        (``ClientStatistics.undeliverable``), and, for a data event, a resync follows (``UNDELIVERABLE``),
        because the application's copy lacks it. Store it for inspection here if the application wants to.
        """

    def on_malformed_message(self, error: MalformedMessage) -> None:
        """Report an undecodable message (*error* keeps its payload); it is acked and the stream goes on."""


@final
class NfmpClient:
    """A supervised subscription to an NFM-P event topic over STOMP.

    Example::

        with NfmpClient(config, MyOss()) as client:
            client.run_forever()
    """

    def __init__(
        self,
        config: ClientConfig,
        handler: Handler,
        *,
        clock: Clock | None = None,
        transport: TransportFactory | None = None,
        runner: Runner | None = None,
    ) -> None:
        """Prepare the client; nothing connects before :meth:`start`.

        Args:
            config: The configuration.
            handler: The application's callbacks.
            clock: The source of time (default: the real monotonic clock).
            transport: Makes each connection (default: stomp.py; tests pass
                :class:`~nfmp_client.testing.MemoryBroker`).
            runner: Runs the supervisor (default: a thread of its own; tests pass
                :class:`~nfmp_client.testing.ManualRunner` and step it on a fake clock).
        """
        self.config = config
        """The configuration."""
        self._clock = clock or MonotonicClock()
        self._runner = runner or ThreadRunner()
        self._supervisor = Supervisor(
            config,
            handler,
            clock=self._clock,
            transport_factory=transport or stomp_transport,
            spawn=self._runner.spawn,
        )
        self._lifecycle = threading.Lock()  # start() and stop() from several threads at once

    # ----------------------------------------------------------------------------------- reading

    @property
    def state(self) -> ConnectionState:
        """The connection state now."""
        return self._supervisor.state

    @property
    def last_loss(self) -> ConnectionLost | None:
        """The most recent connection loss or failed attempt, or None."""
        return self._supervisor.last_loss

    @property
    def last_message_at(self) -> datetime | None:
        """When the last message of any kind arrived (aware UTC), or None."""
        return self._supervisor.last_message_at

    @property
    def failure(self) -> BaseException | None:
        """Why the client stopped by itself, or None (running, or stopped by the application).

        :class:`~nfmp_client.SessionTerminated` (TerminateClientSession, policy ``STOP``),
        :class:`~nfmp_client.ClientStopped` (gave up reconnecting), :class:`~nfmp_client.ClientFailed` (an
        internal error, chained), or the ``BaseException`` a callback raised (``SystemExit``, ...). It is what
        :meth:`run_forever` raises.
        """
        return self._supervisor.failure

    @property
    def statistics(self) -> ClientStatistics:
        """What the client has counted so far (messages, events, duplicates dropped, losses, ...)."""
        return self._supervisor.statistics()

    def health(self) -> Health:
        """Say whether the application's copy can be trusted now, and why not.

        ``LIVE``: connected, in sync, messages coming. ``SYNCING``: connected, a resync is pending or under
        way. ``STALE``: connected, but nothing came for more than half the keep-alive timeout (the watchdog
        tears the connection down at the full timeout). ``DOWN``: not connected (reconnecting, terminated or
        stopped), with the last loss or the failure as the reason. ``STANDBY``: an exclusive consumer waiting
        for the queue, which another instance has.
        """
        supervisor = self._supervisor
        state = supervisor.state
        if state is not ConnectionState.CONNECTED:
            loss, failure = supervisor.last_loss, supervisor.failure
            why = state.value
            if failure is not None and state is ConnectionState.STOPPED:
                why += f": {type(failure).__name__}: {failure}"
            elif loss is not None:
                why += f": {loss.reason.value}: {loss.detail}"
            return Health(status=HealthStatus.DOWN, reason=why, state=state)
        if supervisor.standby:
            return Health(
                status=HealthStatus.STANDBY,
                reason="a standby: another consumer of the queue is active",
                state=state,
            )
        silence = supervisor.since_last_message()
        if silence is not None and silence > self.config.keepalive_timeout / 2:
            return Health(
                status=HealthStatus.STALE, reason=f"nothing from the server for {silence:.0f} s", state=state
            )
        resync = supervisor.resync
        if not resync.in_sync:
            request = resync.request
            why = (
                f"resync #{request.epoch} under way: {request.reason.value}"
                if request is not None
                else "a resync is due"
            )
            return Health(status=HealthStatus.SYNCING, reason=why, state=state)
        return Health(status=HealthStatus.LIVE, reason="connected and in sync", state=state)

    @property
    def resync(self) -> ResyncRequest | None:
        """The resync the application is working on, or None."""
        return self._supervisor.resync.request

    @property
    def resync_epoch(self) -> int:
        """The epoch of the last resync requested, 0 before any; events carry theirs in the header."""
        return self._supervisor.resync.epoch

    @property
    def in_sync(self) -> bool:
        """Whether the last resync completed and nothing calls for another (the application's copy holds)."""
        return self._supervisor.resync.in_sync

    def wait_for_state(self, *states: ConnectionState, timeout: float | None = None) -> bool:
        """Wait until the state is one of *states*; return whether it is (real seconds)."""
        changed = self._supervisor.state_changed
        with changed:
            return changed.wait_for(lambda: self._supervisor.state in states, timeout)

    # --------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start connecting in the background; returns at once (see :meth:`wait_for_state`).

        Does nothing while the client runs. Starts again after a stop, whatever ended the last run.

        Raises:
            StateError: The persisted resync baseline cannot be used (corrupt, another client id's).
            LifecycleError: The last run is still stopping (a callback has not returned yet), or called from
                one of the client's own callbacks.
        """
        with self._lifecycle:
            if self._runner.in_loop():
                raise LifecycleError("start() was called from one of the client's own callbacks")
            supervisor = self._supervisor
            if not supervisor.finished:
                if supervisor.stopping and not self._runner.join(0):
                    raise LifecycleError("the client is still stopping: a callback has not returned yet")
                if not supervisor.finished:
                    return
            supervisor.begin()
            self._runner.start(supervisor)

    def stop(self, timeout: float = 10.0) -> None:
        """Disconnect and stop. The durable subscription stays, and the server keeps events for it.

        Safe from any thread and idempotent. From one of the client's callbacks it only asks: the client
        stops when the callback returns. Elsewhere it returns once the client stopped: then no callback runs
        again and no connection is open (a connection in progress is closed, not adopted). If a callback is
        still running after *timeout* seconds, it returns anyway (logged); nothing is called after that
        callback.
        """
        self._stop(remove_durable=False, timeout=timeout)

    def decommission(self, timeout: float = 10.0) -> None:
        """Stop and delete the durable subscription, and with it the events stored for this client.

        Use when this client id is retired for good; a plain :meth:`stop` keeps the subscription. Not
        connected (or never started), it connects once to delete it. From a callback it only asks (a failure
        is then logged).

        Raises:
            SubscriptionRemovalFailed: No server confirmed the removal (each server's failure is listed).
        """
        self._stop(remove_durable=True, timeout=timeout)
        error = self._supervisor.removal_error
        if error is not None and not self._runner.in_loop():
            raise error

    def _stop(self, *, remove_durable: bool, timeout: float) -> None:
        supervisor = self._supervisor
        if supervisor.finished:
            if remove_durable:  # no loop to disturb: do it here
                supervisor.removal_error = supervisor.remove_offline()
            return
        supervisor.request_stop(remove_durable=remove_durable)
        if self._runner.in_loop():
            return
        if not self._runner.join(timeout):
            log.warning(
                "%s: still stopping after %g s: a callback has not returned; nothing is called after it",
                self.config.client_id,
                timeout,
            )

    def run_forever(self, duration: float | None = None) -> None:
        """Start (if needed) and block until the client stops, or for *duration* seconds; then stop it.

        Returns when the application stopped the client (:meth:`stop`, from a callback too), when *duration*
        passed, or on Ctrl-C; the durable subscription stays, as with :meth:`stop`. When the client stopped
        by itself, raises why (the same as :attr:`failure`).

        Raises:
            SessionTerminated: The server ended the session and the policy is ``TerminatePolicy.STOP``.
            ClientStopped: The client gave up reconnecting (the retry policy, or a refused login).
            ClientFailed: An internal error stopped the client (chained).
            BaseException: What a callback raised that is not an ``Exception`` (``SystemExit``, ...).
            LifecycleError: Called from one of the client's own callbacks.
        """
        if self._runner.in_loop():
            raise LifecycleError("run_forever() was called from one of the client's own callbacks")
        self.start()
        finished = False
        try:
            finished = self._runner.join(duration)
        except KeyboardInterrupt:
            pass
        finally:
            if not finished:
                self.stop()
        failure = self._supervisor.failure
        if failure is not None:
            raise failure

    def __enter__(self) -> NfmpClient:
        """Start the client."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop the client (the durable subscription stays)."""
        self.stop()

    def __repr__(self) -> str:
        """Show the client id and the state."""
        return f"<NfmpClient {self.config.client_id} {self.state.value}>"
