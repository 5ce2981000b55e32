"""SnapshotServer: the XML API endpoint (HTTP POST /xmlapi/invoke) a resync reads the truth from.

It answers ``findFaults`` with the current alarms and ``find`` with the objects of a class, from any
:class:`SnapshotSource` (a :class:`~nfmp_client.testing.NetworkModel` is one), the way NFM-P's XML API does,
so that a mirror rebuilt from a snapshot plus the events that follow can be checked against the truth. It
can be made slow on purpose (``latency``) so that events arrive while a resync is in progress.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final, Protocol, final, runtime_checkable

from .._exceptions import XmlApiError
from .._xmlapi import (
    FindFaultsRequest,
    FindRequest,
    XmlApiCredentials,
    XmlApiObject,
    decode_request,
    encode_fault,
    encode_response,
)

__all__ = ["SnapshotServer", "SnapshotSource"]

log = logging.getLogger("nfmp_client.testing")

PATH: Final = "/xmlapi/invoke"
DEFAULT_MAX_REQUEST_BYTES: Final = 1024 * 1024


@runtime_checkable
class SnapshotSource(Protocol):
    """Where a :class:`SnapshotServer` reads the truth from; each call returns a consistent copy."""

    def alarms(self) -> Sequence[XmlApiObject]:
        """Return the active alarms (``fm.AlarmInfo`` objects)."""
        ...

    def objects(self, full_class_name: str) -> Sequence[XmlApiObject]:
        """Return the objects of class *full_class_name*."""
        ...


@final
class SnapshotServer:
    """A simulated NFM-P XML API endpoint on 127.0.0.1 (a daemon thread; use as a context manager)."""

    def __init__(
        self,
        source: SnapshotSource,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: XmlApiCredentials | None = None,
        latency: float = 0.0,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    ) -> None:
        """Serve *source*.

        Args:
            source: The truth to answer from.
            host: The address to listen on.
            port: The port; 0 picks a free one (see :attr:`url`).
            credentials: The only user accepted (a SOAP fault otherwise); None accepts any request.
            latency: Seconds to wait before answering (a slow server, for resync-under-load tests).
            max_request_bytes: Larger requests are refused with HTTP 413.
        """
        if latency < 0 or max_request_bytes <= 0:
            raise ValueError("latency must be >= 0 and max_request_bytes > 0")
        self._source = source
        self._credentials = credentials
        self.latency = latency
        """Seconds to wait before each answer; may be changed while serving."""
        self._max = max_request_bytes
        self._requests = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The endpoint's URL, e.g. ``http://127.0.0.1:8080/xmlapi/invoke``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{PATH}"

    @property
    def requests(self) -> int:
        """The number of requests answered so far (faults included)."""
        with self._lock:
            return self._requests

    def start(self) -> None:
        """Start serving in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="nfmp-xmlapi", daemon=True)
            self._thread.start()
            log.info("simulator: XML API snapshot endpoint at %s", self.url)

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> SnapshotServer:
        """Start serving."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop serving."""
        self.stop()

    def answer(self, body: bytes) -> tuple[int, bytes]:
        """Answer one request body: the HTTP status and the SOAP response (also used by the HTTP handler)."""
        with self._lock:
            self._requests += 1
        try:
            received = decode_request(body, max_bytes=self._max)
        except XmlApiError as exc:
            return HTTPStatus.INTERNAL_SERVER_ERROR, encode_fault("SOAP:Client", str(exc))
        if self._credentials is not None and (
            received.credentials is None or not self._credentials.matches(received.credentials)
        ):
            log.info("simulator: XML API request refused: bad user or password")
            return HTTPStatus.INTERNAL_SERVER_ERROR, encode_fault("SOAP:Client", "authentication failed")
        if self.latency:
            time.sleep(self.latency)
        request = received.request
        objects: Sequence[XmlApiObject] = ()
        if isinstance(request, FindFaultsRequest):
            objects = self._source.alarms()
        elif isinstance(request, FindRequest):
            objects = self._source.objects(request.full_class_name)
        log.info("simulator: XML API %s answered with %d objects", type(request).__name__, len(objects))
        return HTTPStatus.OK, encode_response(request, objects)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server dispatches to
                if self.path != PATH:
                    self._send(HTTPStatus.NOT_FOUND, b"")
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > server._max:
                    self._send(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, b"")
                    return
                status, body = server.answer(self.rfile.read(length))
                self._send(status, body)

            def do_GET(self) -> None:
                self._send(HTTPStatus.METHOD_NOT_ALLOWED, b"", allow="POST")

            def _send(self, status: int, body: bytes, allow: str | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                if allow:
                    self.send_header("Allow", allow)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # http.server's name
                log.debug("xmlapi: " + format, *args)

        return Handler
