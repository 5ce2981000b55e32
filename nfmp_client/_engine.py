"""The client's seams: the transport it talks through and the runner its supervisor runs on.

The supervisor owns the connection, the resync state and the application's callbacks, and is the only code
that touches them. What it needs from the outside world comes through two Protocols, so that tests can give it
an in-memory broker (:class:`~nfmp_client.testing.MemoryBroker`) and run it step by step on a fake clock
(:class:`~nfmp_client.testing.ManualRunner`), while production gives it stomp.py and a thread:

* a :class:`Transport` is one connection to one server. It never calls the supervisor: everything it has to
  say (the subscription is confirmed, a message arrived, the connection ended) is a :data:`TransportReport`
  handed to the *sink* it was made with, a function that only enqueues;
* a :class:`Runner` runs the supervisor's :class:`Loop`: a thread (:class:`ThreadRunner`), or a test that
  calls :meth:`Loop.step` itself.

Every report carries the connection's *epoch* (its number in the client's life): news from a connection the
supervisor already left is recognised and dropped, never mistaken for the current one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol, Union, final, runtime_checkable

from attrs import field, frozen

from ._status import LossReason

if TYPE_CHECKING:
    from ._clock import Clock
    from ._config import BrokerEndpoint, ClientConfig

__all__ = [
    "AttemptFailed",
    "FrameBatch",
    "FrameReceived",
    "Loop",
    "Lost",
    "Opened",
    "Runner",
    "ThreadRunner",
    "Transport",
    "TransportFactory",
    "TransportReport",
]


_SIDE_JOIN = 2.0  # seconds a finished loop waits for its side work before it says it is finished


@frozen(kw_only=True)
class Opened:
    """Connection *epoch* is up: logged in and the subscription confirmed."""

    epoch: int
    """The connection's number."""
    session: str = ""
    """The broker's session id, if it gave one."""


@frozen(kw_only=True)
class FrameReceived:
    """A MESSAGE frame arrived on connection *epoch*."""

    epoch: int
    """The connection's number."""
    headers: Mapping[str, str] = field(hash=False)
    """The STOMP headers, as received."""
    body: bytes
    """The body, as received (never decoded to text: the XML parser reads the declared encoding)."""
    at: float
    """When it arrived, on the client's monotonic clock (the keep-alive watchdog's input)."""


@frozen(kw_only=True)
class FrameBatch:
    """The MESSAGE frames of one read from the socket of connection *epoch*, in order.

    A transport may report several messages at once, so that the client hands them over in one step.
    """

    epoch: int
    """The connection's number."""
    frames: tuple[FrameReceived, ...]
    """The messages, in the order they arrived (each of this *epoch*)."""


@frozen(kw_only=True)
class Lost:
    """Connection *epoch* ended, or (before :class:`Opened`) could not be made."""

    epoch: int
    """The connection's number."""
    reason: LossReason
    """Why."""
    detail: str
    """Why, in words (the broker's message, the socket error); never a password."""


TransportReport = Union[Opened, FrameReceived, FrameBatch, Lost]
"""What a transport tells its sink."""


class AttemptFailed(Exception):
    """A blocking side operation of a transport (a probe, a removal) failed; *reason* says how.

    Internal: the client turns it into a :class:`~nfmp_client.ConnectionLost` value or a public error.
    """

    def __init__(self, reason: LossReason, detail: str, server: BrokerEndpoint) -> None:
        """Record why the operation on *server* failed."""
        super().__init__(f"{server}: {detail}")
        self.reason = reason
        self.detail = detail
        self.server = server


@runtime_checkable
class Transport(Protocol):
    """One connection to one server, subscribed to the configured topic; used by one supervisor.

    Only :meth:`open` reports (to the sink it was made with); every other method returns quietly, and a
    transport reports nothing more once :meth:`abort` or :meth:`close` was called.
    """

    @property
    def server(self) -> BrokerEndpoint:
        """Where this connection goes."""
        ...

    @property
    def epoch(self) -> int:
        """Return the connection's number; every report carries it."""
        ...

    def open(self, *, fresh: bool = False) -> None:
        """Start connecting: log in with the client id, then subscribe; return without waiting.

        The outcome is reported: :class:`Opened` once the broker confirmed the subscription, then a
        :class:`FrameReceived` per message (or a :class:`FrameBatch` of several), and one :class:`Lost` when
        the connection ends or cannot be made (a refusal, an ERROR frame, a closed socket). With *fresh*, an
        existing durable subscription of this name is deleted first, with its stored messages, and a new one
        made. The caller bounds the time :class:`Opened` may take.
        """
        ...

    def ack(self, ack_id: str) -> None:
        """Acknowledge a message by its ``ack`` header; ignored once the connection is gone.

        In ``client`` mode (:attr:`~nfmp_client.ClientConfig.ack_mode`) the acknowledgement is cumulative: it
        covers every message delivered before it on the subscription too.
        """
        ...

    def heartbeat_deadline(self) -> float | None:
        """When the broker's heart-beats are overdue unless one comes first (None: not checked).

        On the client's clock. The path to the broker is dead once it passes.
        """
        ...

    def close(self, *, remove_durable: bool = False) -> None:
        """Disconnect gracefully (bounded in time); the durable subscription stays unless *remove_durable*.

        Raises:
            AttemptFailed: *remove_durable* was asked and the broker did not confirm the removal.
        """
        ...

    def abort(self) -> None:
        """Tear the connection down at once (a connection in progress included); nothing more is reported."""
        ...

    def remove_subscription(self) -> None:
        """Connect with the client id, delete the durable subscription, disconnect (blocking, bounded).

        For a client that is not connected: nothing is delivered and nothing reported.

        Raises:
            AttemptFailed: The server could not be reached or did not confirm the removal.
        """
        ...

    def probe(self) -> None:
        """Check that the server accepts a login, without the client id (blocking, bounded), then disconnect.

        Without a client id the probe never collides with this client's own connection elsewhere.

        Raises:
            AttemptFailed: The server refused or could not be reached.
        """
        ...


