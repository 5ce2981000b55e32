"""The STOMP connection: the only module that imports stomp.py.

stomp.py's weak points are handled here rather than inherited: its listener callbacks run on its receiver
thread (so ours only stamp and enqueue, never parse or call application code), ``connect(wait=True)`` can wait
forever (so we wait for CONNECTED ourselves, with a timeout), and it does not reconnect after an established
connection drops (the client's supervisor does). Every way the connection ends is reported once, as a
:class:`~nfmp_client.LossReason`, tagged with the connection's epoch so that late news from an old
connection is never mistaken for the current one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Final, final

import stomp
from attrs import frozen

from ._config import BrokerEndpoint, ClientConfig
from ._status import LossReason

__all__ = ["AttemptFailed", "FrameReceived", "Lost", "StompTransport"]

log = logging.getLogger("nfmp_client.transport")


class _WithholdPasscodes(logging.Filter):
    """stomp.py logs every frame it sends at DEBUG, the CONNECT frame with its passcode header included."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "passcode" in record.getMessage():
            record.msg, record.args = "sending a frame with a passcode header (not logged)", None
        return True


logging.getLogger("stomp.py").addFilter(_WithholdPasscodes())

_SUBSCRIPTION_ID: Final = "nfmp"
_CLOSE_TIMEOUT: Final = 5.0


@frozen(kw_only=True)
class FrameReceived:
    """A MESSAGE frame, as received on connection *epoch*."""

    epoch: int
    headers: dict[str, str]
    body: bytes


@frozen(kw_only=True)
class Lost:
    """Connection *epoch* ended."""

    epoch: int
    reason: LossReason
    detail: str


class AttemptFailed(Exception):
    """A connection attempt failed; *reason* says how."""

    def __init__(self, reason: LossReason, detail: str, server: BrokerEndpoint) -> None:
        """Record why the attempt on *server* failed."""
        super().__init__(f"{server}: {detail}")
        self.reason = reason
        self.detail = detail
        self.server = server


