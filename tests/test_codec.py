"""Tests for nfmp_client._codec: NFM-P messages <-> event values."""

from __future__ import annotations

import contextlib
import json
import pickle
import re
import threading
from datetime import datetime, timezone

import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nfmp_client import (
    AlarmStatusChange,
    AttributeChange,
    AttributeValueChange,
    Event,
    EventHeader,
    EventVessel,
    FileAvailableEvent,
    JmsMissedEvents,
    KeepAliveEvent,
    MalformedMessage,
    ObjectCreation,
    ObjectDeletion,
    SystemInfoEvent,
    TerminateClientSession,
    UnknownEvent,
    _codec,
)
from nfmp_client.codec import DEFAULT_MAX_MESSAGE_BYTES, EventCodec, decode_message, encode_event

from .strategies import EVENT_STRATEGIES, events

ENVELOPE = (
    '<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/">'
    '<SOAP:Header><header xmlns="xmlapi_1.0">{header}</header></SOAP:Header>'
    '<SOAP:Body><jms xmlns="xmlapi_1.0">{body}</jms></SOAP:Body></SOAP:Envelope>'
)


def soap(body: str, header: str = "") -> bytes:
    return ENVELOPE.format(header=header, body=body).encode()


# Nokia's own example (XML API Developer Guide, Figure 4-18, "JmsMissedEvents message example").
NOKIA_JMS_MISSED_EVENTS = b"""<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/">
<SOAP:Header>
<header xmlns="xmlapi_1.0">
<eventName>JmsMissedEvents</eventName>
<MTOSI_osTime>1222891102168</MTOSI_osTime>
<ALA_clientId>JMS_client@n</ALA_clientId>
<MTOSI_NTType>ALA_OTHER</MTOSI_NTType>
<MTOSI_objectType>StateChangeEvent</MTOSI_objectType>
<ALA_category>GENERAL</ALA_category>
<ALA_isVessel>false</ALA_isVessel>
<ALA_allomorphic/>
<ALA_eventName>JmsMissedEvents</ALA_eventName>
<MTOSI_objectName/>
<ALA_OLC>0</ALA_OLC>
</header>
</SOAP:Header>
<SOAP:Body>
<jms xmlns="xmlapi_1.0">
<stateChangeEvent>
<eventName>JmsMissedEvents</eventName>
<state>jmsMissedEvents</state>
</stateChangeEvent>
</jms>
</SOAP:Body>
</SOAP:Envelope>
"""


_ASTRAL = re.compile("[\U00010000-\U0010ffff]")


def cesu8(text: str) -> bytes:
    """*text* as ActiveMQ's OpenWire writes a TextMessage: each UTF-16 code unit on its own (CESU-8)."""

    def halves(match: re.Match[str]) -> str:
        offset = ord(match.group()) - 0x10000
        return chr(0xD800 + (offset >> 10)) + chr(0xDC00 + (offset & 0x3FF))

    return _ASTRAL.sub(halves, text).encode("utf-8", "surrogatepass")


def activemq_property(value: str) -> str:
    """*value* of a JMS property as it arrives after ActiveMQ's OpenWire: each surrogate half as U+FFFD."""
    return _ASTRAL.sub("\ufffd\ufffd", value)


def measured_repair(body: bytes) -> bytes:
    """The repair verified on every message that crossed ActiveMQ's OpenWire (the oracle of these tests)."""
    text = body.decode("utf-8", "surrogatepass").encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    return text.encode("utf-8")


def received(event: Event, headers: dict[str, str]) -> Event:
    """*event* as the decoder returns it when it arrived with STOMP *headers*."""
    return attrs.evolve(event, header=attrs.evolve(event.header, stomp_headers=headers))


