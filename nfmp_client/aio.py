"""nfmp_client.aio: the client for asyncio applications.

::

    async def rebuild(request: ResyncRequest) -> None:
        ...  # fetch the server's current state (an async HTTP client), replace the local copy

    async with AsyncNfmpClient(config, resync=rebuild) as client:
        async for event in client.events():
            await apply(event)  # acknowledged when the loop asks for the next one

:class:`AsyncNfmpClient` gives an asyncio application the threaded :class:`~nfmp_client.NfmpClient`'s
guarantees with asyncio's idioms. Underneath it *is* that client: the same supervisor thread owns the
connection, the watchdog, the resync decisions and the acknowledgements, and nothing of it runs on the event
loop. What crosses between the two is one event at a time, so that:

* **An event is acknowledged only once the application is done with it**: when the loop asks for the next
  one (``async for`` does), or at :meth:`EventStream.ack`. Until then the broker keeps it: a process that
  dies loses nothing, and the event comes again after a restart.
* **Buffering is bounded, and a slow consumer slows the stream**: the supervisor waits while the application
  works on an event, and the broker sends at most ``ClientConfig.prefetch`` unacknowledged messages. Memory
  does not grow with the backlog (back-pressure reaches the server's queue).
* **A consumer that raises loses nothing**: the event it raised on was not acknowledged. Read the stream as
  ``async with client.events() as events: async for event in events: ...`` and the client learns how the
  loop ended: an exception is a handler failure (the broker delivers the event again after the retry
  policy's delay, before anything that followed it; after ``max_handler_failures`` it is given up with an
  ``UNDELIVERABLE`` resync, exactly as a threaded handler that raises), a ``break`` finishes the event. A
  plain ``async for`` cannot tell the two apart: an event it left unfinished comes again first on the next
  iteration, or from the broker after a stop.
* **The resync is a coroutine of the application's** (*resync*): the client runs it as a task on the loop
  when a resync is due, completes the request when it returns and fails it (another follows) when it
  raises. Meanwhile data events are held and replayed afterwards (``HOLD_AND_REPLAY``) or keep coming
  (``APPLY_LIVE``). A newer request cancels the task of the one it replaces; a stop cancels it too, and the
  next run owes the resync.
* **Notifications** (connection lost and restored, resync requests, system events, the server's
  TerminateClientSession, malformed and undeliverable messages) come from
  :meth:`AsyncNfmpClient.notifications`, from a bounded buffer that never holds the client up (the oldest
  are dropped, and counted, if nobody reads).
* **Stopping** (leaving ``async with``, :meth:`AsyncNfmpClient.stop`, a cancellation of the task) gives the
  event in hand back to the broker unacknowledged, cancels the resync task, and returns once no callback runs
  and no connection is open. The durable subscription stays, as with the threaded client.
* **A client that stops by itself** (it gave up reconnecting, the server ended the session under
  ``TerminatePolicy.STOP``) ends :meth:`AsyncNfmpClient.events` by raising why.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Final, Union, final

from attrs import define, field, frozen

from ._client import Handler, NfmpClient
from ._clock import Clock
from ._config import ClientConfig
from ._delivery import HandOverAbandoned
from ._engine import TransportFactory
from ._events import DataEvent, Event, SystemEvent
from ._exceptions import LifecycleError, MalformedMessage, NfmpError
from ._public import claim_public_names as _claim_public_names
from ._resync import ResyncRequest
from ._status import (
    ClientStatistics,
    ConnectionLost,
    ConnectionRestored,
    ConnectionState,
    Health,
)

__all__ = [
    "DEFAULT_MAX_NOTIFICATIONS",
    "AsyncNfmpClient",
    "EventStream",
    "Notification",
    "ResyncCallable",
    "Undeliverable",
    "UnfinishedEvent",
]

log = logging.getLogger("nfmp_client")

DEFAULT_MAX_NOTIFICATIONS: Final = 1000
"""How many unread notifications :class:`AsyncNfmpClient` keeps by default (the oldest go first)."""

_LOOP_CHECK = 0.5  # seconds between the supervisor's looks at whether the event loop it waits for is gone
_STATE_POLL = 0.25  # seconds a thread waits at a time for a state, so that a cancelled wait ends soon


@frozen
class Undeliverable:
    """An event given up after the application failed on it ``max_handler_failures`` times in a row."""

    event: Event
    """The event given up. For a data event a resync follows, since the application's copy lacks it."""
    error: BaseException
    """What the application raised the last time."""


