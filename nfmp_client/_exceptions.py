"""The exception tree of nfmp_client.

Every error the library raises on purpose derives from :class:`~nfmp_client.NfmpError`, split by what the
caller can do about it::

    NfmpError
     ├── ConfigError              a setting cannot work (also a ValueError)
     ├── ClientStopped            the client stopped by itself: gave up reconnecting (``last_loss``)
     │    ├── SessionTerminated   TerminateClientSession, and the policy is to stay stopped (``notice``)
     │    └── ClientFailed        an internal error (chained)
     ├── SubscriptionRemovalFailed  decommission() found no server to confirm the removal (``failures``)
     ├── LifecycleError           a lifecycle call that cannot be honoured now (also a RuntimeError)
     └── ProtocolError            the server (or something pretending to be it) sent something we cannot use
          ├── MalformedMessage    one message could not be decoded; it is kept on the exception for inspection
          └── XmlApiError         an XML API request or response could not be read
               ├── XmlApiFault                the XML API answered with a SOAP fault (code and message)
               ├── XmlApiHttpError            an HTTP status other than 200 (and no SOAP fault)
               │    └── XmlApiStandby         HTTP 404: this server is the standby, ask the other one
               ├── XmlApiUnavailable          no answer: connection refused, DNS, TLS, reset (cause chained)
               │    └── XmlApiTimeout         no complete answer within the request's timeout
               └── XmlApiResponseTooLarge     the answer exceeds the client's size limit (not read further)
     └── StateError               the persisted state cannot be used (in ``_state``)
          ├── StateFileCorrupt    not a state file this version can read
          ├── StateFileMismatch   another client id's state file
          └── StateFileLocked     another client uses this client id's state file now (``holder``)

Errors from the libraries underneath (lxml, stomp.py) are translated at the boundary where they happen and
chained with ``raise ... from``, so callers only ever need to catch this family.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._events import TerminateClientSession
    from ._status import ConnectionLost

__all__ = [
    "ClientFailed",
    "ClientStopped",
    "ConfigError",
    "LifecycleError",
    "MalformedMessage",
    "NfmpError",
    "ProtocolError",
    "SessionTerminated",
    "SubscriptionRemovalFailed",
    "XmlApiError",
    "XmlApiFault",
    "XmlApiHttpError",
    "XmlApiResponseTooLarge",
    "XmlApiStandby",
    "XmlApiTimeout",
    "XmlApiUnavailable",
]


class NfmpError(Exception):
    """Root of every exception that nfmp_client raises on purpose."""


class ConfigError(NfmpError, ValueError):
    """A setting of the configuration cannot work; it is refused when the configuration is built.

    The message names the setting, the value given and what would be accepted, e.g. ``servers:
    'stomp://h:61613' is not accepted: expected host:port (no scheme), [IPv6]:port for IPv6``. A password is
    never shown: for the ``password`` field the value is replaced by ``'***'``, in the message and in
    ``value`` alike.

    Also a :class:`ValueError`, which is what a caller of a constructor expects for bad input.

    Attributes:
        field: The setting, as named in :class:`~nfmp_client.ClientConfig` (``servers``, ``prefetch``, ...),
            or in the class that refused it (``host``, ``key_file``, ...).
        value: The value given (``'***'`` for a password).
        expected: What would be accepted instead, in words.
    """

    field: str
    value: object
    expected: str

    def __init__(self, *, field: str, value: object, expected: str) -> None:
        shown = _MASK if field in _SECRET_FIELDS else value
        super().__init__(f"{field}: {shown!r} is not accepted: expected {expected}")
        self.field = field
        self.value = shown
        self.expected = expected

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the keyword-only fields."""
        return (_rebuild_config_error, (type(self), self.field, self.value, self.expected))


_SECRET_FIELDS: frozenset[str] = frozenset({"password"})
_MASK = "***"


def _rebuild_config_error(cls: type[ConfigError], field: str, value: object, expected: str) -> ConfigError:
    return cls(field=field, value=value, expected=expected)


class ProtocolError(NfmpError):
    """The peer sent something that does not follow the NFM-P JMS/STOMP conventions."""


