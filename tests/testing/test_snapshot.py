"""SnapshotServer: the XML API endpoint answers findFaults and find from its source, over real HTTP."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from nfmp_client import FindFaultsRequest, FindRequest, XmlApiCredentials, XmlApiFault, XmlApiObject
from nfmp_client.testing import NetworkModel, SnapshotServer, SnapshotSource
from nfmp_client.xmlapi import PingRequest, XmlApiRequest, decode_response, encode_request

USER = XmlApiCredentials(user="oss", password="secret")
ALARM = XmlApiObject(
    object_class="fm.AlarmInfo", attributes={"objectFullName": "n|alarm-1", "severity": "minor"}
)
PORT = XmlApiObject(object_class="equipment.PhysicalPort", attributes={"objectFullName": "n|port-1"})


def post(url: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "text/xml"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def ask(
    server: SnapshotServer, request: XmlApiRequest, credentials: XmlApiCredentials | None = USER
) -> list[XmlApiObject]:
    return decode_response(post(server.url, encode_request(request, credentials))[1])


@pytest.fixture
def model() -> NetworkModel:
    return NetworkModel([ALARM, PORT])


@pytest.fixture
def server(model: NetworkModel) -> Iterator[SnapshotServer]:
    with SnapshotServer(model, credentials=USER) as snapshot:
        yield snapshot


class TestSnapshotServer:
    def test_model_is_a_source(self, model: NetworkModel) -> None:
        """A NetworkModel satisfies the SnapshotSource protocol."""
        assert isinstance(model, SnapshotSource)

    def test_find_faults(self, server: SnapshotServer) -> None:
        """findFaults answers the current alarms."""
        assert ask(server, FindFaultsRequest()) == [ALARM]

    def test_find_by_class(self, server: SnapshotServer) -> None:
        """find answers the objects of the class asked for, and nothing for an unknown class."""
        assert ask(server, FindRequest(full_class_name="equipment.PhysicalPort")) == [PORT]
        assert ask(server, FindRequest(full_class_name="equipment.Shelf")) == []

    def test_answers_follow_the_model(self, server: SnapshotServer, model: NetworkModel) -> None:
        """Each answer is the model's state at the time of the request."""
        second = XmlApiObject(object_class="fm.AlarmInfo", attributes={"objectFullName": "n|alarm-2"})
        model.put(second)

        assert ask(server, FindFaultsRequest()) == [ALARM, second]

    def test_ping(self, server: SnapshotServer) -> None:
        """ping is answered (the active server)."""
        assert ask(server, PingRequest()) == []
        assert server.requests == 1

    def test_bad_password_is_a_fault(self, server: SnapshotServer) -> None:
        """A wrong password or no security header gets a SOAP fault, HTTP 500."""
        status, body = post(
            server.url, encode_request(PingRequest(), XmlApiCredentials(user="oss", password="x"))
        )

        assert status == 500
        with pytest.raises(XmlApiFault, match="authentication failed"):
            decode_response(body)
        with pytest.raises(XmlApiFault):
            ask(server, PingRequest(), credentials=None)

    def test_malformed_request_is_a_fault(self, server: SnapshotServer) -> None:
        """A body that is not an XML API request gets a SOAP client fault."""
        status, body = post(server.url, b"<nonsense")

        assert status == 500
        with pytest.raises(XmlApiFault) as fault:
            decode_response(body)
        assert fault.value.code == "SOAP:Client"

    def test_wrong_path_and_method(self, server: SnapshotServer) -> None:
        """Other paths are 404; GET is 405."""
        assert post(server.url.replace("/xmlapi/invoke", "/other"), b"")[0] == 404
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(server.url, timeout=10)
        error.value.close()
        assert error.value.code == 405

    def test_size_limit(self, model: NetworkModel) -> None:
        """A request above the limit is refused with 413, unread."""
        with SnapshotServer(model, max_request_bytes=100) as small:
            assert post(small.url, b"x" * 200)[0] == 413

    def test_latency(self, model: NetworkModel) -> None:
        """A configured latency delays each answer."""
        with SnapshotServer(model, latency=0.3) as slow:
            started = time.monotonic()
            ask(slow, PingRequest(), credentials=None)

            assert time.monotonic() - started >= 0.3

    def test_bad_settings(self, model: NetworkModel) -> None:
        """A negative latency is refused."""
        with pytest.raises(ValueError, match="latency"):
            SnapshotServer(model, latency=-1)
