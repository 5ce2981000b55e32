"""XmlApiClient: resync reads over real HTTP(S) from a SnapshotServer, and every failure is a typed error.

No broker is needed: the SnapshotServer runs on its own. Answers the SnapshotServer never gives (an endless
body, a trickle, a cut-short answer, a 503, something that is not HTTP) come from a scripted TCP server.
"""

from __future__ import annotations

import http.client
import logging
import pickle
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nfmp_client import (
    FindFaultsRequest,
    FindRequest,
    NfmpError,
    XmlApiClient,
    XmlApiCredentials,
    XmlApiError,
    XmlApiFault,
    XmlApiHttpError,
    XmlApiObject,
    XmlApiResponseTooLarge,
    XmlApiStandby,
    XmlApiTimeout,
    XmlApiUnavailable,
)
from nfmp_client.testing import ALARM_CLASS, PORT_CLASS, EventGenerator, NetworkModel, SnapshotServer
from nfmp_client.xmlapi import (
    DEFAULT_MAX_RESPONSE_BYTES,
    PingRequest,
    decode_request,
    encode_fault,
    encode_response,
)

PASSWORD = "Pa55-w0rd!"  # noqa: S105  # made up
USER = XmlApiCredentials(user="oss", password=PASSWORD)
DIGEST = USER.password_digest
SECRETS = (PASSWORD, DIGEST)


def base_url(server: SnapshotServer, scheme: str = "http") -> str:
    """The SnapshotServer's base URL (its ``url`` without ``/xmlapi/invoke``)."""
    host, port = server._httpd.server_address[:2]  # the public url is always http://
    return f"{scheme}://{host!s}:{port}"


def populated() -> NetworkModel:
    """2 nodes of 4 ports, 5 alarms on them, reproducibly."""
    model = NetworkModel()
    EventGenerator(model, seed=7).populate(nodes=2, ports_per_node=4, alarms=5)
    return model


# Stopping a SnapshotServer takes half a second (its poll interval): tests that neither change the model
# nor the latency share one server.
@pytest.fixture(scope="module")
def model() -> NetworkModel:
    """The shared server's model: tests must not change it."""
    return populated()


@pytest.fixture(scope="module")
def server(model: NetworkModel) -> Iterator[SnapshotServer]:
    """The shared server: tests must not change its latency."""
    with SnapshotServer(model, credentials=USER) as snapshot:
        yield snapshot


@pytest.fixture
def own_server() -> Iterator[SnapshotServer]:
    """A server of the test's own, on its own model: its latency may be changed."""
    with SnapshotServer(populated(), credentials=USER) as snapshot:
        yield snapshot


@pytest.fixture
def client(server: SnapshotServer) -> XmlApiClient:
    return XmlApiClient(base_url(server), credentials=USER, timeout=10)


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ------------------------------------------------------------------------------- a scripted TCP server

Script = Callable[[socket.socket, threading.Event], None]


class ScriptedServer:
    """Answers each connection with *script* after reading the request (kept in ``heads``, ``requests``)."""

    def __init__(self, script: Script) -> None:
        self._script = script
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self.heads: list[bytes] = []
        self.requests: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="scripted-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                try:
                    head, body = read_request(conn)
                    self.heads.append(head)
                    self.requests.append(body)
                    self._script(conn, self._stop)
                except OSError:
                    pass  # the client hung up, as it should after an error


