"""XmlApiClient: the HTTP side of a resync, reading NFM-P's XML API (SOAP 1.1 over ``POST /xmlapi/invoke``).

A resync reads the current alarm list (``fm.FaultManager.findFaults``) and the objects of a class (``find``)
from the active server, while the event stream goes on (the NFM-P XML API developer guide, "Recommended
durable JMS client operation"). This client sends one request per call over a fresh HTTP(S) connection, with
the messages of :mod:`nfmp_client._xmlapi`, and turns everything that can go wrong into one exception family::

    import ssl

    from nfmp_client import FindRequest, XmlApiClient, XmlApiCredentials, XmlApiStandby

    xmlapi = XmlApiClient(
        "https://nfmp-a:8443",
        credentials=XmlApiCredentials(user="oss", password=password),
        ssl_context=ssl.create_default_context(cafile="/etc/oss/nfmp-ca.pem"),
    )
    try:
        alarms = xmlapi.find_faults()
        ports = xmlapi.find(FindRequest(full_class_name="equipment.PhysicalPort"))
    except XmlApiStandby:
        ...  # nfmp-a is the standby server: ask nfmp-b

Only the standard library talks HTTP (:mod:`http.client`); environment proxy settings are not used.
``timeout`` bounds a whole request (connecting, the TLS handshake, sending, waiting and reading the answer),
except the host name lookup, which the operating system does without a timeout. ``max_response_bytes`` is
enforced while the answer arrives, before it is parsed. Neither request nor response bodies are logged (the
request carries the password's MD5 digest); log lines name the operation, the URL, the status, the size.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import socket
import ssl
import threading
import urllib.parse
from http import HTTPStatus
from typing import Final, final

import attrs

from ._clock import MonotonicClock
from ._exceptions import (
    XmlApiError,
    XmlApiFault,
    XmlApiHttpError,
    XmlApiResponseTooLarge,
    XmlApiStandby,
    XmlApiTimeout,
    XmlApiUnavailable,
)
from ._xmlapi import (
    FindFaultsRequest,
    FindRequest,
    PingRequest,
    XmlApiCredentials,
    XmlApiObject,
    XmlApiRequest,
    decode_response,
    encode_request,
)

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "DEFAULT_XMLAPI_TIMEOUT", "XMLAPI_PATH", "XmlApiClient"]

log = logging.getLogger("nfmp_client")

XMLAPI_PATH: Final = "/xmlapi/invoke"
"""The path of the XML API endpoint, appended to the client's base URL."""
DEFAULT_XMLAPI_TIMEOUT: Final = 60.0
"""Seconds a request may take in all (an alarm list can take a while to gather and send)."""
DEFAULT_MAX_RESPONSE_BYTES: Final = 256 * 1024 * 1024
"""Answers larger than this (256 MiB) are refused while they arrive, unless the client is told otherwise."""

_CHUNK: Final = 64 * 1024
_CLOCK: Final = MonotonicClock()