class TestDecodeNokiaSamples:
    def test_nokia_jms_missed_events_example(self) -> None:
        """Nokia's published JmsMissedEvents message decodes with every header property it carries."""
        event = decode_message({}, NOKIA_JMS_MISSED_EVENTS)

        assert isinstance(event, JmsMissedEvents)
        assert event.header.event_name == "JmsMissedEvents"
        assert event.header.object_type == "StateChangeEvent"
        assert event.header.nt_type == "ALA_OTHER"
        assert event.header.category == "GENERAL"
        assert event.header.client_id == "JMS_client@n"
        assert event.header.os_time == datetime(2008, 10, 1, 19, 58, 22, 168000, tzinfo=timezone.utc)
        assert event.header.extra == {
            "ALA_isVessel": "false",
            "ALA_allomorphic": "",
            "ALA_eventName": "JmsMissedEvents",
            "MTOSI_objectName": "",
            "ALA_OLC": "0",
        }
        assert event.attributes == {"state": "jmsMissedEvents"}

    def test_missed_events_recognised_by_state_alone(self) -> None:
        """A stateChangeEvent without eventName but with state jmsMissedEvents is still JmsMissedEvents."""
        event = decode_message(
            {}, soap("<stateChangeEvent><state>jmsMissedEvents</state></stateChangeEvent>")
        )

        assert isinstance(event, JmsMissedEvents)

    def test_system_info_event(self) -> None:
        """SystemInfoEvent keeps its three identity fields as sent and reads them as times when it can."""
        body = (
            "<stateChangeEvent><eventName>SystemInfoEvent</eventName><sysPrimaryIp>10.1.2.3</sysPrimaryIp>"
            "<jmsStartTime>1353585305268</jmsStartTime><sysStartTime>1353585000000</sysStartTime>"
            "<sysStandbyIp>10.1.2.4</sysStandbyIp></stateChangeEvent>"
        )
        event = decode_message({"MTOSI_objectType": "StateChangeEvent"}, soap(body))

        assert isinstance(event, SystemInfoEvent)
        assert event.sys_primary_ip == "10.1.2.3"
        assert event.jms_start_time == "1353585305268"
        assert event.jms_start_datetime == datetime(2012, 11, 22, 11, 55, 5, 268000, tzinfo=timezone.utc)
        assert event.sys_start_time == "1353585000000"
        assert event.attributes == {"sysStandbyIp": "10.1.2.4"}

    def test_system_info_event_without_fields(self) -> None:
        """Fields a SystemInfoEvent does not carry are None, not empty strings."""
        event = decode_message(
            {}, soap("<stateChangeEvent><eventName>SystemInfoEvent</eventName></stateChangeEvent>")
        )

        assert isinstance(event, SystemInfoEvent)
        assert (event.sys_start_time, event.jms_start_time, event.sys_primary_ip) == (None, None, None)

    def test_other_state_change_is_unknown(self) -> None:
        """A stateChangeEvent flavour that is not modelled arrives as UnknownEvent with its XML."""
        event = decode_message({}, soap("<stateChangeEvent><eventName>Other</eventName></stateChangeEvent>"))

        assert isinstance(event, UnknownEvent)
        assert event.element_name == "stateChangeEvent"
        assert (
            event.xml
            == '<stateChangeEvent xmlns="xmlapi_1.0"><eventName>Other</eventName></stateChangeEvent>'
        )

    def test_terminate_client_session(self) -> None:
        """TerminateClientSession takes the client id from its body."""
        body = "<terminateClientSessionEvent><clientId>oss@7</clientId></terminateClientSessionEvent>"
        event = decode_message({"ALA_clientId": "oss@7"}, soap(body))

        assert isinstance(event, TerminateClientSession)
        assert event.client_id == "oss@7"

    def test_terminate_client_session_falls_back_to_header(self) -> None:
        """Without clientId in the body, the addressed client (ALA_clientId) is the one terminated."""
        event = decode_message({"ALA_clientId": "oss@7"}, soap("<terminateClientSessionEvent/>"))

        assert isinstance(event, TerminateClientSession)
        assert event.client_id == "oss@7"

    def test_alarm_creation(self) -> None:
        """An alarm ObjectCreation gives the class element and its attributes in document order."""
        body = (
            "<objectCreationEvent><fm.AlarmInfo><severity>major</severity><alarmName>LinkDown</alarmName>"
            "<objectFullName>network:10.1.1.1|alarm-9</objectFullName><isAcknowledged>false</isAcknowledged>"
            "</fm.AlarmInfo></objectCreationEvent>"
        )
        event = decode_message({"MTOSI_NTType": "NT_ALARM", "MTOSI_objectType": "fm.AlarmObject"}, soap(body))

        assert isinstance(event, ObjectCreation)
        assert event.object_class == "fm.AlarmInfo"
        assert list(event.attributes) == ["severity", "alarmName", "objectFullName", "isAcknowledged"]
        assert event.object_full_name == "network:10.1.1.1|alarm-9"
        assert event.is_alarm

    def test_nested_attribute_values(self) -> None:
        """Structured attributes become (name, value) pairs, repeated names kept."""
        body = (
            "<objectCreationEvent><equipment.PhysicalPort><aliases><alias>a</alias><alias>b</alias></aliases>"
            "<empty/></equipment.PhysicalPort></objectCreationEvent>"
        )
        event = decode_message({}, soap(body))

        assert isinstance(event, ObjectCreation)
        assert event.attributes == {"aliases": (("alias", "a"), ("alias", "b")), "empty": ""}
        assert not event.is_alarm

    def test_attribute_value_change_in_ibm_layout(self) -> None:
        """AVCs are read as IBM's XSLT reads live traffic: a name child, then wrapped new and old values."""
        body = (
            "<attributeValueChangeEvent><objectFullName>port-1</objectFullName>"
            "<attribute><attributeName>operationalState</attributeName>"
            "<newValue><operationalState>2</operationalState></newValue>"
            "<oldValue><operationalState>1</operationalState></oldValue></attribute>"
            "<attribute><name>description</name><newValue>bare</newValue></attribute>"
            "</attributeValueChangeEvent>"
        )
        event = decode_message({"MTOSI_objectType": "equipment.PhysicalPort"}, soap(body))

        assert isinstance(event, AttributeValueChange)
        assert event.object_full_name == "port-1"
        assert event.object_class == "equipment.PhysicalPort"
        assert event.changes == (
            AttributeChange(name="operationalState", new_value="2", old_value="1"),
            AttributeChange(name="description", new_value="bare", old_value=None),
        )
        assert event.new_values == {"operationalState": "2", "description": "bare"}

    def test_deletion_status_change_and_file(self) -> None:
        """Deletion, alarm status change and file-available events expose their main field."""
        deletion = decode_message(
            {}, soap("<objectDeletionEvent><objectFullName>a-1</objectFullName></objectDeletionEvent>")
        )
        status = decode_message(
            {},
            soap(
                "<alarmStatusChangeEvent><objectFullName>a-2</objectFullName><olcState>1</olcState></alarmStatusChangeEvent>"
            ),
        )
        file = decode_message(
            {}, soap("<fileAvailableEvent><fileName>inv.xml</fileName></fileAvailableEvent>")
        )

        assert isinstance(deletion, ObjectDeletion)
        assert deletion.object_full_name == "a-1"
        assert isinstance(status, AlarmStatusChange)
        assert (status.object_full_name, status.attributes) == ("a-2", {"olcState": "1"})
        assert isinstance(file, FileAvailableEvent)
        assert file.file_name == "inv.xml"

    def test_vessel_members_in_order_with_derived_headers(self) -> None:
        """A vessel unpacks into its events in order; each inherits only the vessel's time and client id."""
        body = (
            "<eventVessel><objectCreationEvent><fm.AlarmInfo><severity>minor</severity></fm.AlarmInfo>"
            "</objectCreationEvent><objectDeletionEvent><objectFullName>x</objectFullName></objectDeletionEvent>"
            "<stateChangeEvent><eventName>JmsMissedEvents</eventName></stateChangeEvent>"
            "<xmlFilterChangeEvent/></eventVessel>"
        )
        headers = {
            "ALA_isVessel": "true",
            "ALA_vesselSize": "4",
            "MTOSI_osTime": "1000",
            "ALA_clientId": "a@1",
        }
        vessel = decode_message(headers, soap(body))

        assert isinstance(vessel, EventVessel)
        assert [type(e).__name__ for e in vessel.events] == [
            "ObjectCreation",
            "ObjectDeletion",
            "JmsMissedEvents",
            "UnknownEvent",
        ]
        names = [e.header.event_name for e in vessel.events]
        assert names == ["ObjectCreation", "ObjectDeletion", "JmsMissedEvents", "xmlFilterChangeEvent"]
        for member in vessel.events:
            assert member.header.os_time == datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc)
            assert member.header.client_id == "a@1"
            assert member.header.extra == {}
        assert vessel.header.extra == {"ALA_isVessel": "true", "ALA_vesselSize": "4"}

    def test_unknown_event_keeps_xml(self) -> None:
        """An event element from a newer release arrives as UnknownEvent, XML intact."""
        event = decode_message(
            {}, soap("<xmlFilterChangeEvent><filterId>3</filterId></xmlFilterChangeEvent>")
        )

        assert isinstance(event, UnknownEvent)
        assert event.element_name == "xmlFilterChangeEvent"
        assert (
            event.xml
            == '<xmlFilterChangeEvent xmlns="xmlapi_1.0"><filterId>3</filterId></xmlFilterChangeEvent>'
        )


