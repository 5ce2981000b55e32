"""The exception tree of nfmp_client.

Every error the library raises on purpose derives from :class:`~nfmp_client.NfmpError`, split by what the
caller can do about it::

    NfmpError
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
          └── StateFileMismatch   another client id's state file

Errors from the libraries underneath (lxml, stomp.py) are translated at the boundary where they happen and
chained with ``raise ... from``, so callers only ever need to catch this family.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "MalformedMessage",
    "NfmpError",
    "ProtocolError",
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

    Nokia's own XML API client reads a 404 this way (nfmp-jms-facts.md section 5.2).
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
