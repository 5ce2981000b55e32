"""XML API messages: requests and responses round-trip, hostile input gets a typed error, secrets stay out."""

from __future__ import annotations

import contextlib
import pickle

import pytest
from hypothesis import given, strategies as st

from nfmp_client import (
    FindFaultsRequest,
    FindRequest,
    XmlApiCredentials,
    XmlApiError,
    XmlApiFault,
    XmlApiObject,
)
from nfmp_client.xmlapi import (
    PingRequest,
    ReceivedRequest,
    decode_request,
    decode_response,
    encode_fault,
    encode_request,
    encode_response,
)

from .strategies import attribute_maps

ALARM = XmlApiObject(
    object_class="fm.AlarmInfo",
    attributes={"objectFullName": "network:10.1.1.1|alarm-1", "severity": "major", "isAcknowledged": "false"},
)
PORT = XmlApiObject(
    object_class="equipment.PhysicalPort",
    attributes={
        "objectFullName": "network:10.1.1.1|port-1",
        "speed": "10",
        "nested": (("a", "1"), ("b", "")),
    },
)
USER = XmlApiCredentials(user="oss", password="s3cret!")


class TestRequests:
    @pytest.mark.parametrize(
        "request_",
        [
            FindFaultsRequest(request_id="oss1@1:1"),
            FindRequest(full_class_name="equipment.PhysicalPort"),
            FindRequest(full_class_name="fm.AlarmInfo", result_attributes=("objectFullName", "severity")),
            PingRequest(),
        ],
    )
    def test_round_trip(self, request_: FindFaultsRequest | FindRequest | PingRequest) -> None:
        """What encode_request writes, decode_request reads back, with the user and the hashed password."""
        received = decode_request(encode_request(request_, USER))

        assert received == ReceivedRequest(
            request=request_,
            credentials=XmlApiCredentials(user="oss", password=USER.password_digest, hashed=True),
        )
        assert received.credentials is not None
        assert received.credentials.matches(USER)

    def test_password_is_sent_hashed(self) -> None:
        """The clear password never goes on the wire; its MD5 digest does."""
        body = encode_request(PingRequest(), USER)

        assert b"s3cret!" not in body
        assert USER.password_digest.encode() in body

    def test_clear_password_marked_unhashed(self) -> None:
        """A password element with hashed="false" is read as clear text and still matches."""
        body = (
            b'<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/"><SOAP:Header>'
            b'<header xmlns="xmlapi_1.0"><security><user>oss</user><password hashed="false">s3cret!</password>'
            b'</security></header></SOAP:Header><SOAP:Body><ping xmlns="xmlapi_1.0"/></SOAP:Body></SOAP:Envelope>'
        )

        received = decode_request(body)

        assert received.credentials is not None
        assert received.credentials.matches(USER)
        assert not received.credentials.matches(XmlApiCredentials(user="oss", password="other"))

    def test_secrets_stay_out_of_reprs(self) -> None:
        """Neither the password nor its digest appear in a repr."""
        assert "s3cret" not in repr(USER)
        assert USER.password_digest not in repr(decode_request(encode_request(PingRequest(), USER)))

    def test_find_needs_a_class(self) -> None:
        """A find without fullClassName is refused."""
        body = encode_request(FindRequest(full_class_name="x")).replace(
            b"<fullClassName>x</fullClassName>", b""
        )

        with pytest.raises(XmlApiError, match="fullClassName"):
            decode_request(body)

    def test_unknown_operation(self) -> None:
        """An operation this module does not know is a typed error naming it."""
        body = encode_request(PingRequest()).replace(b"<ping", b"<explode")

        with pytest.raises(XmlApiError, match="explode"):
            decode_request(body)


class TestResponses:
    def test_round_trip(self) -> None:
        """Objects written by encode_response are read back by decode_response, nested values included."""
        assert decode_response(encode_response(FindFaultsRequest(), [ALARM])) == [ALARM]
        assert decode_response(encode_response(FindRequest(full_class_name="x"), [PORT, PORT])) == [
            PORT,
            PORT,
        ]
        assert decode_response(encode_response(PingRequest())) == []

    def test_result_filter(self) -> None:
        """A find with result attributes answers only those."""
        request = FindRequest(full_class_name="equipment.PhysicalPort", result_attributes=("objectFullName",))

        (obj,) = decode_response(encode_response(request, [PORT]))

        assert obj.attributes == {"objectFullName": PORT.full_name}

    def test_fault(self) -> None:
        """A SOAP fault becomes XmlApiFault with its code and message, and survives pickling."""
        with pytest.raises(XmlApiFault) as fault:
            decode_response(encode_fault("SOAP:Client", "authentication failed"))

        assert fault.value.code == "SOAP:Client"
        assert fault.value.message == "authentication failed"
        copy = pickle.loads(pickle.dumps(fault.value))
        assert (copy.code, copy.message) == (fault.value.code, fault.value.message)

    @given(attribute_maps())
    def test_attributes_round_trip(self, attributes: dict[str, object]) -> None:
        """Any attribute map the event codec can carry survives a response."""
        obj = XmlApiObject(object_class="equipment.Card", attributes=attributes)  # type: ignore[arg-type]

        assert decode_response(encode_response(FindRequest(full_class_name="equipment.Card"), [obj])) == [obj]


class TestHostileInput:
    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"<not xml", "not well-formed"),
            (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DTD|not well-formed"),
            (b"<Envelope/>", "SOAP 1.1 Envelope"),
            (b'<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/"/>', "no Body"),
            (
                b'<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/"><SOAP:Body>'
                b"<ping/></SOAP:Body></SOAP:Envelope>",
                "namespace",
            ),
        ],
    )
    def test_typed_errors(self, body: bytes, reason: str) -> None:
        """Malformed, DTD-carrying or foreign documents raise XmlApiError, for requests and responses."""
        with pytest.raises(XmlApiError, match=reason):
            decode_request(body)
        with pytest.raises(XmlApiError, match=reason):
            decode_response(body)

    def test_size_limit(self) -> None:
        """Bodies above the limit are refused unread."""
        with pytest.raises(XmlApiError, match="exceeds the limit"):
            decode_request(encode_request(PingRequest()), max_bytes=10)

    @given(st.binary(max_size=300))
    def test_any_bytes(self, body: bytes) -> None:
        """Any bytes give a request or an XmlApiError, never anything else."""
        with contextlib.suppress(XmlApiError):
            decode_request(body)