class TestHeaderProperties:
    def test_stomp_headers_win_over_soap_copy(self) -> None:
        """A property present in both places is taken from the STOMP frame."""
        body = soap("<keepAliveEvent/>", "<ALA_category>GENERAL</ALA_category><ALA_span>:1:</ALA_span>")
        event = decode_message({"ALA_category": "FAULT"}, body)

        assert event.header.category == "FAULT"
        assert event.header.extra == {"ALA_span": ":1:"}

    def test_soap_copy_is_the_fallback(self) -> None:
        """A property the STOMP frame lacks is read from the SOAP header."""
        event = decode_message({}, soap("<keepAliveEvent/>", "<MTOSI_NTType>NT_HEARTBEAT</MTOSI_NTType>"))

        assert event.header.nt_type == "NT_HEARTBEAT"

    def test_soap_header_is_optional(self) -> None:
        """A message without a SOAP Header takes every property from the STOMP frame."""
        body = (
            b'<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/"><SOAP:Body>'
            b'<jms xmlns="xmlapi_1.0"><keepAliveEvent/></jms></SOAP:Body></SOAP:Envelope>'
        )
        event = decode_message({"MTOSI_objectType": "KeepAliveEvent", "message-id": "ID:1"}, body)

        assert isinstance(event, KeepAliveEvent)
        assert event.header.object_type == "KeepAliveEvent"
        assert event.header.stomp_headers == {"MTOSI_objectType": "KeepAliveEvent", "message-id": "ID:1"}

    def test_plain_stomp_headers_are_not_properties(self) -> None:
        """STOMP's own headers (message-id, destination, ...) stay in stomp_headers, not in extra."""
        event = decode_message({"destination": "/topic/x", "ALA_OLC": "2"}, soap("<keepAliveEvent/>"))

        assert event.header.extra == {"ALA_OLC": "2"}

    def test_unreadable_os_time_is_kept_not_fatal(self) -> None:
        """An osTime that is not epoch milliseconds leaves os_time None and the raw value in extra."""
        event = decode_message({"MTOSI_osTime": "2011-09-12T13:29:30Z"}, soap("<keepAliveEvent/>"))

        assert event.header.os_time is None
        assert event.header.extra == {"MTOSI_osTime": "2011-09-12T13:29:30Z"}

    def test_empty_os_time_is_none(self) -> None:
        """An empty osTime means no time, and is not kept."""
        event = decode_message({"MTOSI_osTime": ""}, soap("<keepAliveEvent/>"))

        assert event.header.os_time is None
        assert event.header.extra == {}

    def test_str_body_is_read_as_utf8(self) -> None:
        """stomp.py hands bodies over as str by default; those decode the same as bytes."""
        body = soap("<objectDeletionEvent><objectFullName>Zürich-1</objectFullName></objectDeletionEvent>")
        event = decode_message({}, body.decode())

        assert isinstance(event, ObjectDeletion)
        assert event.object_full_name == "Zürich-1"

    def test_declared_latin1_encoding_is_honoured(self) -> None:
        """A body that declares its encoding is read in that encoding."""
        deletion = "<objectDeletionEvent><objectFullName>Zürich</objectFullName></objectDeletionEvent>"
        body = (
            '<?xml version="1.0" encoding="ISO-8859-1"?>' + ENVELOPE.format(header="", body=deletion)
        ).encode("latin-1")
        event = decode_message({}, body)

        assert isinstance(event, ObjectDeletion)
        assert event.object_full_name == "Zürich"