Notification = Union[
    ConnectionLost,
    ConnectionRestored,
    ResyncRequest,
    SystemEvent,
    MalformedMessage,
    Undeliverable,
]
"""What :meth:`AsyncNfmpClient.notifications` yields.

A :class:`~nfmp_client.ConnectionLost` (a loss or a failed attempt), a
:class:`~nfmp_client.ConnectionRestored`, a :class:`~nfmp_client.ResyncRequest` (when the client asks for
a resync; the *resync* coroutine carries it out), a :class:`~nfmp_client.SystemEvent` for this client (a
TerminateClientSession among them), a :class:`~nfmp_client.MalformedMessage` (acknowledged, the stream goes
on), an :class:`Undeliverable`.
"""

ResyncCallable = Callable[[ResyncRequest], Awaitable[None]]
"""The application's resync: rebuild the local copy from the server's current state, then return."""


class UnfinishedEvent(NfmpError, RuntimeError):
    """The application raised on an event inside ``async with client.events()``: the client's handler failure.

    What the client's log shows for the failure, chained to the application's own exception (the one
    :class:`Undeliverable` carries).
    """


class _Outcome(enum.Enum):
    DONE = "done"  # acknowledge it
    FAILED = "failed"  # a handler failure: delivered again, given up after max_handler_failures
    ABANDONED = "abandoned"  # the client stops: not acknowledged, not counted (delivered again next time)


@define(eq=False)
class _Slot:
    """One data event on its way from the supervisor thread to the loop and back."""

    event: DataEvent
    settled: threading.Event = field(factory=threading.Event)
    outcome: _Outcome | None = None
    error: Exception | None = None  # what the application raised (FAILED)

    def settle(self, outcome: _Outcome, error: Exception | None = None) -> None:
        """Say how the application finished the event (on the loop; first word counts)."""
        if self.outcome is None:
            self.outcome, self.error = outcome, error
            self.settled.set()


@final
class EventStream:
    """The data events, in the order of the stream, each acknowledged once the application is done with it.

    Made by :meth:`AsyncNfmpClient.events`. An event is done when the stream is asked for the next one, or at
    :meth:`ack`. Used as an async context manager, the stream also learns how the loop ended: an exception
    fails the event in hand (the client's handler-failure path), a normal exit or ``break`` finishes it.
    One stream is read at a time.
    """

    def __init__(self, client: AsyncNfmpClient) -> None:
        """Read *client*'s events (use :meth:`AsyncNfmpClient.events`)."""
        self._client = client
        self._slot: _Slot | None = None
        self._closed = False

    def __aiter__(self) -> EventStream:
        """Return the stream itself."""
        return self

    async def __anext__(self) -> DataEvent:
        """Finish the event given last, then wait for the next one.

        Raises:
            StopAsyncIteration: The client was stopped, or this stream was closed.
            BaseException: Why the client stopped by itself (:attr:`AsyncNfmpClient.failure`).
            LifecycleError: Another stream is waiting for events already.
        """
        self.ack()
        if self._closed:
            raise StopAsyncIteration
        slot = await self._client._take(self)
        self._slot = slot
        return slot.event

    def ack(self) -> None:
        """Finish the event given last now (it is acknowledged); nothing if there is none."""
        slot, self._slot = self._slot, None
        if slot is not None:
            self._client._settle(slot, _Outcome.DONE)

    async def __aenter__(self) -> EventStream:
        """Return the stream itself."""
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _tb: TracebackType | None
    ) -> None:
        """Finish the event in hand (no error, ``break``), fail it (an exception), or keep it (cancelled).

        A failed event comes again through the client's handler-failure path; one kept because the task was
        cancelled comes again first to the next stream, or from the broker after a stop.
        """
        slot, self._slot = self._slot, None
        self._closed = True
        if slot is None:
            return
        if error is None:
            self._client._settle(slot, _Outcome.DONE)
        elif isinstance(error, Exception):
            self._client._settle(slot, _Outcome.FAILED, error)
        else:
            self._client._release(slot)  # CancelledError, KeyboardInterrupt: nobody's fault, keep it