def read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    """Read one HTTP request; return its head and its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head, body


def answer(status: str, body: bytes, *, length: int | None = None) -> Script:
    """A script sending *status* and *body*, announcing *length* (default: the body's) bytes."""

    def script(conn: socket.socket, _stop: threading.Event) -> None:
        announced = len(body) if length is None else length
        head = f"HTTP/1.1 {status}\r\nContent-Type: text/xml\r\nContent-Length: {announced}\r\n\r\n"
        conn.sendall(head.encode() + body)

    return script


def endless(conn: socket.socket, stop: threading.Event) -> None:
    """200 without a Content-Length, then a body that never ends (until the client hangs up)."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n<a>")
    chunk = b"<b/>" * 16384
    while not stop.is_set():
        conn.sendall(chunk)


def trickle(conn: socket.socket, stop: threading.Event) -> None:
    """200 announcing 1000 bytes, then one byte every 20 ms: each read is quick, the whole is not."""
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 1000\r\n\r\n")
    for _ in range(1000):
        if stop.wait(0.02):
            return
        conn.sendall(b" ")


# ---------------------------------------------------------------------------------------------- tests


class TestConstruction:
    @pytest.mark.parametrize(
        ("base", "url"),
        [
            ("https://nfmp-a:8443", "https://nfmp-a:8443/xmlapi/invoke"),
            ("http://nfmp-a:8080/", "http://nfmp-a:8080/xmlapi/invoke"),
            ("https://proxy.example/nfmp-a", "https://proxy.example/nfmp-a/xmlapi/invoke"),
            ("https://[2001:db8::1]:8443", "https://[2001:db8::1]:8443/xmlapi/invoke"),
        ],
    )
    def test_url(self, base: str, url: str) -> None:
        """The endpoint is the base URL (and its path) followed by /xmlapi/invoke."""
        client = XmlApiClient(base, credentials=None)

        assert client.url == url
        assert client.timeout == 60.0
        assert client.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 256 * 1024 * 1024

    @pytest.mark.parametrize(
        ("base", "kwargs", "match"),
        [
            ("ftp://nfmp-a", {}, "http:// or https://"),
            ("nfmp-a:8443", {}, "http:// or https://"),
            ("https://nfmp-a:8443?x=1", {}, "query"),
            ("https://nfmp-a:99999", {}, "invalid XML API URL"),
            ("https://:8443", {}, "no valid host"),
            ("http://nfmp-a:8080", {"ssl_context": ssl.create_default_context()}, "only for an https"),
            ("https://nfmp-a", {"timeout": 0}, "timeout"),
            ("https://nfmp-a", {"max_response_bytes": 0}, "max_response_bytes"),
        ],
    )
    def test_invalid(self, base: str, kwargs: dict[str, object], match: str) -> None:
        """Bad settings fail at construction, with a message naming the problem."""
        with pytest.raises(ValueError, match=match):
            XmlApiClient(base, credentials=USER, **kwargs)  # type: ignore[arg-type]

    def test_credentials_in_url_refused_without_echo(self) -> None:
        """A URL holding a user and password is refused, and the message does not repeat the password."""
        with pytest.raises(ValueError, match="credentials=") as error:
            XmlApiClient(f"https://oss:{PASSWORD}@nfmp-a:8443", credentials=None)

        assert PASSWORD not in str(error.value)


class TestRequests:
    def test_find_faults_returns_the_alarms(self, client: XmlApiClient, model: NetworkModel) -> None:
        """find_faults answers exactly the model's alarms, attributes included."""
        alarms = client.find_faults()

        assert len(alarms) == 5
        assert alarms == model.alarms()
        assert {alarm.object_class for alarm in alarms} == {ALARM_CLASS}
        assert all(alarm.attributes["objectFullName"] == alarm.full_name != "" for alarm in alarms)

    def test_find_returns_the_class(self, client: XmlApiClient, model: NetworkModel) -> None:
        """find answers the objects of the class asked for, and nothing for a class without objects."""
        ports = client.find(FindRequest(full_class_name=PORT_CLASS))

        assert len(ports) == 8
        assert ports == model.objects(PORT_CLASS)
        assert client.find(FindRequest(full_class_name="equipment.Shelf")) == []

    def test_find_result_filter(self, client: XmlApiClient, model: NetworkModel) -> None:
        """A result filter is sent: only the attributes asked for come back."""
        ports = client.find(FindRequest(full_class_name=PORT_CLASS, result_attributes=("objectFullName",)))

        assert [dict(port.attributes) for port in ports] == [
            {"objectFullName": port.full_name} for port in model.objects(PORT_CLASS)
        ]

    def test_answers_follow_the_model(self) -> None:
        """Each call reads the server's state at that moment."""
        model = populated()
        with SnapshotServer(model, credentials=USER) as snapshot:
            client = XmlApiClient(base_url(snapshot), credentials=USER, timeout=10)
            before = client.find_faults()
            extra = XmlApiObject(object_class=ALARM_CLASS, attributes={"objectFullName": "zz|alarm-extra"})
            model.put(extra)

            assert client.find_faults(FindFaultsRequest(request_id="x:1")) == [*before, extra]

    def test_ping(self, client: XmlApiClient, server: SnapshotServer) -> None:
        """ping returns None from the active server, after one request."""
        before = server.requests

        assert client.ping() is None  # type: ignore[func-returns-value]
        assert server.requests == before + 1

    def test_invoke(self, client: XmlApiClient, model: NetworkModel) -> None:
        """invoke sends any request: the same answers as the named methods."""
        assert client.invoke(FindFaultsRequest()) == model.alarms()
        assert client.invoke(PingRequest()) == []

    def test_concurrent_calls(self, client: XmlApiClient, model: NetworkModel) -> None:
        """One client serves several threads at once; each gets the whole answer."""
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda _: client.find_faults(), range(24)))

        assert answers == [model.alarms()] * 24

    def test_request_ids(self) -> None:
        """With a prefix, requests without an id get prefix:1, prefix:2, ...; a request's own id is kept."""
        body = encode_response(PingRequest())
        with ScriptedServer(answer("200 OK", body)) as scripted:
            client = XmlApiClient(scripted.url, credentials=USER, timeout=5, request_id_prefix="oss1@1")
            client.ping()
            client.find_faults(FindFaultsRequest(request_id="mine"))
            client.ping()
            plain = XmlApiClient(scripted.url, credentials=None, timeout=5)
            plain.ping()

        received = [decode_request(request) for request in scripted.requests]
        assert [r.request.request_id for r in received] == ["oss1@1:1", "mine", "oss1@1:2", ""]
        assert [r.credentials for r in received] == [
            XmlApiCredentials(user="oss", password=DIGEST, hashed=True)
        ] * 3 + [None]

    def test_request_on_the_wire(self) -> None:
        """The request is a POST to the base URL's path plus /xmlapi/invoke, Content-Type text/xml."""
        with ScriptedServer(answer("200 OK", encode_response(PingRequest()))) as scripted:
            XmlApiClient(scripted.url + "/base", credentials=USER, timeout=5).ping()

        (head,) = scripted.heads
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /base/xmlapi/invoke HTTP/1.1"
        assert b"Content-Type: text/xml; charset=utf-8" in lines
        assert f"Host: 127.0.0.1:{scripted.port}".encode() in lines