# Text with characters outside the Basic Multilingual Plane, at least one of them.
astral_text = st.builds(
    lambda head, astral, tail: head + astral + tail,
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")), max_size=10),
    st.text(
        st.characters(min_codepoint=0x10000, exclude_categories=("Cs", "Cc", "Cn")), min_size=1, max_size=5
    ),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")), max_size=10),
)


class TestCesu8:
    """Text that crossed ActiveMQ's OpenWire (a JMS bridge): CESU-8 bodies, properties with U+FFFD."""

    def test_the_bytes_activemq_sends(self) -> None:
        """U+1D11E written as ed a0 b4 ed b4 9e decodes as the character."""
        body = soap("<fileAvailableEvent><fileName>clef-\U0001d11e.xml</fileName></fileAvailableEvent>")
        bridged = cesu8(body.decode())
        assert b"clef-\xed\xa0\xb4\xed\xb4\x9e.xml" in bridged

        event = decode_message({}, bridged)

        assert isinstance(event, FileAvailableEvent)
        assert event.file_name == "clef-\U0001d11e.xml"

    @settings(suppress_health_check=[HealthCheck.too_slow], max_examples=150)
    @given(events)
    def test_any_event_decodes_as_its_utf8_form(self, event: Event) -> None:
        """Any event, its body in CESU-8 and its properties as ActiveMQ delivers them, decodes to the event."""
        message = encode_event(event)
        body = cesu8(message.body.decode())
        headers = {name: activemq_property(value) for name, value in message.headers.items()}
        assert measured_repair(body) == message.body

        assert decode_message(headers, body) == received(event, headers)

    @settings(max_examples=150)
    @given(astral_text, astral_text, astral_text)
    def test_astral_text_everywhere_decodes(self, full_name: str, object_name: str, client_id: str) -> None:
        """Characters outside the BMP in body fields and in properties come back whole."""
        event = AlarmStatusChange(
            header=EventHeader(
                event_name="AlarmStatusChange", client_id=client_id, extra={"MTOSI_objectName": object_name}
            ),
            object_full_name=full_name,
            attributes={"additionalText": full_name + object_name},
        )
        message = encode_event(event)
        headers = {name: activemq_property(value) for name, value in message.headers.items()}

        decoded = decode_message(headers, cesu8(message.body.decode()))

        assert decoded == received(event, headers)
        assert decoded == received(decode_message(message.headers, message.body), headers)

    def test_only_damaged_frame_values_give_way(self) -> None:
        """In a bridged message, a frame value with U+FFFD yields to its SOAP copy; other frame values win."""
        body = cesu8(
            soap(
                "<keepAliveEvent/>",
                "<MTOSI_objectName>port-\U0001f600</MTOSI_objectName><ALA_category>GENERAL</ALA_category>",
            ).decode()
        )
        frame = {"MTOSI_objectName": "port-\ufffd\ufffd", "ALA_category": "FAULT"}

        event = decode_message(frame, body)

        assert event.header.extra == {"MTOSI_objectName": "port-\U0001f600"}
        assert event.header.category == "FAULT"
        assert event.header.stomp_headers == frame

    def test_replacement_characters_of_an_ordinary_message_are_kept(self) -> None:
        """Without CESU-8 in the body, the frame wins as always, U+FFFD and all."""
        body = soap("<keepAliveEvent/>", "<MTOSI_objectName>port-\U0001f600</MTOSI_objectName>")

        event = decode_message({"MTOSI_objectName": "port-\ufffd"}, body)

        assert event.header.extra == {"MTOSI_objectName": "port-\ufffd"}

    def test_payload_is_kept_as_received(self) -> None:
        """A bridged message that is malformed for another reason keeps its bytes as they arrived."""
        body = cesu8(
            soap("<objectCreationEvent/>", "<MTOSI_objectName>\U0001f600</MTOSI_objectName>").decode()
        )

        with pytest.raises(MalformedMessage, match="exactly one object element") as info:
            decode_message({}, body)

        assert info.value.payload is body