def _classify_error(message: str) -> LossReason:
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
        self._owner._session = frame.headers.get("session", "")
        self._owner._connected.set()

    def on_message(self, frame: Any) -> None:
        self._owner._activity()
        self._owner._sink(
            FrameReceived(epoch=self._owner.epoch, headers=dict(frame.headers), body=frame.body)
        )

    def on_heartbeat(self) -> None:
        self._owner._last_heard = time.monotonic()  # the path is alive (not a sign of life from NFM-P)

    def on_receipt(self, frame: Any) -> None:
        receipt = frame.headers.get("receipt-id", "")
        waiter = self._owner._receipts.pop(receipt, None)
        if waiter is not None:
            waiter.set()

    def on_error(self, frame: Any) -> None:
        body = frame.body or b""
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        message = frame.headers.get("message", "") or text[:200]
        self._owner._error = message.strip()
        self._owner._failed.set()

    def on_heartbeat_timeout(self) -> None:
        self._owner._heartbeat_timeout = True

    def on_disconnected(self) -> None:
        self._owner._failed.set()
        self._owner._report_loss()


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
    """One STOMP connection to one server, subscribed to the configured topic. Used by one supervisor."""

    def __init__(
        self,
        config: ClientConfig,
        server: BrokerEndpoint,
        epoch: int,
        sink: Callable[[FrameReceived | Lost], None],
        on_activity: Callable[[], None],
    ) -> None:
        """Prepare a connection; nothing happens before :meth:`open`.

        Args:
            config: The client configuration.
            server: Where to connect.
            epoch: This connection's number; every report carries it.
            sink: Receives frames and the loss report (called on stomp.py's thread; must not block).
            on_activity: Called on every MESSAGE from the server (the watchdog's input; heart-beats prove
                only the broker's path, not NFM-P, so they do not count).
        """
        self.config = config
        self.server = server
        self.epoch = epoch
        self._sink = sink
        self._on_activity = on_activity
        self._connected = threading.Event()
        self._failed = threading.Event()
        self._receipts: dict[str, threading.Event] = {}
        self._error = ""
        self._session = ""
        self._heartbeat_timeout = False
        self._last_heard = time.monotonic()  # any frame or heart-beat from the broker
        self._closing = False
        self._abort_reason: tuple[LossReason, str] | None = None
        self._reported = threading.Lock()
        self._loss_sent = False
        self._conn: Any = None

    @property
    def session(self) -> str:
        """The broker's session id for this connection ("" before it is open)."""
        return self._session

    def _activity(self) -> None:
        self._last_heard = time.monotonic()
        self._on_activity()

    def open(self) -> None:
        """Connect, log in and subscribe; return when the broker confirmed the subscription.

        Raises:
            AttemptFailed: The server refused, did not answer within the connect timeout, or the TCP/TLS
                connection failed.
        """
        with self._boundary():
            self._login(with_client_id=True)
            self._subscribe()

    def probe(self) -> None:
        """Check that the server accepts a login: connect without a client id, then disconnect.

        Without a client id the probe never collides with this client's own connection elsewhere; nothing
        is subscribed and nothing delivered.

        Raises:
            AttemptFailed: As :meth:`open`.
        """
        try:
            with self._boundary():
                self._login(with_client_id=False)
        finally:
            self.close()

    @contextlib.contextmanager
    def _boundary(self) -> Iterator[None]:
        # Nothing but AttemptFailed escapes an attempt.
        try:
            yield
        except AttemptFailed:
            raise
        except (stomp.exception.StompException, OSError) as exc:
            self._abandon()
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise AttemptFailed(LossReason.SOCKET_ERROR, detail, self.server) from None

    def _login(self, *, with_client_id: bool) -> None:
        config = self.config
        timeout = config.retry.connect_timeout
        conn = stomp.Connection12(
            [(self.server.host, self.server.port)],
            heartbeats=config.heartbeats,
            reconnect_attempts_max=1,
            timeout=timeout,
            heart_beat_receive_scale=config.heartbeat_grace,
            auto_decode=False,  # bodies stay bytes: the XML parser honours the declared encoding
        )
        if config.tls is not None:
            conn.set_ssl(
                for_hosts=[(self.server.host, self.server.port)],
                key_file=str(config.tls.key_file) if config.tls.key_file else None,
                cert_file=str(config.tls.cert_file) if config.tls.cert_file else None,
                ca_certs=str(config.tls.ca_file) if config.tls.ca_file else None,
                ssl_version=ssl.PROTOCOL_TLS_CLIENT,
            )
            _end_on_tls_eof(conn.transport)
        conn.set_listener("nfmp", _Listener(self))
        self._conn = conn
        headers = dict(config.stomp_headers)
        if with_client_id:
            headers.update(config.dialect.connect_headers(config.client_id))
        try:
            conn.connect(config.username, config.password, wait=False, headers=headers)
        except stomp.exception.ConnectFailedException:
            self._abandon()
            # stomp.py only logs why (a refused certificate, a missing CA file): ask the TLS layer again.
            detail = (_tls_problem(config, self.server) if config.tls else None) or "cannot open a connection"
            raise AttemptFailed(LossReason.SOCKET_ERROR, detail, self.server) from None
        except (OSError, ssl.SSLError) as exc:
            self._abandon()
            raise AttemptFailed(
                LossReason.SOCKET_ERROR, f"{type(exc).__name__}: {exc}", self.server
            ) from None
        if not self._await(self._connected, timeout):
            closed_by_broker = self._failed.is_set()  # before _abandon, which ends the receiver (and sets it)
            self._abandon()
            if self._error:
                raise AttemptFailed(_classify_error(self._error), self._error, self.server)
            if closed_by_broker:
                raise AttemptFailed(LossReason.SOCKET_ERROR, "the broker closed the connection", self.server)
            raise AttemptFailed(LossReason.CONNECT_TIMEOUT, f"no CONNECTED within {timeout:g} s", self.server)

    def _subscribe(self) -> None:
        config = self.config
        timeout = config.retry.connect_timeout
        receipt, confirmed = self._receipt()
        self._conn.subscribe(
            f"/topic/{config.topic}",
            id=_SUBSCRIPTION_ID,
            ack="client-individual",
            headers={
                **config.dialect.subscribe_headers(
                    selector=config.selector, subscription_name=config.durable_name, prefetch=config.prefetch
                ),
                "receipt": receipt,
            },
        )
        if not self._await(confirmed, timeout):
            self._abandon()
            detail = self._error or f"the subscription was not confirmed within {timeout:g} s"
            reason = _classify_error(self._error) if self._error else LossReason.CONNECT_TIMEOUT
            raise AttemptFailed(reason, detail, self.server)
        self._error = ""

    def ack(self, ack_id: str) -> None:
        """Acknowledge one message (``client-individual``) by its ``ack`` header; ignored once closed."""
        conn = self._conn
        if conn is not None and conn.is_connected():
            try:
                conn.ack(ack_id)
            except (stomp.exception.NotConnectedException, OSError):
                log.debug("ack of %s not sent: connection %d is gone", ack_id, self.epoch)

    def close(self, *, remove_durable: bool = False) -> None:
        """Disconnect gracefully; the durable subscription stays unless *remove_durable*.

        With *remove_durable* the subscription is deleted on the broker, backlog included.

        Raises:
            AttemptFailed: *remove_durable* was asked and the broker did not confirm the removal.
        """
        self._closing = True
        conn = self._conn
        if conn is None or not conn.is_connected():
            return
        try:
            if remove_durable and self.config.durable_name is not None:
                for headers in ({}, self.config.dialect.remove_durable_headers(self.config.durable_name)):
                    receipt, confirmed = self._receipt()
                    conn.unsubscribe(_SUBSCRIPTION_ID, headers={**headers, "receipt": receipt})
                    if not self._await(confirmed, _CLOSE_TIMEOUT):
                        raise AttemptFailed(
                            LossReason.BROKER_ERROR,
                            self._error
                            or "the broker did not confirm the removal of the durable subscription",
                            self.server,
                        )
            receipt, confirmed = self._receipt()
            conn.disconnect(receipt=None, headers={"receipt": receipt})
            self._await(confirmed, _CLOSE_TIMEOUT)
        except (stomp.exception.NotConnectedException, OSError):
            pass
        finally:
            self._abandon()

    def abort(self, reason: LossReason, detail: str) -> None:
        """Tear the connection down at once (the watchdog's verdict); reported as *reason*."""
        self._abort_reason = (reason, detail)
        self._abandon()
        self._report_loss()

    def _abandon(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.transport.set_connected(False)
            conn.transport.disconnect_socket()
            conn.transport.stop()
        except Exception:  # tearing down: nothing useful to do with a failure
            log.debug("tearing down connection %d", self.epoch, exc_info=True)

    def _report_loss(self) -> None:
        with self._reported:
            if self._loss_sent or self._closing or not self._connected.is_set():
                return
            self._loss_sent = True
        if self._abort_reason is not None:
            reason, detail = self._abort_reason
        elif self._heartbeat_timeout or self._heartbeats_overdue():
            reason, detail = LossReason.HEARTBEAT_TIMEOUT, "no heart-beat from the broker in time"
        elif self._error:
            reason, detail = _classify_error(self._error), self._error
        else:
            reason, detail = LossReason.SOCKET_ERROR, "the connection was closed"
        self._sink(Lost(epoch=self.epoch, reason=reason, detail=detail))

    def heartbeats_overdue(self) -> bool:
        """Whether the broker's heart-beats are overdue (``heartbeat_grace`` intervals of total silence).

        stomp.py checks this itself only once per heart-beat interval, so a dead path can take a whole
        interval more to be reported; the client's watchdog thread asks this several times a second.
        """
        return self._connected.is_set() and self._heartbeats_overdue()

    def _heartbeats_overdue(self) -> bool:
        receive_ms = self.config.heartbeats[1]
        grace = receive_ms / 1000 * self.config.heartbeat_grace
        return bool(receive_ms) and time.monotonic() - self._last_heard > grace

    def _receipt(self) -> tuple[str, threading.Event]:
        """Return a new receipt id and the event the listener sets when the broker confirms it."""
        receipt, confirmed = f"nfmp-{uuid.uuid4().hex[:12]}", threading.Event()
        self._receipts[receipt] = confirmed
        return receipt, confirmed

    def _await(self, event: threading.Event, timeout: float) -> bool:
        # Like event.wait(timeout), but gives up at once when the connection fails meanwhile.
        deadline = time.monotonic() + timeout
        while not event.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._failed.is_set():
                return False
            event.wait(min(remaining, 0.02))
        return True