class TransportFactory(Protocol):
    """Makes the transport for one connection (the default makes a stomp.py connection)."""

    def __call__(
        self,
        config: ClientConfig,
        server: BrokerEndpoint,
        *,
        epoch: int,
        sink: Callable[[TransportReport], None],
        clock: Clock,
    ) -> Transport:
        """Return a new, unopened transport to *server*, reporting to *sink* (which never blocks)."""
        ...


class Loop(Protocol):
    """What a runner runs: the client's supervisor."""

    @property
    def finished(self) -> bool:
        """Whether the loop has ended (the client stopped); it does nothing more."""
        ...

    def step(self) -> bool:
        """Do one piece of work: one item from the inbox or what is due now; return whether there was any."""
        ...

    def next_deadline(self) -> float:
        """When something is due on the client's clock if nothing arrives first (``inf``: nothing)."""
        ...

    def wait(self, timeout: float | None) -> None:
        """Block until something arrives in the inbox or *timeout* seconds of the client's clock passed."""
        ...


@runtime_checkable
class Runner(Protocol):
    """Runs a client's loop: in a thread of its own (:class:`ThreadRunner`), or step by step in a test."""

    def start(self, loop: Loop) -> None:
        """Start running *loop* until it is finished."""
        ...

    def join(self, timeout: float | None) -> bool:
        """Wait until the loop is finished, up to *timeout* seconds; return whether it is."""
        ...

    def in_loop(self) -> bool:
        """Whether the caller is the loop itself (a callback of the application's)."""
        ...

    def spawn(self, work: Callable[[], None], name: str) -> None:
        """Run *work* beside the loop; it is waited for, briefly, when the loop finishes.

        The primary check and the application's resync retrieval: they talk to the loop only through its
        inbox.
        """
        ...


@final
class ThreadRunner:
    """The production runner: the loop in a thread of its own, side work in short-lived threads."""

    def __init__(self, name: str = "nfmp-supervisor") -> None:
        """Name the loop's thread *name*."""
        self._name = name
        self._thread: threading.Thread | None = None
        self._side: list[threading.Thread] = []
        self._finished = threading.Event()
        self._finished.set()

    def start(self, loop: Loop) -> None:
        """Start a thread that steps *loop*, waiting for work when there is none, until it is finished."""
        previous = self._thread
        if previous is not None and previous is not threading.current_thread():
            previous.join()  # a finished loop's thread is about to end: its end must not count for this one
        self._finished.clear()
        self._thread = threading.Thread(target=self._run, args=(loop,), name=self._name, daemon=True)
        self._thread.start()

    def _run(self, loop: Loop) -> None:
        try:
            while not loop.finished:
                if not loop.step():
                    loop.wait(None)
        finally:
            # Side work ends soon after the loop (a probe within its connect timeout; a resync the
            # application runs sees request.aborted): waited for, but not for ever.
            deadline = time.monotonic() + _SIDE_JOIN
            for side in self._side:
                side.join(max(0.0, deadline - time.monotonic()))
            self._side.clear()
            self._finished.set()

    def join(self, timeout: float | None) -> bool:
        """Wait for the loop's thread to end (not from the loop itself: see :meth:`in_loop`)."""
        return self._finished.wait(timeout)

    def in_loop(self) -> bool:
        """Whether the caller runs on the loop's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def spawn(self, work: Callable[[], None], name: str) -> None:
        """Run *work* in a new thread; the loop's thread joins it before it ends."""
        self._side = [side for side in self._side if side.is_alive()]
        side = threading.Thread(target=work, name=name, daemon=True)
        self._side.append(side)
        side.start()

    def __repr__(self) -> str:
        """Show whether it runs."""
        return f"<ThreadRunner {self._name} {'finished' if self._finished.is_set() else 'running'}>"
