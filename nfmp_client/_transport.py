"""The STOMP connection: the only module that imports stomp.py.

stomp.py's weak points are handled here rather than inherited: its listener callbacks run on its receiver
thread (so ours only stamp and hand over, never call application code), ``connect(wait=True)`` can wait
forever (so nothing here waits for CONNECTED: the supervisor bounds it), and it does not reconnect after an
established connection drops (the supervisor does). Every way the connection ends is reported once, as a
:class:`~nfmp_client.engine.Lost` with a :class:`~nfmp_client.LossReason`, tagged with the connection's epoch
so that late news from an old connection is never mistaken for the current one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final, final

import stomp

from ._clock import Clock
from ._config import BrokerEndpoint, ClientConfig
from ._engine import AttemptFailed, FrameBatch, FrameReceived, Lost, Opened, TransportReport
from ._frames import install as install_frame_reader
from ._status import LossReason

__all__ = ["StompTransport", "no_delay", "stomp_transport"]

log = logging.getLogger("nfmp_client.transport")


class _WithholdPasscodes(logging.Filter):
    """stomp.py logs every frame it sends at DEBUG, the CONNECT frame with its passcode header included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "passcode" in record.getMessage():
            record.msg, record.args = "sending a frame with a passcode header (not logged)", None
        return True


logging.getLogger("stomp.py").addFilter(_WithholdPasscodes())


class _SocketError(logging.Filter):
    """Catches why stomp.py could not open a socket on this thread (it logs the reason, raises without it).

    stomp.py (9.0) logs ``could not connect to host H, port P: ERROR`` at WARNING and raises a bare
    ``ConnectFailedException``. Seen only while stomp.py's logger is enabled for WARNING (the default).
    """

    def __init__(self) -> None:
        super().__init__()
        self._thread = threading.get_ident()
        self.why: str | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            record.thread == self._thread
            and isinstance(record.msg, str)
            and record.msg.startswith("could not connect to host")
            and isinstance(args, tuple)
            and len(args) == 3
        ):
            error = args[2]
            if isinstance(error, TimeoutError) and not error.strerror:
                self.why = "timed out"
            elif isinstance(error, OSError) and error.strerror:
                self.why = error.strerror
            else:
                self.why = str(error) or type(error).__name__
        return True


@contextlib.contextmanager
def _socket_error_caught() -> Iterator[_SocketError]:
    logger = logging.getLogger("stomp.py")
    catcher = _SocketError()
    logger.addFilter(catcher)
    try:
        yield catcher
    finally:
        logger.removeFilter(catcher)


_SUBSCRIPTION_ID: Final = "nfmp"
_CLOSE_TIMEOUT: Final = 5.0
_JOIN_TIMEOUT: Final = 2.0  # stomp.py's threads end within moments of the socket's close
# ActiveMQ's answer to removing nothing (its durable subscriptions: see docs/background.rst, 'Durable
# subscriptions on ActiveMQ').
_NO_SUCH_DURABLE: Final = "no durable subscription exists"


def _classify_error(message: str) -> LossReason:
    # ActiveMQ refuses a second CONNECT with a client id in use (InvalidClientIDException), also while it
    # still holds the id of a half-open connection: see docs/background.rst, 'Durable subscriptions on
    # ActiveMQ'.
    text = message.lower()
    if "already connected" in text or "invalidclientid" in text:
        return LossReason.CLIENT_ID_IN_USE
    if any(word in text for word in ("authenticat", "password", "user name", "security", "not authorized")):
        return LossReason.AUTHENTICATION_FAILED
    return LossReason.BROKER_ERROR


class _Listener(stomp.ConnectionListener):  # type: ignore[misc]
    """Runs on stomp.py's receiver thread: records, stamps and hands over; nothing else."""

    def __init__(self, owner: StompTransport) -> None:
        self._owner = owner

    def on_connected(self, frame: Any) -> None:
        self._owner._on_connected(frame.headers.get("session", ""))

    def on_message(self, frame: Any) -> None:
        self._owner._on_message(frame.headers, frame.body)

    def on_heartbeat(self) -> None:
        self._owner._heard()  # the path is alive (not a sign of life from NFM-P)

    def on_receipt(self, frame: Any) -> None:
        self._owner._on_receipt(frame.headers.get("receipt-id", ""), None)

    def on_error(self, frame: Any) -> None:
        body = frame.body or b""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        message = (frame.headers.get("message", "") or text[:200]).strip()
        receipt = frame.headers.get("receipt-id", "")
        if receipt:
            self._owner._on_receipt(receipt, message)
        else:
            self._owner._on_error(message)

    def on_heartbeat_timeout(self) -> None:
        self._owner._heartbeat_timeout = True

    def on_disconnected(self) -> None:
        self._owner._on_disconnected()