class TestMalformed:
    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"", "empty body: no event document"),
            (b"<a/>", "expected a SOAP 1.1 Envelope"),
            (b'<SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/"/>', "no Body"),
            (soap("").replace(b'<jms xmlns="xmlapi_1.0"></jms>', b""), "no <jms"),
            (soap(""), "exactly one event element, it holds 0"),
            (soap("<keepAliveEvent/><keepAliveEvent/>"), "exactly one event element, it holds 2"),
            (soap("<objectCreationEvent/>"), "exactly one object element"),
            (soap("<objectDeletionEvent><a>1</a><a>2</a></objectDeletionEvent>"), "appears twice"),
            (soap("<fileAvailableEvent><fileName><x>1</x></fileName></fileAvailableEvent>"), "must be text"),
            (soap("<attributeValueChangeEvent><attribute/></attributeValueChangeEvent>"), "has no name"),
            (soap("<eventVessel><eventVessel/></eventVessel>"), "cannot contain another eventVessel"),
            (soap('<keepAliveEvent xmlns="other"/>'), "outside the NFM-P namespace"),
        ],
    )
    def test_reasons(self, body: bytes, reason: str) -> None:
        """Each way a message can be wrong is named in the MalformedMessage reason."""
        with pytest.raises(MalformedMessage) as info:
            decode_message({"message-id": "m1"}, body)

        assert reason in info.value.reason
        assert info.value.payload == body
        assert info.value.headers == {"message-id": "m1"}

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ("<a>1</a><b>2</b><a>3</a>", "field 'a' appears twice in <objectDeletionEvent>"),
            ("<a>1</a><a>2</a><b>3</b><b>4</b>", "field 'a' appears twice in <objectDeletionEvent>"),
            ("<a>1</a><b>2</b><b>3</b><a>4</a>", "field 'b' appears twice in <objectDeletionEvent>"),
            ('<a>1</a><a>2</a><c xmlns="urn:other"/>', "field 'a' appears twice in <objectDeletionEvent>"),
            (
                '<c xmlns="urn:other"/><a>1</a><a>2</a>',
                "element '{urn:other}c' is outside the NFM-P namespace",
            ),
            ('<a>1</a><a>2</a><s><c xmlns="urn:other"/></s>', "field 'a' appears twice"),
            ('<s><c xmlns="urn:other"/></s><a>1</a><a>2</a>', "element '{urn:other}c' is outside"),
        ],
        ids=["dup", "two-dups", "first-repeat", "dup-foreign", "foreign-dup", "dup-nested", "nested-dup"],
    )
    def test_first_problem_in_document_order_is_the_reason(self, fields: str, reason: str) -> None:
        """Of several problems in an event's fields, the reason names the first in document order."""
        with pytest.raises(MalformedMessage) as info:
            decode_message({}, soap(f"<objectDeletionEvent>{fields}</objectDeletionEvent>"))

        assert reason in info.value.reason

    def test_str_and_repr_stay_short(self) -> None:
        """str() and repr() give the reason and the size, not the (possibly huge) payload."""
        body = b"<not-xml " + b"x" * 100_000 + b" tail-marker"
        with pytest.raises(MalformedMessage) as info:
            decode_message({}, body)

        assert info.value.payload is body
        assert str(info.value).startswith("malformed NFM-P message (100021 bytes): not well-formed XML")
        assert len(str(info.value)) < 300
        assert len(repr(info.value)) < 300
        assert "tail-marker" not in str(info.value) + repr(info.value)

    def test_is_a_value_error_and_pickles(self) -> None:
        """MalformedMessage is a ValueError and survives pickling with all its fields."""
        error = MalformedMessage("bad", payload=b"<x", headers={"a": "b"})
        copy = pickle.loads(pickle.dumps(error))

        assert isinstance(copy, MalformedMessage)
        assert isinstance(copy, ValueError)
        assert (copy.reason, copy.payload, copy.headers) == ("bad", b"<x", {"a": "b"})

    def test_unencodable_str_body(self) -> None:
        """A str body with lone surrogates is malformed, not a UnicodeEncodeError."""
        with pytest.raises(MalformedMessage, match="cannot be encoded as UTF-8"):
            decode_message({}, soap("<keepAliveEvent/>").decode() + "\udc80")