@final
class XmlApiClient:
    """Sends XML API requests to one NFM-P server and returns the objects of the answers. Thread-safe.

    Each call opens its own connection and shares nothing mutable with other calls (except a counter for
    request ids), so one client may serve several threads, e.g. an application's resync worker and a health
    check. An NFM-P pair has two servers; make one client per server and use the one that does not answer
    :class:`~nfmp_client.XmlApiStandby`.

    Every failure is an :class:`~nfmp_client.XmlApiError`: :class:`~nfmp_client.XmlApiFault` (a SOAP fault,
    e.g. a wrong password), :class:`~nfmp_client.XmlApiStandby` (HTTP 404, the standby server),
    :class:`~nfmp_client.XmlApiHttpError` (another HTTP status), :class:`~nfmp_client.XmlApiUnavailable`
    (no connection, TLS, reset; :class:`~nfmp_client.XmlApiTimeout` when too slow),
    :class:`~nfmp_client.XmlApiResponseTooLarge`, or a plain :class:`~nfmp_client.XmlApiError` for an answer
    that cannot be read.
    """

    def __init__(
        self,
        base_url: str,
        *,
        credentials: XmlApiCredentials | None,
        timeout: float = DEFAULT_XMLAPI_TIMEOUT,
        ssl_context: ssl.SSLContext | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        request_id_prefix: str = "",
    ) -> None:
        """Talk to the XML API at *base_url*.

        Args:
            base_url: ``http://host:8080`` or ``https://host:8443`` (IPv6: ``https://[2001:db8::1]:8443``);
                ``/xmlapi/invoke`` is appended (after the URL's own path, if it has one, e.g. behind a
                reverse proxy). It must not hold a user or password: those go in *credentials*.
            credentials: The XML API user, sent in every request's security header (the password as its
                MD5 digest); None sends no security header.
            timeout: Seconds one request may take in all, from connecting to the last byte of the answer.
            ssl_context: The TLS settings of an ``https`` URL, e.g. trusting a private CA
                (``ssl.create_default_context(cafile=...)``); None verifies against the system's CAs.
            max_response_bytes: Larger answers are refused (:class:`~nfmp_client.XmlApiResponseTooLarge`)
                as soon as they are announced or reach the limit, never read in full.
            request_id_prefix: When not empty, a request without its own ``request_id`` is sent with
                ``requestID`` *prefix*:*n* (*n* counts this client's requests from 1); the id is free-form,
                e.g. the JMS client id. When empty, only requests' own ids are sent.

        Raises:
            ValueError: An invalid URL, a URL holding credentials, an *ssl_context* for an ``http`` URL, a
                timeout or size limit that is not positive.
        """
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"the XML API URL must start with http:// or https://, got {_safe(base_url)!r}")
        if parts.username is not None or parts.password is not None:
            raise ValueError("the XML API URL must not hold a user or password: pass credentials=")
        if parts.query or parts.fragment:
            raise ValueError(f"the XML API URL must not have a query or fragment: {base_url!r}")
        try:
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise ValueError(f"invalid XML API URL {base_url!r}: {exc}") from None
        if not host or any(c.isspace() for c in host):
            raise ValueError(f"the XML API URL has no valid host: {base_url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if max_response_bytes <= 0:
            raise ValueError(f"max_response_bytes must be positive, got {max_response_bytes!r}")
        if ssl_context is not None and parts.scheme != "https":
            raise ValueError("ssl_context is only for an https:// URL")
        self._https = parts.scheme == "https"
        self._host = host
        self._port = port if port is not None else (443 if self._https else 80)
        self._path = parts.path.rstrip("/") + XMLAPI_PATH
        self._url = urllib.parse.urlunsplit((parts.scheme, parts.netloc, self._path, "", ""))
        self._credentials = credentials
        self._timeout = float(timeout)
        self._ssl_context = (
            ssl_context if ssl_context is not None or not self._https else ssl.create_default_context()
        )
        self._max_response_bytes = max_response_bytes
        self._request_id_prefix = request_id_prefix
        self._request_numbers = itertools.count(1)
        self._request_numbers_lock = threading.Lock()

    @property
    def url(self) -> str:
        """The endpoint's URL, e.g. ``https://nfmp-a:8443/xmlapi/invoke``."""
        return self._url

    @property
    def timeout(self) -> float:
        """Seconds one request may take in all."""
        return self._timeout

    @property
    def max_response_bytes(self) -> int:
        """The largest answer, in bytes, this client reads."""
        return self._max_response_bytes

    def find_faults(self, request: FindFaultsRequest | None = None) -> list[XmlApiObject]:
        """Read the current alarm list (``fm.FaultManager.findFaults``): the ``fm.AlarmInfo`` objects.

        Raises:
            XmlApiError: The alarms could not be read; see the class's list of subclasses.
        """
        return self.invoke(request if request is not None else FindFaultsRequest())

    def find(self, request: FindRequest) -> list[XmlApiObject]:
        """Read the objects of one class (``find``), e.g. ``FindRequest(full_class_name="equipment.Card")``.

        Raises:
            XmlApiError: The objects could not be read; see the class's list of subclasses.
        """
        return self.invoke(request)

    def ping(self) -> None:
        """Check that this server is the active one and accepts the credentials (``ping``).

        Raises:
            XmlApiStandby: The server is the standby.
            XmlApiFault: The server refused the request, e.g. the user or password is wrong.
            XmlApiError: Any other failure; see the class's list of subclasses.
        """
        self.invoke(PingRequest())

    def invoke(self, request: XmlApiRequest) -> list[XmlApiObject]:
        """Send *request* and return the objects of the answer (empty for a ``ping``).

        Raises:
            XmlApiError: The request failed; see the class's list of subclasses.
        """
        if self._request_id_prefix and not request.request_id:
            with self._request_numbers_lock:
                number = next(self._request_numbers)
            request = attrs.evolve(request, request_id=f"{self._request_id_prefix}:{number}")
        operation = type(request).__name__
        started = _CLOCK.monotonic()
        status, reason, body = self._post(encode_request(request, self._credentials), operation, started)
        if status == HTTPStatus.OK:
            objects = decode_response(body, max_bytes=self._max_response_bytes)
        else:  # 500: SOAP 1.1 sends its faults with it
            try:
                decode_response(body, max_bytes=self._max_response_bytes)
            except XmlApiFault:
                raise
            except XmlApiError as exc:
                raise XmlApiHttpError(status=status, reason=reason, url=self._url) from exc
            raise XmlApiHttpError(status=status, reason=reason, url=self._url)
        log.debug(
            "xmlapi: %s %s answered with %d objects (%d bytes) in %.3f s",
            operation,
            request.request_id or "-",
            len(objects),
            len(body),
            _CLOCK.monotonic() - started,
        )
        return objects

    def __repr__(self) -> str:
        """Name the endpoint and the user, never the password."""
        user = self._credentials.user if self._credentials is not None else None
        return f"<XmlApiClient {self._url} user={user!r} timeout={self._timeout:g}s>"

    # ---------------------------------------------------------------------------------------------- HTTP

    def _post(self, body: bytes, operation: str, started: float) -> tuple[int, str, bytes]:
        """POST *body*; return the status (200 or 500), its reason and the answer, or raise the error."""
        deadline = started + self._timeout
        connection: http.client.HTTPConnection
        if self._ssl_context is not None:
            connection = http.client.HTTPSConnection(self._host, self._port, context=self._ssl_context)
        else:
            connection = http.client.HTTPConnection(self._host, self._port)
        response: http.client.HTTPResponse | None = None
        log.debug("xmlapi: %s to %s", operation, self._url)
        try:
            connection.sock = self._connect(deadline)
            _shrink_timeout(connection, deadline)
            connection.request(
                "POST",
                self._path,
                body=body,
                headers={"Content-Type": "text/xml; charset=utf-8", "Connection": "close"},
            )
            _shrink_timeout(connection, deadline)
            response = connection.getresponse()
            status = response.status
            log.debug("xmlapi: %s to %s: HTTP %d %s", operation, self._url, status, response.reason)
            if status == HTTPStatus.NOT_FOUND:
                raise XmlApiStandby(status=status, reason=response.reason, url=self._url)
            if status not in (HTTPStatus.OK, HTTPStatus.INTERNAL_SERVER_ERROR):
                raise XmlApiHttpError(status=status, reason=response.reason, url=self._url)
            return status, response.reason, self._read(connection, response, deadline)
        except TimeoutError as exc:  # socket.timeout, also during the TLS handshake
            raise XmlApiTimeout(
                f"{operation} to {self._url}: no complete answer within {self._timeout:g} s"
            ) from exc
        except ssl.SSLError as exc:  # certificate not trusted, wrong host name, handshake failure
            raise XmlApiUnavailable(f"{operation} to {self._url}: TLS failed: {_reason(exc)}") from exc
        except (OSError, UnicodeError) as exc:  # refused, unreachable, name lookup, reset, closed early
            raise XmlApiUnavailable(f"{operation} to {self._url}: {_reason(exc)}") from exc
        except http.client.IncompleteRead as exc:
            raise XmlApiUnavailable(f"{operation} to {self._url}: the answer was cut short") from exc
        except http.client.HTTPException as exc:  # not HTTP at all: a status line or header that is wrong
            raise XmlApiError(f"{operation} to {self._url}: not a valid HTTP answer: {_reason(exc)}") from exc
        finally:
            if response is not None:
                response.close()  # also when not read to the end (an error status, too large)
            connection.close()

    def _connect(self, deadline: float) -> socket.socket:
        """Open the TCP connection and, for https, do the TLS handshake, both within the deadline."""
        sock = socket.create_connection((self._host, self._port), timeout=_time_left(deadline))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl_context is None:
                return sock
            sock.settimeout(_time_left(deadline))
            return self._ssl_context.wrap_socket(sock, server_hostname=self._host)
        except BaseException:
            sock.close()
            raise

    def _read(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse, deadline: float
    ) -> bytes:
        """Read the answer's body, never more than the limit, within the deadline."""
        announced = response.getheader("Content-Length")
        size = int(announced) if announced is not None and announced.strip().isdigit() else None
        if size is not None and size > self._max_response_bytes:
            raise XmlApiResponseTooLarge(limit=self._max_response_bytes, size=size, url=self._url)
        chunks: list[bytes] = []
        received = 0
        while True:
            _shrink_timeout(connection, deadline)
            chunk = response.read1(_CHUNK)  # at most one receive: the deadline holds even for a trickle
            if not chunk:
                break
            received += len(chunk)
            if received > self._max_response_bytes:
                raise XmlApiResponseTooLarge(limit=self._max_response_bytes, size=size, url=self._url)
            chunks.append(chunk)
        if size is not None and received < size:
            raise XmlApiUnavailable(
                f"the connection to {self._url} closed after {received} of {size} announced bytes"
            )
        return b"".join(chunks)


def _shrink_timeout(connection: http.client.HTTPConnection, deadline: float) -> None:
    """Give the socket's next operation the time left until *deadline*."""
    if connection.sock is not None:
        connection.sock.settimeout(_time_left(deadline))


def _time_left(deadline: float) -> float:
    """Seconds left until *deadline* (TimeoutError when none are left)."""
    remaining = deadline - _CLOCK.monotonic()
    if remaining <= 0:
        raise TimeoutError("the request's deadline has passed")
    return remaining


def _reason(exc: BaseException) -> str:
    """Describe *exc* in one line (its class when it has no message)."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


def _safe(url: str) -> str:
    """*url* without any user and password, for an error message."""
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