class MalformedMessage(ProtocolError, ValueError):
    """A message could not be decoded into an event.

    The message is never lost: the exception carries the raw payload and the STOMP headers exactly as they
    arrived, so the application can log, store or re-examine it. ``str()`` of the exception gives the reason
    and the payload size, never the payload itself (it may be megabytes long).

    Also a :class:`ValueError`, because that is what a caller of a decoding function expects for bad input.

    Attributes:
        reason: A one-line, human-readable explanation of what is wrong with the message.
        payload: The message body as received (``bytes``; a ``str`` body is kept UTF-8 encoded).
        headers: The STOMP headers of the message, as received.
    """

    reason: str
    payload: bytes
    headers: Mapping[str, str]

    def __init__(
        self, reason: str, *, payload: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.payload = payload
        self.headers = dict(headers) if headers is not None else {}

    def __str__(self) -> str:
        return f"malformed NFM-P message ({len(self.payload)} bytes): {self.reason}"

    def __repr__(self) -> str:
        return f"MalformedMessage(reason={self.reason!r}, payload=<{len(self.payload)} bytes>)"

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only fields would be lost by the default Exception pickling (it replays ``args`` only).
        return (_rebuild_malformed, (self.reason, self.payload, dict(self.headers)))


def _rebuild_malformed(reason: str, payload: bytes, headers: dict[str, str]) -> MalformedMessage:
    return MalformedMessage(reason, payload=payload, headers=headers)


class XmlApiError(ProtocolError):
    """An XML API request or response (SOAP over HTTP) could not be read or was refused."""


class XmlApiFault(XmlApiError):
    """The XML API answered with a SOAP fault."""

    def __init__(self, *, code: str, message: str) -> None:
        """Keep the fault's *code* (``faultcode``) and *message* (``faultstring``)."""
        super().__init__(f"SOAP fault {code}: {message}")
        self.code = code
        """The ``faultcode``, e.g. ``SOAP:Client``."""
        self.message = message
        """The ``faultstring``."""

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the keyword-only fields."""
        return (_rebuild_fault, (self.code, self.message))


def _rebuild_fault(code: str, message: str) -> XmlApiFault:
    return XmlApiFault(code=code, message=message)


class XmlApiHttpError(XmlApiError):
    """The XML API answered with an HTTP status other than 200, and not with a SOAP fault.

    The response body is not part of the message (it may be large, or an HTML page from a proxy).
    """

    def __init__(self, *, status: int, reason: str, url: str) -> None:
        """Keep the HTTP *status*, its *reason* phrase and the *url* that answered."""
        super().__init__(f"HTTP {status}{' ' + reason if reason else ''} from {url}")
        self.status = status
        """The HTTP status code, e.g. 503."""
        self.reason = reason
        """The reason phrase the server sent (may be empty)."""
        self.url = url
        """The URL that answered."""

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the keyword-only fields."""
        return (_rebuild_http_error, (type(self), self.status, self.reason, self.url))


class XmlApiStandby(XmlApiHttpError):
    """HTTP 404 from the XML API: this server is the standby of a redundant pair; ask the active one.

    Nokia's own XML API client reads a 404 this way (``samifmod.py`` in Nokia's public ``nokia/samtools``
    repository).
    """


def _rebuild_http_error(cls: type[XmlApiHttpError], status: int, reason: str, url: str) -> XmlApiHttpError:
    return cls(status=status, reason=reason, url=url)


class XmlApiUnavailable(XmlApiError):
    """The XML API could not be reached or stopped answering.

    Connection refused, name resolution, TLS handshake or certificate, connection reset or closed early. The
    error from underneath (an :class:`OSError`, :class:`ssl.SSLError`, ...) is chained as
    ``__cause__``. Retrying later, or asking the other server of the pair, may help.
    """


class XmlApiTimeout(XmlApiUnavailable):
    """The XML API did not answer completely within the request's timeout."""


class XmlApiResponseTooLarge(XmlApiError):
    """The XML API's answer is larger than the client accepts; it was refused before being read in full."""

    def __init__(self, *, limit: int, size: int | None, url: str) -> None:
        """Keep the *limit*, the announced *size* (None when not announced) and the *url*."""
        announced = f"of {size} bytes " if size is not None else ""
        super().__init__(f"the response {announced}from {url} exceeds the limit of {limit} bytes")
        self.limit = limit
        """The client's ``max_response_bytes``."""
        self.size = size
        """The size the server announced (``Content-Length``), or None when it sent more than *limit*
        without announcing a size."""
        self.url = url
        """The URL that answered."""

    def __reduce__(self) -> tuple[object, ...]:
        """Pickle with the keyword-only fields."""
        return (_rebuild_too_large, (self.limit, self.size, self.url))


def _rebuild_too_large(limit: int, size: int | None, url: str) -> XmlApiResponseTooLarge:
    return XmlApiResponseTooLarge(limit=limit, size=size, url=url)


class ClientStopped(NfmpError):
    """The client stopped by itself: it gave up reconnecting.

    The retry policy ran out, or a loss that retrying cannot fix came (a refused login). The base of every way
    a client ends without being told.

    ``NfmpClient.run_forever()`` raises it; ``NfmpClient.failure`` keeps it.
    """

    def __init__(self, last_loss: ConnectionLost | None, message: str | None = None) -> None:
        """Record the last loss (or failed attempt) and say why the client stopped."""
        super().__init__(
            message
            or "the client stopped" + (f": {last_loss.reason.value}: {last_loss.detail}" if last_loss else "")
        )
        self.last_loss = last_loss
        """The loss or failed attempt that made it stop, if any."""


class SessionTerminated(ClientStopped):
    """The server ended this client's session (TerminateClientSession) and the policy is to stay stopped.

    An administrator (or a server-side limit) did it on purpose: the client does not reconnect blindly. Start
    it again when the reason is understood (see ``ClientConfig.on_terminate`` for other policies).
    """

    def __init__(self, notice: TerminateClientSession) -> None:
        """Keep the *notice*."""
        super().__init__(None, f"the server terminated the session of {notice.client_id or 'this client'}")
        self.notice = notice
        """The TerminateClientSession event."""


class ClientFailed(ClientStopped):
    """An internal error stopped the client (a bug: please report it); the error is chained as ``__cause__``.

    The connection was closed; nothing was acknowledged that was not handled.
    """

    def __init__(self, message: str) -> None:
        """Say what failed."""
        super().__init__(None, message)


class SubscriptionRemovalFailed(NfmpError):
    """``NfmpClient.decommission()`` could not delete the durable subscription: no server confirmed it.

    The subscription (and the events stored for it) may still exist; try again, or remove it on the broker.
    """

    def __init__(self, failures: Sequence[ConnectionLost]) -> None:
        """Keep each server's *failures*."""
        reasons = "; ".join(f"{f.server}: {f.reason.value}: {f.detail}" for f in failures) or "no server"
        super().__init__(f"the durable subscription could not be removed ({reasons})")
        self.failures = tuple(failures)
        """Why each server failed, in the order tried."""


class LifecycleError(NfmpError, RuntimeError):
    """A lifecycle call that cannot be honoured now.

    ``start()`` while the last run is still stopping (a callback has not returned), or a blocking call
    (``run_forever()``, ``start()``) from one of the client's own callbacks.
    """