class TestLimits:
    def test_limit_is_configurable(self) -> None:
        """A codec refuses bodies above its own limit and accepts them below it."""
        body = soap("<keepAliveEvent/>")

        with pytest.raises(MalformedMessage, match="exceeds the limit of 100 bytes"):
            EventCodec(max_message_bytes=100).decode({}, body)
        with pytest.raises(MalformedMessage, match="exceeds the limit"):
            decode_message({}, body, max_message_bytes=100)
        assert isinstance(EventCodec(max_message_bytes=len(body)).decode({}, body), KeepAliveEvent)

    def test_default_limit_is_a_few_megabytes(self) -> None:
        """The default limit is 4 MiB."""
        assert EventCodec().max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES == 4 * 1024 * 1024

    @pytest.mark.parametrize("limit", [0, -1])
    def test_limit_must_be_positive(self, limit: int) -> None:
        """A codec with a non-positive limit cannot be built."""
        with pytest.raises(ValueError, match="positive"):
            EventCodec(max_message_bytes=limit)


class TestEncode:
    def test_headers_and_soap_header_carry_the_same_properties(self) -> None:
        """The STOMP headers and the SOAP header copy hold the same property values."""
        header = EventHeader(
            event_name="KeepAliveEvent",
            object_type="KeepAliveEvent",
            nt_type="NT_HEARTBEAT",
            os_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
            extra={"ALA_OLC": "0"},
        )
        message = encode_event(KeepAliveEvent(header=header))

        assert message.headers == {
            "eventName": "KeepAliveEvent",
            "MTOSI_objectType": "KeepAliveEvent",
            "MTOSI_NTType": "NT_HEARTBEAT",
            "ALA_category": "",
            "ALA_clientId": "",
            "MTOSI_osTime": "1767225600000",
            "ALA_OLC": "0",
        }
        assert decode_message({}, message.body) == KeepAliveEvent(header=header)

    def test_os_time_is_written_in_whole_milliseconds(self) -> None:
        """Sub-millisecond precision is floored, as NFM-P's epoch-ms format requires."""
        header = EventHeader(os_time=datetime(2026, 1, 1, 0, 0, 0, 1999, tzinfo=timezone.utc))

        assert encode_event(KeepAliveEvent(header=header)).headers["MTOSI_osTime"] == "1767225600001"

    @pytest.mark.parametrize(
        ("event", "message"),
        [
            (KeepAliveEvent(header=EventHeader(extra={"eventName": "x"})), "given twice"),
            (TerminateClientSession(attributes={"clientId": "x"}), "collides"),
            (ObjectCreation(object_class="not a name"), "Invalid tag name"),
            (ObjectCreation(object_class="c", attributes={"a": ()}), "at least one member"),
            (KeepAliveEvent(header=EventHeader(client_id="\x00")), "XML compatible"),
            (EventVessel(events=(EventVessel(),)), "cannot contain another EventVessel"),
            (UnknownEvent(element_name="a", xml="<a"), "not well-formed"),
            (UnknownEvent(element_name="a", xml="<b xmlns='xmlapi_1.0'/>"), "must be one <a"),
            (UnknownEvent(element_name="a", xml="<a/>"), "must be one <a"),
        ],
    )
    def test_unrepresentable_events_raise_value_error(self, event: Event, message: str) -> None:
        """An event the wire cannot carry is refused with a ValueError that says why."""
        with pytest.raises(ValueError, match=message):
            encode_event(event)


