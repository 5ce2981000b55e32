"""The delivery path: one decoded message through de-duplication, the resync, the handler and the ack.

Data flows one way: a message (decoded on the transport's thread) comes in; it is dropped as a duplicate,
reported as malformed, judged by the resync coordinator (system events), held for a resync or handed to the
application (data events); then acknowledged. What the supervisor must do next is returned as a value: go
on, reconnect so that the broker delivers a failed message again, or end the session.
Runs on the supervisor thread only, like everything it touches.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable
from typing import Final, Union, final

from attrs import frozen

from ._config import ClientConfig
from ._coordinator import ResyncCoordinator
from ._dedup import RecentIds
from ._engine import Transport
from ._events import (
    DataEvent,
    Event,
    JmsMissedEvents,
    SystemEvent,
    SystemInfoEvent,
    TerminateClientSession,
    is_system_event,
)
from ._exceptions import MalformedMessage

__all__ = ["COUNTERS", "Decoded", "Delivery", "HandOverAbandoned", "Verdict"]

log = logging.getLogger("nfmp_client")

COUNTERS: Final = (
    "messages",
    "events",
    "system_events",
    "duplicates",
    "malformed",
    "handler_errors",
    "undeliverable",
    "ignored_notices",
    "connections",
    "losses",
    "failed_attempts",
)
"""The client's counters, as in :class:`~nfmp_client.ClientStatistics`."""


class HandOverAbandoned(Exception):  # not an error: a callback's way of saying "not now"
    """Raised by a callback that gives its event back unhandled because the client is stopping.

    The supervisor treats it like a callback it did not call (see :data:`Call`): the message is neither
    acknowledged nor counted as a handler failure, and the broker delivers it again next time. The asyncio
    facade raises it for the event its application had not finished when it stopped.
    """


@frozen
class Decoded:
    """A message of connection *epoch*, decoded on the transport's thread: an event or why it is not."""

    epoch: int
    message_id: str
    ack_id: str
    event: Event | MalformedMessage
    at: float
    """When it arrived, on the client's clock."""
    size: int = 0
    """Its bytes as received (body and headers)."""


class Verdict(enum.Enum):
    """What the supervisor does after a message."""

    CONTINUE = "continue"
    """Handled (or held, or dropped) and acknowledged: go on."""
    REDELIVER = "redeliver"
    """The handler raised: not acknowledged; reconnect so that the broker delivers it again, first."""
    HALTED = "halted"
    """The client is stopping: not handed to the handler, not acknowledged (delivered again next time)."""


@frozen
class Terminate:
    """A TerminateClientSession for this client was handled and acknowledged: end the session."""

    notice: TerminateClientSession


Outcome = Union[Verdict, Terminate]
"""What :meth:`Delivery.deliver` returns."""

Call = Callable[..., Union[bool, None]]
"""Calls a handler method by name with its arguments: True (returned), False (raised), None (not called:
stopping; or given back: :class:`HandOverAbandoned`)."""