def _end_on_tls_eof(transport: Any) -> None:
    """Make stomp.py notice a TLS connection closed by the peer.

    On a TLS socket stomp.py (9.0) runs non-blocking and reads an empty read (the peer's EOF) as "no data
    yet": its I/O loop spins and never reports the disconnection, which then waits for a heart-beat timeout.
    An empty ``bytes`` from a TLS socket is an EOF (no data yet raises ``SSLWantReadError``), so it ends the
    loop, which reports ``on_disconnected`` as over plain TCP.
    """
    receive = transport.receive

    def receive_or_end() -> Any:
        try:
            data = receive()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, stomp.exception.InterruptedException):
            raise
        except OSError:
            transport.running = False
            raise
        if data == b"":
            transport.running = False
        return data

    transport.receive = receive_or_end


def no_delay(transport: Any) -> None:
    """Send small frames (acknowledgements, heart-beats) at once.

    stomp.py leaves Nagle's algorithm on, which holds a small write back while an earlier one is not yet
    acknowledged by the peer's TCP, for up to its delayed-ACK time (40 ms on Linux).
    """
    sock = getattr(transport, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _tls_problem(config: ClientConfig, server: BrokerEndpoint) -> str | None:
    """Say why a TLS connection to *server* fails (stomp.py logs the reason and raises a bare error)."""
    tls = config.tls
    assert tls is not None  # noqa: S101  # only called with TLS on
    try:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if tls.ca_file:
            context.load_verify_locations(tls.ca_file)
        else:
            context.load_default_certs()
        if tls.cert_file:
            context.load_cert_chain(tls.cert_file, tls.key_file)
        with (
            socket.create_connection((server.host, server.port), config.retry.connect_timeout) as raw,
            context.wrap_socket(raw, server_hostname=server.host),
        ):
            return None
    except ssl.SSLCertVerificationError as exc:
        return f"TLS: the broker's certificate was refused: {exc.verify_message}"
    except (ssl.SSLError, OSError) as exc:
        return f"TLS: {type(exc).__name__}: {exc}"


@final
class StompTransport:
    """One stomp.py connection to one server, subscribed to the configured topic (a :class:`Transport`)."""

    def __init__(
        self,
        config: ClientConfig,
        server: BrokerEndpoint,
        *,
        epoch: int,
        sink: Callable[[TransportReport], None],
        clock: Clock,
    ) -> None:
        """Prepare a connection; nothing happens before :meth:`open`.

        Args:
            config: The client configuration.
            server: Where to connect.
            epoch: This connection's number; every report carries it.
            sink: Receives the reports (called on stomp.py's thread or the caller's; must not block).
            clock: The client's clock (arrival times, heart-beat deadlines, waits).
        """
        self.config = config
        self._server = server
        self._epoch = epoch
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._streaming = False  # open() was called: report what happens
        self._login_failed = False  # the login raised: its teardown's disconnection is not the reason
        self._fresh = False
        self._opened = False
        self._done = False  # reported Lost, or closed/aborted by the owner: report nothing more
        self._connected = threading.Event()
        self._failed = threading.Event()
        self._receipts: dict[str, Callable[[str | None], None]] = {}
        self._receipt_errors: dict[str, str] = {}  # an ERROR that answered a receipt of a side operation
        self._error = ""
        self._session = ""
        self._heartbeat_timeout = False
        self._last_heard = clock.monotonic()  # any frame or heart-beat from the broker
        self._conn: Any = None
        self._batching = False  # messages of one read from the socket are reported together
        self._batch: list[FrameReceived] = []  # on the receiver thread only

    @property
    def server(self) -> BrokerEndpoint:
        """Where this connection goes."""
        return self._server

    @property
    def epoch(self) -> int:
        """Return the connection's number."""
        return self._epoch

    @property
    def session(self) -> str:
        """The broker's session id for this connection ("" before it is open)."""
        return self._session

    # ------------------------------------------------------------------------------- the stream

    def open(self, *, fresh: bool = False) -> None:
        """Connect and log in; CONNECTED, the subscription and its receipt follow on stomp.py's thread.

        Reports :class:`Opened` once the subscription is confirmed, or :class:`Lost` (also at once, on this
        thread, when the TCP or TLS connection cannot be made).
        """
        self._streaming, self._fresh = True, fresh
        try:
            self._login(with_client_id=True)
        except AttemptFailed as exc:
            self._report(exc.reason, exc.detail, failed_login=True)

    def _on_connected(self, session: str) -> None:
        self._session = session
        self._last_heard = self._clock.monotonic()
        self._connected.set()
        if not self._streaming or self._done:
            return
        if self._fresh and self.config.durable_name is not None:
            self._remove_then_subscribe()
        else:
            self._subscribe()

    def _remove_then_subscribe(self) -> None:
        # A stale durable subscription (from an earlier stay on this server) goes, with its backlog.
        def removed(error: str | None) -> None:
            if error is not None and _NO_SUCH_DURABLE not in error.lower():
                self._report(_classify_error(error), error)
                self._abandon()
                return
            self._subscribe()

        self._send_with_receipt(
            removed,
            lambda receipt: self._conn.unsubscribe(
                _SUBSCRIPTION_ID,
                headers={
                    **self.config.dialect.remove_durable_headers(self.config.durable_name or ""),
                    "receipt": receipt,
                },
            ),
        )

    def _subscribe(self) -> None:
        config = self.config

        def confirmed(error: str | None) -> None:
            if error is not None:
                self._report(_classify_error(error), error)
                self._abandon()
                return
            with self._lock:
                if self._done:
                    return
                self._opened = True
            self._emit(Opened(epoch=self._epoch, session=self._session))

        self._send_with_receipt(
            confirmed,
            lambda receipt: self._conn.subscribe(
                config.destination,
                id=_SUBSCRIPTION_ID,
                ack=config.ack_mode,
                headers={
                    **config.dialect.subscribe_headers(
                        selector=config.selector,
                        subscription_name=config.durable_name,
                        prefetch=config.prefetch,
                        exclusive=config.exclusive,
                    ),
                    "receipt": receipt,
                },
            ),
        )

    def _send_with_receipt(self, then: Callable[[str | None], None], send: Callable[[str], None]) -> None:
        receipt = f"nfmp-{uuid.uuid4().hex[:12]}"
        self._receipts[receipt] = then
        try:
            send(receipt)
        except (stomp.exception.StompException, OSError) as exc:
            self._receipts.pop(receipt, None)
            self._report(LossReason.SOCKET_ERROR, f"{type(exc).__name__}: {exc}")
            self._abandon()

    def _on_receipt(self, receipt: str, error: str | None) -> None:
        then = self._receipts.pop(receipt, None)
        if then is not None:
            then(error)
        elif error is not None:
            self._on_error(error)

    def _on_message(self, headers: dict[str, str], body: bytes) -> None:
        # The headers are the frame's own dict, made for this frame alone by the parser.
        now = self._clock.monotonic()
        self._last_heard = now
        if self._done:
            return
        frame = FrameReceived(epoch=self._epoch, headers=headers, body=body, at=now)
        if self._batching:
            self._batch.append(frame)
        else:
            self._sink(frame)

    def _read_done(self) -> None:
        # The end of one read from the socket: its messages go to the sink together (none once the owner
        # closed the connection: it reports nothing more).
        if self._batch:
            if self._done:
                self._batch = []
            else:
                self._flush()

    def _flush(self) -> None:
        frames, self._batch = self._batch, []
        self._sink(frames[0] if len(frames) == 1 else FrameBatch(epoch=self._epoch, frames=tuple(frames)))

    def _emit(self, report: TransportReport) -> None:
        # The messages that came before this report (in the same read) are reported first: a
        # TerminateClientSession, say, before the loss of the connection that follows it.
        if self._batch:
            self._flush()
        self._sink(report)

    def _heard(self) -> None:
        self._last_heard = self._clock.monotonic()

    def _on_error(self, message: str) -> None:
        self._error = message
        self._failed.set()
        if not self._opened:  # refused while connecting: the broker closes the connection next anyway
            self._report(_classify_error(message), message)
            self._abandon()

    def _on_disconnected(self) -> None:
        self._failed.set()
        if self._heartbeat_timeout:
            reason, detail = LossReason.HEARTBEAT_TIMEOUT, "no heart-beat from the broker in time"
        elif self._error:
            reason, detail = _classify_error(self._error), self._error
        elif self._opened:
            reason, detail = LossReason.SOCKET_ERROR, "the connection was closed"
        else:
            reason, detail = LossReason.SOCKET_ERROR, "the broker closed the connection"
        self._report(reason, detail)

    def _report(self, reason: LossReason, detail: str, *, failed_login: bool = False) -> None:
        # A login that failed tears its socket down, and stomp.py reports that as a disconnection first:
        # the login's own reason (a refused certificate, say) is the one to report.
        with self._lock:
            if self._done or not self._streaming or (self._login_failed and not failed_login):
                return
            self._done = True
        self._emit(Lost(epoch=self._epoch, reason=reason, detail=detail))

    def ack(self, ack_id: str) -> None:
        """Acknowledge a message by its ``ack`` header (in ``client`` mode, every one before it too).

        Ignored once the connection is closed.
        """
        conn = self._conn
        if conn is not None and conn.is_connected():
            try:
                conn.ack(ack_id)
            except (stomp.exception.NotConnectedException, OSError):
                log.debug("ack of %s not sent: connection %d is gone", ack_id, self._epoch)

    def heartbeat_deadline(self) -> float | None:
        """When the broker's heart-beats are overdue (``heartbeat_grace`` intervals of total silence).

        stomp.py checks this itself only once per heart-beat interval, so a dead path can take a whole
        interval more to be reported; the supervisor checks at this deadline.
        """
        receive_ms = self.config.heartbeats[1]
        if not receive_ms or not self._connected.is_set() or self._done:
            return None
        return self._last_heard + receive_ms / 1000 * self.config.heartbeat_grace

    def close(self, *, remove_durable: bool = False) -> None:
        """Disconnect gracefully; the durable subscription stays unless *remove_durable*.

        Raises:
            AttemptFailed: *remove_durable* was asked and the broker did not confirm the removal.
        """
        with self._lock:
            self._done = True
        conn = self._conn
        if conn is None or not conn.is_connected():
            self._abandon()
            if remove_durable:
                raise AttemptFailed(LossReason.SOCKET_ERROR, "not connected: nothing removed", self._server)
            return
        try:
            if remove_durable:
                self._unsubscribe_durable()
            receipt, confirmed = self._receipt()
            conn.disconnect(receipt=None, headers={"receipt": receipt})
            self._await(confirmed, _CLOSE_TIMEOUT)
        except (stomp.exception.NotConnectedException, OSError):
            pass
        finally:
            self._abandon()

    def abort(self) -> None:
        """Tear the connection down at once; nothing more is reported."""
        with self._lock:
            self._done = True
        self._abandon()

    # ------------------------------------------------------------------------ side operations

    def remove_subscription(self) -> None:
        """Connect with the client id, delete the durable subscription, disconnect (blocking, bounded).

        Raises:
            AttemptFailed: The server could not be reached or did not confirm the removal.
        """
        try:
            with self._boundary():
                self._login(with_client_id=True)
                self._await_connected()
                self._unsubscribe_durable()
        finally:
            self.close()

    def probe(self) -> None:
        """Check that the server accepts a login, without a client id, then disconnect (blocking, bounded).

        Raises:
            AttemptFailed: The server refused or could not be reached.
        """
        try:
            with self._boundary():
                self._login(with_client_id=False)
                self._await_connected()
        finally:
            self.close()

    def _unsubscribe_durable(self) -> None:
        name = self.config.durable_name
        if name is None:
            return
        durable = self.config.dialect.remove_durable_headers(name)
        # A plain UNSUBSCRIBE first ends this connection's own subscription (ActiveMQ removes only an inactive
        # durable one); a side connection has none, and ActiveMQ answers a plain one with an ERROR.
        for headers in ({}, durable) if self._opened else (durable,):
            receipt, confirmed = self._receipt()
            self._conn.unsubscribe(_SUBSCRIPTION_ID, headers={**headers, "receipt": receipt})
            if not self._await(confirmed, _CLOSE_TIMEOUT) or self._receipt_errors.get(receipt):
                error = self._receipt_errors.get(receipt, "")
                if error and _NO_SUCH_DURABLE in error.lower():
                    continue
                raise AttemptFailed(
                    LossReason.BROKER_ERROR,
                    error
                    or self._error
                    or "the broker did not confirm the removal of the durable subscription",
                    self._server,
                )

    def _await_connected(self) -> None:
        timeout = self.config.retry.connect_timeout
        if self._await(self._connected, timeout):
            return
        self._abandon()
        if self._error:
            raise AttemptFailed(_classify_error(self._error), self._error, self._server)
        raise AttemptFailed(LossReason.CONNECT_TIMEOUT, f"no CONNECTED within {timeout:g} s", self._server)

    @contextlib.contextmanager
    def _boundary(self) -> Iterator[None]:
        # Nothing but AttemptFailed escapes a side operation.
        try:
            yield
        except AttemptFailed:
            raise
        except (stomp.exception.StompException, OSError) as exc:
            self._abandon()
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise AttemptFailed(LossReason.SOCKET_ERROR, detail, self._server) from None

    # ------------------------------------------------------------------------------ plumbing

    def _login(self, *, with_client_id: bool) -> None:
        # Opens TCP (and TLS) and sends CONNECT; CONNECTED comes later, on stomp.py's thread.
        config = self.config
        conn = stomp.Connection12(
            [(self._server.host, self._server.port)],
            heartbeats=config.heartbeats,
            reconnect_attempts_max=1,
            timeout=config.retry.connect_timeout,
            heart_beat_receive_scale=config.heartbeat_grace,
            auto_decode=False,  # bodies stay bytes: the XML parser honours the declared encoding
        )
        if config.tls is not None:
            conn.set_ssl(
                for_hosts=[(self._server.host, self._server.port)],
                key_file=str(config.tls.key_file) if config.tls.key_file else None,
                cert_file=str(config.tls.cert_file) if config.tls.cert_file else None,
                ca_certs=str(config.tls.ca_file) if config.tls.ca_file else None,
                ssl_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            _end_on_tls_eof(conn.transport)
        conn.set_listener("nfmp", _Listener(self))
        self._batching = install_frame_reader(conn.transport, self._read_done)
        self._conn = conn
        headers = dict(config.stomp_headers)
        if with_client_id and config.queue is None:  # a queue's consumers need none (and standbys share one)
            headers.update(config.dialect.connect_headers(config.client_id))
        try:
            with _socket_error_caught() as socket_error:
                conn.connect(config.username, config.password, wait=False, headers=headers)
        except stomp.exception.ConnectFailedException:
            self._login_failed = True
            self._abandon()
            # stomp.py only logs why (a refused connection, a refused certificate, a missing CA file): the
            # TLS layer is asked again; the socket's error is the one stomp.py logged.
            detail = (_tls_problem(config, self._server) if config.tls else None) or (
                f"cannot open a connection: {socket_error.why}"
                if socket_error.why
                else "cannot open a connection"
            )
            raise AttemptFailed(LossReason.SOCKET_ERROR, detail, self._server) from None
        except (OSError, ssl.SSLError, stomp.exception.StompException) as exc:
            self._login_failed = True
            self._abandon()
            raise AttemptFailed(
                LossReason.SOCKET_ERROR, f"{type(exc).__name__}: {exc}", self._server
            ) from None
        no_delay(conn.transport)

    def _receipt(self) -> tuple[str, threading.Event]:
        """Return a new receipt id and the event set when the broker answers it (an ERROR is kept)."""
        receipt, answered = f"nfmp-{uuid.uuid4().hex[:12]}", threading.Event()

        def then(error: str | None) -> None:
            if error is not None:
                self._receipt_errors[receipt] = error
            answered.set()

        self._receipts[receipt] = then
        return receipt, answered

    def _await(self, event: threading.Event, timeout: float) -> bool:
        # Like event.wait(timeout) on the client's clock, but gives up at once when the connection fails.
        deadline = self._clock.monotonic() + timeout
        while not event.is_set():
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0 or self._failed.is_set():
                return event.is_set()
            self._clock.wait(event, min(remaining, 0.02))
        return True

    def _abandon(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.transport.set_connected(False)
            conn.transport.disconnect_socket()
            conn.transport.stop()
        except Exception:  # tearing down: nothing useful to do with a failure
            log.debug("tearing down connection %d", self._epoch, exc_info=True)
        self._join_threads(conn)

    @staticmethod
    def _join_threads(conn: Any) -> None:
        # stomp.py's receiver and heart-beat threads end once the socket is closed: wait for them (not from
        # one of them), so that a stopped client leaves no thread behind.
        current = threading.current_thread()
        for thread in (getattr(conn.transport, "io_thread", None), getattr(conn, "heartbeat_thread", None)):
            if isinstance(thread, threading.Thread) and thread is not current and thread.is_alive():
                thread.join(_JOIN_TIMEOUT)

    def __repr__(self) -> str:
        """Show the server and the epoch."""
        return f"<StompTransport #{self._epoch} {self._server}>"


def stomp_transport(
    config: ClientConfig,
    server: BrokerEndpoint,
    *,
    epoch: int,
    sink: Callable[[TransportReport], None],
    clock: Clock,
) -> StompTransport:
    """Make a stomp.py connection: the default transport factory (a :class:`TransportFactory`)."""
    return StompTransport(config, server, epoch=epoch, sink=sink, clock=clock)