class TestProperties:
    @pytest.mark.parametrize("event_class", list(EVENT_STRATEGIES), ids=lambda c: c.__name__)
    @settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
    @given(data=st.data())
    def test_round_trip_per_class(self, event_class: type, data: st.DataObject) -> None:
        """For every event class, encode then decode gives the same value back (plus the STOMP headers)."""
        event = data.draw(EVENT_STRATEGIES[event_class])
        message = encode_event(event)

        assert decode_message(message.headers, message.body) == received(event, dict(message.headers))

    @given(events)
    def test_soap_header_alone_gives_the_same_event(self, event: Event) -> None:
        """Without STOMP headers the SOAP header copy alone gives the same event."""
        message = encode_event(event)

        assert decode_message({}, message.body) == event

    @given(st.binary(max_size=2000))
    def test_random_bytes_decode_or_are_malformed(self, body: bytes) -> None:
        """Arbitrary bytes give an event or MalformedMessage, never another exception."""
        with contextlib.suppress(MalformedMessage):
            decode_message({}, body)

    @given(events, st.data())
    def test_mutated_messages_decode_or_are_malformed(self, event: Event, data: st.DataObject) -> None:
        """Valid messages with random damage give an event or MalformedMessage, never another exception."""
        body = bytearray(encode_event(event).body)
        for _ in range(data.draw(st.integers(1, 4))):
            position = data.draw(st.integers(0, len(body)))
            action = data.draw(st.sampled_from(["delete", "insert", "replace", "truncate", "duplicate"]))
            if action == "delete":
                del body[position : position + data.draw(st.integers(1, 20))]
            elif action == "insert":
                body[position:position] = data.draw(st.binary(min_size=1, max_size=20))
            elif action == "replace" and position < len(body):
                body[position] = data.draw(st.integers(0, 255))
            elif action == "truncate":
                del body[position:]
            else:
                body[position:position] = body[position : position + data.draw(st.integers(1, 60))]
        headers = data.draw(
            st.dictionaries(st.sampled_from(["MTOSI_osTime", "ALA_clientId", "x"]), st.text())
        )
        with contextlib.suppress(MalformedMessage):
            decode_message(headers, bytes(body))