@final
class AsyncNfmpClient:
    """A supervised NFM-P event subscription for asyncio: the threaded client's guarantees, awaited.

    Example::

        async with AsyncNfmpClient(config, resync=rebuild) as client:
            async for event in client.events():
                await apply(event)

    Everything the threaded :class:`~nfmp_client.NfmpClient` does (reconnection with failover, heart-beats
    and the keep-alive watchdog, the resync decisions, de-duplication, the persisted baseline) it does here
    too, on its own thread; see the module's documentation for how events, the resync and notifications
    reach the loop.
    """

    def __init__(
        self,
        config: ClientConfig,
        *,
        resync: ResyncCallable | None = None,
        max_notifications: int = DEFAULT_MAX_NOTIFICATIONS,
        clock: Clock | None = None,
        transport: TransportFactory | None = None,
    ) -> None:
        """Prepare the client; nothing connects before :meth:`start` (or ``async with``).

        Args:
            config: The configuration.
            resync: The application's resync coroutine function; it gets the
                :class:`~nfmp_client.ResyncRequest` (its reasons, its evidence, ``aborted``). Returning
                completes the request, raising fails it (another follows). None: the request completes at
                once, as with a :class:`~nfmp_client.Handler` that does not override ``on_resync_required``
                (right for an application that keeps no copy, such as a logger).
            max_notifications: How many unread notifications are kept (the oldest are dropped).
            clock: The source of time (default: the real monotonic clock).
            transport: Makes each connection (default: stomp.py; tests pass
                :class:`~nfmp_client.testing.MemoryBroker`).
        """
        if max_notifications < 1:
            raise ValueError(f"max_notifications must be at least 1, not {max_notifications!r}")
        self.config = config
        """The configuration."""
        self._resync_fn = resync
        self._client = NfmpClient(config, _Bridge(self), clock=clock, transport=transport)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = threading.Event()  # read by the supervisor thread: hand nothing more over
        self._run = 0
        # Loop-side state (touched on the event loop only). The supervisor hands over one event at a time
        # and waits for it: there is at most one slot, offered (no reader yet) or read by _reader.
        self._slot: _Slot | None = None
        self._reader: EventStream | None = None
        self._event_arrived = _Wakeup("events()")
        self._notices: collections.deque[Notification] = collections.deque(maxlen=max_notifications)
        self._notice_arrived = _Wakeup("notifications()")
        self._dropped = 0
        self._resyncs: set[asyncio.Task[None]] = set()
        self._finished = True

    # ----------------------------------------------------------------------------------- reading

    @property
    def state(self) -> ConnectionState:
        """The connection state now."""
        return self._client.state

    @property
    def failure(self) -> BaseException | None:
        """Why the client stopped by itself, or None (see :attr:`nfmp_client.NfmpClient.failure`)."""
        return self._client.failure

    @property
    def last_loss(self) -> ConnectionLost | None:
        """The most recent connection loss or failed attempt, or None."""
        return self._client.last_loss

    @property
    def last_message_at(self) -> datetime | None:
        """When the last message of any kind arrived (aware UTC), or None."""
        return self._client.last_message_at

    @property
    def statistics(self) -> ClientStatistics:
        """What the client has counted so far (see :class:`~nfmp_client.ClientStatistics`)."""
        return self._client.statistics

    @property
    def notifications_dropped(self) -> int:
        """How many notifications were dropped unread because the buffer was full."""
        return self._dropped

    def health(self) -> Health:
        """Say whether the application's copy can be trusted now (see :meth:`.NfmpClient.health`)."""
        return self._client.health()

    @property
    def resync(self) -> ResyncRequest | None:
        """The resync under way, or None."""
        return self._client.resync

    @property
    def resync_epoch(self) -> int:
        """The epoch of the last resync requested, 0 before any; events carry theirs in the header."""
        return self._client.resync_epoch

    @property
    def in_sync(self) -> bool:
        """Whether the last resync completed and nothing calls for another."""
        return self._client.in_sync

    async def wait_for_state(self, *states: ConnectionState, timeout: float | None = None) -> bool:
        """Wait until the state is one of *states*; return whether it is (False after *timeout* seconds)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            wait = _STATE_POLL if deadline is None else min(_STATE_POLL, deadline - loop.time())
            if await asyncio.to_thread(self._client.wait_for_state, *states, timeout=max(0.0, wait)):
                return True
            if deadline is not None and loop.time() >= deadline:
                return False

    # --------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Start connecting in the background; returns at once (see :meth:`wait_for_state`).

        Does nothing while the client runs; starts again after a stop.

        Raises:
            StateError: The persisted resync baseline cannot be used.
            LifecycleError: The last run is still stopping, or the client runs on another event loop.
        """
        loop = asyncio.get_running_loop()
        if not self._finished:
            if loop is not self._loop:
                raise LifecycleError("the client already runs on another event loop")
            return
        self._loop = loop
        self._closing.clear()
        self._slot = self._reader = None
        self._notices.clear()
        self._finished = False
        self._run += 1
        try:
            self._client.start()
        except BaseException:
            self._finished = True
            raise
        run = self._run
        threading.Thread(
            target=self._watch, args=(loop, run), name=f"nfmp-aio-watch-{run}", daemon=True
        ).start()

    async def stop(self, timeout: float = 10.0) -> None:
        """Give the event in hand back unacknowledged, cancel the resync task, disconnect and stop.

        The durable subscription stays, and the server keeps events for it. Returns once no callback runs
        and no connection is open (or after *timeout* seconds, logged). Idempotent.
        """
        await self._end(self._client.stop, timeout)

    async def decommission(self, timeout: float = 10.0) -> None:
        """Stop and delete the durable subscription, with the events stored for this client.

        Raises:
            SubscriptionRemovalFailed: No server confirmed the removal.
        """
        await self._end(self._client.decommission, timeout)

    async def _end(self, call: Callable[[float], None], timeout: float) -> None:
        self._closing.set()
        if not self._finished:
            self._close()
        # The supervisor may be waiting for the loop (an event in hand): it was answered above, so this
        # thread's join cannot wait for the loop it is awaited on.
        await asyncio.shield(asyncio.to_thread(call, timeout))

    async def __aenter__(self) -> AsyncNfmpClient:
        """Start the client."""
        await self.start()
        return self

    async def __aexit__(
        self, _kind: type[BaseException] | None, _error: BaseException | None, _tb: TracebackType | None
    ) -> None:
        """Stop the client (the durable subscription stays)."""
        await self.stop()

    def __repr__(self) -> str:
        """Show the client id and the state."""
        return f"<AsyncNfmpClient {self.config.client_id} {self.state.value}>"

    # ------------------------------------------------------------------------------- streams

    def events(self) -> EventStream:
        """Return the stream of data events (see :class:`EventStream`)."""
        return EventStream(self)

    async def notifications(self) -> AsyncIterator[Notification]:
        """Yield the notifications as they come; end when the client stops (after the ones left unread).

        One reader at a time. Nothing here holds the client up: unread notifications beyond
        ``max_notifications`` are dropped, oldest first (:attr:`notifications_dropped`).
        """
        while True:
            while self._notices:
                yield self._notices.popleft()
            if self._finished:
                return
            await self._notice_arrived.wait()

    # ------------------------------------------------------------- on the loop (from the streams)

    async def _take(self, stream: EventStream) -> _Slot:
        # The slot offered, or one left unfinished by a stream that ended (a plain ``async for`` cannot say
        # how, a cancelled one kept it): again, first.
        if self._run == 0:
            raise LifecycleError("events() read before the client was started")
        while self._slot is None:
            if self._finished:
                failure = self._client.failure
                if failure is not None:
                    raise failure
                raise StopAsyncIteration
            await self._event_arrived.wait()
        self._reader = stream
        return self._slot

    def _settle(self, slot: _Slot, outcome: _Outcome, error: Exception | None = None) -> None:
        if slot is self._slot:
            self._slot = self._reader = None
        slot.settle(outcome, error)

    def _release(self, slot: _Slot) -> None:
        if slot is self._slot:
            self._reader = None  # the next stream gets it first

    def _close(self) -> None:
        # The run is over (stopped, or stopped by itself): give back what is in hand, end the streams.
        self._finished = True
        if self._slot is not None:
            self._slot.settle(_Outcome.ABANDONED)
        self._slot = self._reader = None
        for task in self._resyncs:
            task.cancel()
        self._event_arrived.wake()
        self._notice_arrived.wake()

    # ------------------------------------------------------- on the loop (posted by the bridge)

    def _offer(self, slot: _Slot) -> None:
        if self._finished or self._closing.is_set():
            slot.settle(_Outcome.ABANDONED)
            return
        assert self._slot is None  # noqa: S101  # the supervisor waits for each event it hands over
        self._slot = slot
        self._event_arrived.wake()

    def _notify(self, notice: Notification) -> None:
        if len(self._notices) == self._notices.maxlen:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.warning(
                    "%s: %d notification(s) dropped unread (max_notifications %d)",
                    self.config.client_id,
                    self._dropped,
                    self._notices.maxlen,
                )
        self._notices.append(notice)
        self._notice_arrived.wake()

    def _start_resync(self, request: ResyncRequest) -> None:
        self._notify(request)
        if self._finished:
            return  # stopping: the request stays open and the next run owes it
        for task in self._resyncs:
            task.cancel()  # replaced: its request is aborted
        if self._resync_fn is None:
            request.complete()
            return
        task = asyncio.get_running_loop().create_task(
            self._resync_task(self._resync_fn, request), name=f"nfmp-resync-{request.epoch}"
        )
        self._resyncs.add(task)
        task.add_done_callback(self._resyncs.discard)

    async def _resync_task(self, resync: ResyncCallable, request: ResyncRequest) -> None:
        try:
            await resync(request)
        except Exception as exc:
            log.exception("%s: the resync coroutine raised", self.config.client_id)
            if not request.settled:
                request.fail(f"{type(exc).__name__}: {exc}")
            return
        if not request.settled:
            request.complete()

    def _stopped(self, run: int) -> None:
        if run == self._run and not self._finished:
            self._close()

    # --------------------------------------------------------------- on the watcher thread

    def _watch(self, loop: asyncio.AbstractEventLoop, run: int) -> None:
        # Tells the loop when the client stopped (by itself: its streams end with the failure).
        self._client.wait_for_state(ConnectionState.STOPPED, ConnectionState.TERMINATED)
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody to tell
            loop.call_soon_threadsafe(self._stopped, run)

    # ---------------------------------------------------------- on the supervisor thread

    def _post(self, callback: Callable[..., None], *arguments: object) -> bool:
        # Hand a call over to the loop; False once the client is stopping or the loop is gone.
        loop = self._loop
        if loop is None or self._closing.is_set():
            return False
        try:
            loop.call_soon_threadsafe(callback, *arguments)
        except RuntimeError:  # the loop is closed: the application left without stopping the client
            self._orphaned()
            return False
        return True

    def _orphaned(self) -> None:
        if not self._closing.is_set():
            self._closing.set()
            log.error("%s: the event loop closed under a running client: stopping it", self.config.client_id)
            self._client.stop()  # from a callback: only asks

    def _hand_over(self, event: DataEvent) -> None:
        slot = _Slot(event)
        if not self._post(self._offer, slot):
            raise HandOverAbandoned
        loop = self._loop
        while not slot.settled.wait(_LOOP_CHECK):
            if loop is None or loop.is_closed():
                self._orphaned()
                raise HandOverAbandoned
        if slot.outcome is _Outcome.DONE:
            return
        if slot.outcome is _Outcome.FAILED:
            error = slot.error
            # Wrapped: the application's exception goes on unwinding on the loop's thread meanwhile.
            raise UnfinishedEvent(f"the application raised {type(error).__name__}: {error}") from error
        raise HandOverAbandoned

    def _hand_notice(self, notice: Notification) -> None:
        if not self._post(self._notify, notice):
            raise HandOverAbandoned

    def _hand_resync(self, request: ResyncRequest) -> None:
        request.defer()  # carried out by a task on the loop (or left open for the next run: stopping)
        self._post(self._start_resync, request)