class TestErrors:
    def test_wrong_password_is_a_fault(self, server: SnapshotServer) -> None:
        """A wrong password (or none) is the server's SOAP fault, with its code and message."""
        wrong = XmlApiClient(
            base_url(server), credentials=XmlApiCredentials(user="oss", password="wrong"), timeout=10
        )
        with pytest.raises(XmlApiFault) as fault:
            wrong.find_faults()

        assert (fault.value.code, fault.value.message) == ("SOAP:Client", "authentication failed")
        with pytest.raises(XmlApiFault, match="authentication failed"):
            XmlApiClient(base_url(server), credentials=None, timeout=10).ping()

    def test_404_is_the_standby(self, server: SnapshotServer) -> None:
        """HTTP 404 is XmlApiStandby, an HTTP error with the status and URL."""
        client = XmlApiClient(base_url(server) + "/standby", credentials=USER, timeout=10)

        with pytest.raises(XmlApiStandby) as error:
            client.ping()

        assert isinstance(error.value, XmlApiHttpError)
        assert error.value.status == 404
        assert error.value.url == base_url(server) + "/standby/xmlapi/invoke"
        assert str(error.value) == f"HTTP 404 Not Found from {client.url}"

    def test_other_status(self, model: NetworkModel) -> None:
        """HTTP 413 (the server refuses the request's size) is an HTTP error, not the standby."""
        with SnapshotServer(model, max_request_bytes=100) as small:
            client = XmlApiClient(base_url(small), credentials=USER, timeout=10)
            with pytest.raises(XmlApiHttpError) as error:
                client.ping()

        assert type(error.value) is XmlApiHttpError
        assert error.value.status == 413
        assert "HTTP 413" in str(error.value)

    def test_503(self) -> None:
        """A status other than 200, 404 and 500 is an HTTP error with the server's status and reason."""
        with (
            ScriptedServer(answer("503 Service Unavailable", b"<html>busy</html>")) as scripted,
            pytest.raises(XmlApiHttpError) as error,
        ):
            XmlApiClient(scripted.url, credentials=USER, timeout=5).ping()

        assert (error.value.status, error.value.reason) == (503, "Service Unavailable")

    def test_500_without_a_fault(self) -> None:
        """HTTP 500 with a body that is no SOAP fault is an HTTP error (the unreadable body chained)."""
        with (
            ScriptedServer(answer("500 Internal Server Error", b"<html>oops</html>")) as scripted,
            pytest.raises(XmlApiHttpError) as error,
        ):
            XmlApiClient(scripted.url, credentials=USER, timeout=5).ping()

        assert error.value.status == 500
        assert type(error.value.__cause__) is XmlApiError

    def test_fault_with_200(self) -> None:
        """A SOAP fault is a fault whatever the status."""
        with (
            ScriptedServer(answer("200 OK", encode_fault("SOAP:Server", "busy"))) as scripted,
            pytest.raises(XmlApiFault, match="busy"),
        ):
            XmlApiClient(scripted.url, credentials=USER, timeout=5).ping()

    def test_unreadable_answer(self) -> None:
        """A 200 whose body is not a SOAP response is a plain XmlApiError."""
        with (
            ScriptedServer(answer("200 OK", b"<html/>")) as scripted,
            pytest.raises(XmlApiError, match=r"SOAP 1\.1 Envelope") as error,
        ):
            XmlApiClient(scripted.url, credentials=USER, timeout=5).ping()

        assert type(error.value) is XmlApiError

    def test_not_http(self) -> None:
        """A peer that does not speak HTTP is an XmlApiError, not http.client's exception."""

        def script(conn: socket.socket, _stop: threading.Event) -> None:
            conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        with (
            ScriptedServer(script) as scripted,
            pytest.raises(XmlApiError, match="not a valid HTTP answer") as error,
        ):
            XmlApiClient(scripted.url, credentials=USER, timeout=5).ping()

        assert type(error.value) is XmlApiError
        assert error.value.__cause__ is not None

    def test_nothing_listening(self) -> None:
        """Connection refused is XmlApiUnavailable with the OSError chained, quickly."""
        client = XmlApiClient(f"http://127.0.0.1:{free_port()}", credentials=USER, timeout=10)
        started = time.monotonic()

        with pytest.raises(XmlApiUnavailable) as error:
            client.find_faults()

        assert time.monotonic() - started < 2
        assert not isinstance(error.value, XmlApiTimeout)
        assert isinstance(error.value.__cause__, ConnectionRefusedError)
        assert str(error.value).startswith(f"FindFaultsRequest to {client.url}: ")

    def test_cut_short(self) -> None:
        """An answer shorter than announced is XmlApiUnavailable, not a parse error."""
        body = encode_response(PingRequest())
        with (
            ScriptedServer(answer("200 OK", body[:20], length=len(body))) as scripted,
            pytest.raises(XmlApiUnavailable, match=f"closed after 20 of {len(body)} announced bytes"),
        ):
            XmlApiClient(scripted.url, credentials=USER, timeout=5).ping()

    def test_slow_server_times_out(self, own_server: SnapshotServer) -> None:
        """A server slower than the timeout gives XmlApiTimeout after the timeout, not after its latency."""
        own_server.latency = 5.0
        client = XmlApiClient(base_url(own_server), credentials=USER, timeout=0.3)
        started = time.monotonic()

        with pytest.raises(XmlApiTimeout) as error:
            client.find_faults()

        assert 0.25 <= time.monotonic() - started < 2
        assert isinstance(error.value, XmlApiUnavailable)
        assert isinstance(error.value.__cause__, TimeoutError)
        assert "within 0.3 s" in str(error.value)

    def test_trickle_times_out(self) -> None:
        """The timeout bounds the whole answer: a server sending a byte every 20 ms does not extend it."""
        with ScriptedServer(trickle) as scripted:
            client = XmlApiClient(scripted.url, credentials=USER, timeout=0.4)
            started = time.monotonic()
            with pytest.raises(XmlApiTimeout):
                client.ping()
            elapsed = time.monotonic() - started

        assert 0.35 <= elapsed < 2

    def test_announced_oversize(self, server: SnapshotServer) -> None:
        """An answer announced larger than max_response_bytes is refused unread, with the sizes."""
        client = XmlApiClient(base_url(server), credentials=USER, timeout=10, max_response_bytes=1000)

        with pytest.raises(XmlApiResponseTooLarge) as error:
            client.find_faults()

        assert error.value.limit == 1000
        assert error.value.size is not None
        assert error.value.size > 1000
        assert str(error.value) == (
            f"the response of {error.value.size} bytes from {client.url} exceeds the limit of 1000 bytes"
        )

    def test_endless_answer(self) -> None:
        """A body without a Content-Length is cut at max_response_bytes while it arrives."""
        with ScriptedServer(endless) as scripted:
            client = XmlApiClient(scripted.url, credentials=USER, timeout=10, max_response_bytes=1024 * 1024)
            started = time.monotonic()
            with pytest.raises(XmlApiResponseTooLarge) as error:
                client.find_faults()
            elapsed = time.monotonic() - started

        assert (error.value.limit, error.value.size) == (1024 * 1024, None)
        assert elapsed < 5

    def test_pickling(self) -> None:
        """The new errors survive pickling with their fields."""
        standby = pickle.loads(pickle.dumps(XmlApiStandby(status=404, reason="Not Found", url="u")))
        too_large = pickle.loads(pickle.dumps(XmlApiResponseTooLarge(limit=10, size=None, url="u")))

        assert type(standby) is XmlApiStandby
        assert (standby.status, standby.reason, standby.url) == (404, "Not Found", "u")
        assert (too_large.limit, too_large.size, too_large.url) == (10, None, "u")

    def test_one_family(self) -> None:
        """Every error is an NfmpError and an XmlApiError."""
        for cls in (XmlApiHttpError, XmlApiStandby, XmlApiUnavailable, XmlApiTimeout, XmlApiResponseTooLarge):
            assert issubclass(cls, XmlApiError)
            assert issubclass(cls, NfmpError)