class TestSharedNames:
    ALARM = soap(
        "<objectCreationEvent><fm.AlarmInfo><severity>major</severity><alarmName>LinkDown</alarmName>"
        "<s><member>1</member></s></fm.AlarmInfo></objectCreationEvent>",
        header="<ALA_category>FAULT</ALA_category><ALA_alarmType>equipmentAlarm</ALA_alarmType>",
    )

    def test_names_are_one_object_across_events(self) -> None:
        """Attribute and property names decoded from the XML are shared between events, not copied."""
        first, second = decode_message({}, self.ALARM), decode_message({}, self.ALARM)
        assert isinstance(first, ObjectCreation)
        assert isinstance(second, ObjectCreation)

        assert first == second
        for one, other in zip(first.attributes, second.attributes, strict=True):
            assert one is other
        for one, other in zip(first.header.extra, second.header.extra, strict=True):
            assert one is other
        assert first.object_class is second.object_class
        structure, again = first.attributes["s"], second.attributes["s"]
        assert isinstance(structure, tuple)
        assert isinstance(again, tuple)
        assert structure[0][0] is again[0][0] == "member"

    def test_events_stay_plain_values(self) -> None:
        """Decoded events compare, pickle and serialise as the plain values they are."""
        event = decode_message({"ALA_OLC": "0", "message-id": "m1"}, self.ALARM)
        assert isinstance(event, ObjectCreation)

        assert type(event.attributes) is dict
        assert type(event.header.extra) is dict
        assert pickle.loads(pickle.dumps(event)) == event
        assert json.loads(json.dumps(dict(event.attributes))) == {
            "severity": "major",
            "alarmName": "LinkDown",
            "s": [["member", "1"]],
        }
        assert event.header.extra == {"ALA_OLC": "0", "ALA_alarmType": "equipmentAlarm"}
        assert event.header.category == "FAULT"

    def test_a_foreign_element_in_the_soap_header_is_ignored_and_not_remembered(self) -> None:
        """A SOAP header child outside the NFM-P namespace is no property, now or later."""
        body = soap(
            "<keepAliveEvent/>", header='<ALA_OLC>0</ALA_OLC><x:ALA_fake xmlns:x="urn:x">1</x:ALA_fake>'
        )

        for _ in range(2):
            event = decode_message({}, body)
            assert event.header.extra == {"ALA_OLC": "0"}
        assert "{urn:x}ALA_fake" not in _codec._LOCAL_NAMES


class TestThreads:
    def test_concurrent_decoding_gives_the_same_results(self) -> None:
        """One codec can be used from several threads at once."""
        bodies = [
            soap(f"<objectDeletionEvent><objectFullName>o-{i}</objectFullName></objectDeletionEvent>")
            for i in range(50)
        ]
        expected = [decode_message({}, body) for body in bodies]
        results: dict[int, list[Event]] = {}

        def work(slot: int) -> None:
            results[slot] = [decode_message({}, body) for _ in range(40) for body in bodies][-50:]

        threads = [threading.Thread(target=work, args=(slot,)) for slot in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert all(results[slot] == expected for slot in range(4))


class TestHostileHeaders:
    @given(
        st.dictionaries(
            st.sampled_from(["MTOSI_osTime", "eventName", "MTOSI_objectType", "ALA_clientId", "MTOSI_NTType"])
            | st.text(max_size=30),
            st.text(max_size=50) | st.integers(1, 6000).map(lambda n: "7" * n),
            max_size=6,
        ),
        events,
    )
    @settings(suppress_health_check=[HealthCheck.too_slow], max_examples=80)
    def test_any_headers_decode_or_are_malformed(self, headers: dict[str, str], event: Event) -> None:
        """Arbitrary STOMP header values (numbers of thousands of digits included) give an event or
        MalformedMessage, never another exception."""
        body = encode_event(event).body
        with contextlib.suppress(MalformedMessage):
            decode_message(headers, body)

    def test_an_os_time_of_five_thousand_digits_is_kept_not_raised(self) -> None:
        """An MTOSI_osTime beyond Python's digit limit for int() stays in extra, unread, and raises nothing."""
        huge = "9" * 5000
        event = KeepAliveEvent(header=EventHeader(extra={"MTOSI_osTime": huge}))
        message = encode_event(event)

        for stomp_headers in ({"MTOSI_osTime": huge}, {}):  # in the STOMP headers, or the SOAP header only
            decoded = decode_message(stomp_headers, message.body)

            assert decoded.header.os_time is None
            assert decoded.header.extra["MTOSI_osTime"] == huge