@final
class Delivery:
    """Takes one message at a time from the supervisor to the application and back to the broker."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        call: Call,
        resync: ResyncCoordinator,
        counts: dict[str, int],
        clock: Callable[[], float],
        last_error: Callable[[], BaseException | None],
    ) -> None:
        """Deliver through *call* (the supervisor's fenced handler call), judging with *resync*.

        Args:
            config: The client configuration.
            call: Calls the application's callbacks (see :data:`Call`).
            resync: The resync coordinator.
            counts: The supervisor's counters, updated here.
            clock: The client's monotonic clock.
            last_error: What the last callback that raised raised.
        """
        self._config = config
        self._call = call
        self._resync = resync
        self._counts = counts
        self._clock = clock
        self._dedup = RecentIds(config.dedup_window)
        self._last_error = last_error
        self._failing = ("", 0)  # the message the handler raised on, and how many times in a row
        self._ack_every = config.ack_every
        self._owed: tuple[Transport, str] | None = None  # the last message handled and not acknowledged yet
        self._owed_count = 0
        self._owed_since = 0.0
        self.events_by_type: dict[str, int] = {}
        """Data events handed to ``on_event``, by class name."""
        self.handler_seconds = 0.0
        """Seconds spent in ``on_event`` in all."""
        self.handler_max = 0.0
        """The longest single ``on_event`` call."""

    def deliver(self, message: Decoded, transport: Transport, now: float) -> Outcome:
        """Take *message* (received on *transport* at *now*) through the path; say what comes next.

        Its acknowledgement may be owed for a while (see :meth:`flush_acks`).
        """
        if self._owed_count and self._clock() - self._owed_since >= self._config.ack_interval:
            self.flush_acks()
        self._counts["messages"] += 1
        message_id, ack_id, event = message.message_id, message.ack_id, message.event
        if message_id and message_id in self._dedup:
            self._counts["duplicates"] += 1
            log.debug("%s: duplicate %s dropped", self._config.client_id, message_id)
            transport.ack(ack_id)
            return Verdict.CONTINUE
        if isinstance(event, MalformedMessage):
            self._counts["malformed"] += 1
            log.warning("%s: malformed message %s: %s", self._config.client_id, message_id, event.reason)
            if self._call("on_malformed_message", event) is None:
                return Verdict.HALTED
            self._acknowledge(transport, ack_id, message_id)
            return Verdict.CONTINUE
        if is_system_event(event):
            return self._system(event, transport, ack_id, message_id, now)
        admitted = self._resync.admit(event, now, message.size)  # type: ignore[arg-type]
        if admitted is None:  # held until the resync completes
            self._acknowledge(transport, ack_id, message_id)
            return Verdict.CONTINUE
        handled = self.hand_over(admitted)
        if handled is None:
            return Verdict.HALTED
        if not handled:
            return self._failed(admitted, transport, ack_id, message_id, now)
        self._acknowledge(transport, ack_id, message_id)
        return Verdict.CONTINUE

    @property
    def failures(self) -> int:
        """How many times in a row the handler raised on the message it raised on last."""
        return self._failing[1]

    def _failed(
        self, event: Event, transport: Transport, ack_id: str, message_id: str, now: float
    ) -> Verdict:
        # The handler raised. Until max_handler_failures the message comes again (the supervisor reopens the
        # connection unacknowledged); then it is given up, so that one event cannot stall the stream for good.
        same, count = self._failing
        count = count + 1 if same == message_id else 1
        self._failing = (message_id, count)
        if count < self._config.max_handler_failures:
            return Verdict.REDELIVER
        self._failing = ("", 0)
        self.give_up(event, message_id, count, now)
        self._acknowledge(transport, ack_id, message_id)
        return Verdict.CONTINUE

    def give_up(self, event: Event, message_id: str, count: int, now: float) -> None:
        """Give *event* up after *count* failures of the handler, so that it cannot stall the stream for good.

        It is reported (``on_undeliverable``) and counted, and for a data event an UNDELIVERABLE resync is
        asked (the application's copy lacks it). Acknowledging it, if it came from the broker, is the
        caller's.
        """
        error = self._last_error() or RuntimeError("the handler raised")
        self._counts["undeliverable"] += 1
        log.error(
            "%s: message %s given up after %d failures of the handler (%s: %s)",
            self._config.client_id,
            message_id or "(no id)",
            count,
            type(error).__name__,
            error,
        )
        self._call("on_undeliverable", event, error)
        if not is_system_event(event):
            self._resync.undeliverable(
                {
                    "message_id": message_id,
                    "event": type(event).__name__,
                    "error": f"{type(error).__name__}: {str(error)[:200]}",
                },
                now,
            )

    def hand_over(self, event: DataEvent) -> bool | None:
        """Call ``on_event`` with *event* and count it; return as :data:`Call` does."""
        started = self._clock()
        handled = self._call("on_event", event)
        if handled is None:
            return None
        took = self._clock() - started
        self.handler_seconds += took
        self.handler_max = max(self.handler_max, took)
        if handled:
            self._counts["events"] += 1
            kind = type(event).__name__
            self.events_by_type[kind] = self.events_by_type.get(kind, 0) + 1
        return handled

    def _system(
        self, event: SystemEvent, transport: Transport, ack_id: str, message_id: str, now: float
    ) -> Outcome:
        addressee = self._other_addressee(event)
        if addressee is not None:
            # The selector admits every system event (Nokia's basic selector), those addressed to other
            # clients included: obeying another client's TerminateClientSession would end this session,
            # acting on its JmsMissedEvents would resync for nothing.
            self._counts["ignored_notices"] += 1
            log.warning(
                "%s: %s for %s ignored (not this client)",
                self._config.client_id,
                type(event).__name__,
                addressee,
            )
            self._acknowledge(transport, ack_id, message_id)
            return Verdict.CONTINUE
        self._resync.observe(event, now)
        if isinstance(event, TerminateClientSession) and self._call("on_session_terminated", event) is None:
            return Verdict.HALTED
        handled = self._call("on_system_event", event)
        if handled is None:
            return Verdict.HALTED
        if not handled:
            return self._failed(event, transport, ack_id, message_id, now)
        self._counts["system_events"] += 1
        self._acknowledge(transport, ack_id, message_id)
        if isinstance(event, TerminateClientSession):
            return Terminate(event)
        return Verdict.CONTINUE

    def _other_addressee(self, event: SystemEvent) -> str | None:
        # The other client a JmsMissedEvents, SystemInfoEvent or TerminateClientSession names (ALA_clientId,
        # or the body's clientId), or None: this client, or no one in particular. Another client's
        # SystemInfoEvent may be a stale one from a durable backlog: judged, it would flip the server's
        # identity back and forth.
        if not isinstance(event, (JmsMissedEvents, SystemInfoEvent, TerminateClientSession)):
            return None
        names = [event.header.client_id]
        if isinstance(event, TerminateClientSession):
            names.append(event.client_id)
        for name in names:
            if name not in ("", self._config.nfmp_client_id):
                return name
        return None

    def flush_acks(self) -> None:
        """Send the acknowledgement owed, if any: one cumulative ACK for every message handled since the last.

        The supervisor calls it when nothing more waits to be handled and before it leaves a connection.
        """
        owed, self._owed, self._owed_count = self._owed, None, 0
        if owed is not None:
            owed[0].ack(owed[1])

    def _acknowledge(self, transport: Transport, ack_id: str, message_id: str) -> None:
        if message_id and message_id == self._failing[0]:
            self._failing = ("", 0)
        if message_id:
            self._dedup.seen(message_id)
        if self._ack_every == 1:
            transport.ack(ack_id)
            return
        # Cumulative: the ACK of this message covers every one before it on this connection, all handled.
        owed = self._owed
        if owed is not None and owed[0] is not transport:
            self.flush_acks()  # (a connection left without a flush: its ACK is ignored, harmlessly)
        if not self._owed_count:
            self._owed_since = self._clock()
        self._owed = (transport, ack_id)
        self._owed_count += 1
        if self._owed_count >= self._ack_every:
            self.flush_acks()