class TestSecrets:
    def test_not_in_repr(self, client: XmlApiClient) -> None:
        """The client's repr names the endpoint and user, never the password or its digest."""
        text = repr(client)

        assert text == f"<XmlApiClient {client.url} user='oss' timeout=10s>"
        assert not any(secret in text for secret in SECRETS)

    def test_not_in_errors_or_logs(
        self, own_server: SnapshotServer, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Neither the password nor its digest appear in error messages, reprs or log lines, even DEBUG."""
        caplog.set_level(logging.DEBUG)
        errors: list[BaseException] = []
        good = XmlApiClient(base_url(own_server), credentials=USER, timeout=10, request_id_prefix="oss")
        good.find_faults()
        for client in (
            XmlApiClient(
                base_url(own_server), credentials=XmlApiCredentials(user="oss", password=DIGEST + "x")
            ),
            XmlApiClient(base_url(own_server) + "/standby", credentials=USER),
            XmlApiClient(f"http://127.0.0.1:{free_port()}", credentials=USER),
            XmlApiClient(base_url(own_server), credentials=USER, max_response_bytes=100),
        ):
            with pytest.raises(XmlApiError) as error:
                client.find_faults()
            errors.append(error.value)
        own_server.latency = 2.0
        with pytest.raises(XmlApiTimeout) as timeout:
            XmlApiClient(base_url(own_server), credentials=USER, timeout=0.2).ping()
        errors.append(timeout.value)

        assert [type(e) for e in errors] == [
            XmlApiFault,
            XmlApiStandby,
            XmlApiUnavailable,
            XmlApiResponseTooLarge,
            XmlApiTimeout,
        ]
        texts = [str(e) for e in errors] + [repr(e) for e in errors] + [repr(good)]
        texts += [record.getMessage() for record in caplog.records]
        assert any("FindFaultsRequest oss:1 answered with 5 objects" in t for t in texts)
        for secret in SECRETS:
            assert not [t for t in texts if secret in t]


# ----------------------------------------------------------------------------------------------- HTTPS


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own private CA) and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1"
    subprocess.run(
        [
            openssl,
            *command.split(),
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_server(model: NetworkModel, certificate: tuple[Path, Path]) -> Iterator[SnapshotServer]:
    """The SnapshotServer behind TLS: its listening socket wrapped before it starts serving."""
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    snapshot = SnapshotServer(model, credentials=USER)
    snapshot._httpd.socket = context.wrap_socket(snapshot._httpd.socket, server_side=True)
    with snapshot:
        yield snapshot


class TestHttps:
    def test_private_ca(
        self, tls_server: SnapshotServer, model: NetworkModel, certificate: tuple[Path, Path]
    ) -> None:
        """With an SSL context trusting the private CA, requests go over HTTPS and verify the server."""
        context = ssl.create_default_context(cafile=str(certificate[0]))
        client = XmlApiClient(
            base_url(tls_server, "https"), credentials=USER, timeout=10, ssl_context=context
        )

        assert client.find_faults() == model.alarms()
        client.ping()
        assert tls_server.requests == 2

    def test_untrusted_certificate(self, tls_server: SnapshotServer) -> None:
        """Without the private CA the certificate is refused: XmlApiUnavailable, the TLS error chained."""
        client = XmlApiClient(base_url(tls_server, "https"), credentials=USER, timeout=10)

        with pytest.raises(XmlApiUnavailable, match="TLS failed") as error:
            client.ping()

        assert isinstance(error.value.__cause__, ssl.SSLCertVerificationError)
        assert tls_server.requests == 0

    def test_plain_http_to_tls(self, tls_server: SnapshotServer) -> None:
        """Plain HTTP to a TLS port is a typed error, not a hang or a bare exception."""
        client = XmlApiClient(base_url(tls_server), credentials=USER, timeout=5)

        with pytest.raises(XmlApiError) as error:  # reset, or the TLS alert read as an HTTP status line
            client.ping()

        assert isinstance(error.value.__cause__, (ConnectionResetError, http.client.HTTPException))