@final
class _Wakeup:
    """Wakes the one task waiting for something on the loop (a second waiter at once is an error)."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._waiter: asyncio.Future[None] | None = None

    async def wait(self) -> None:
        if self._waiter is not None:
            raise LifecycleError(f"{self._what} is being read elsewhere")
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


@final
class _Bridge(Handler):
    """The threaded client's handler: runs on its supervisor thread, hands everything to the loop."""

    def __init__(self, owner: AsyncNfmpClient) -> None:
        self._owner = owner

    def on_event(self, event: DataEvent) -> None:
        self._owner._hand_over(event)  # returns once the application finished it

    def on_system_event(self, event: SystemEvent) -> None:
        self._owner._hand_notice(event)

    def on_resync_required(self, request: ResyncRequest) -> None:
        self._owner._hand_resync(request)

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        self._owner._hand_notice(cause)

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        self._owner._hand_notice(info)

    def on_undeliverable(self, event: Event, error: BaseException) -> None:
        # The application's own exception, where the client saw it (raised on this thread wrapped).
        cause = error.__cause__ if isinstance(error, UnfinishedEvent) else None
        self._owner._hand_notice(Undeliverable(event, cause or error))

    def on_malformed_message(self, error: MalformedMessage) -> None:
        self._owner._hand_notice(error)


_claim_public_names(globals(), __all__, __name__)
