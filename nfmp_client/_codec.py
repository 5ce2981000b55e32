"""Wire format: STOMP headers + SOAP/XML body <-> event values.

The only module that knows the NFM-P message layout, the JMS property names and lxml.

Decoding is hardened against hostile input: the body size is checked before parsing; the parser never
resolves entities, loads a DTD or touches the network; a document with a document type declaration is refused
outright (NFM-P never sends one, and that is where entity attacks live); libxml2's own depth and node-size
limits stay on (``huge_tree=False``). Every way a message can be wrong ends in :class:`MalformedMessage`,
which keeps the payload.

Header properties come from the STOMP frame headers first (that is where NFM-P's JMS properties arrive) and
from the copy in the SOAP ``<header>`` element where the frame does not carry them, or carries them damaged.

Text that crossed ActiveMQ's OpenWire (a JMS bridge from NFM-P's JMS server into the broker the client reads
over STOMP) arrives with every character outside the Basic Multilingual Plane written as CESU-8: each half of
its UTF-16 surrogate pair as three bytes (``ed a0 b4 ed b4 9e`` for U+1D11E, not ``f0 9d 84 9e``), which no
UTF-8 decoder accepts. The decoder rewrites such pairs as UTF-8 and parses again; it looks for them only in
a body the XML parser refused, so ordinary messages pay nothing. The same path replaces each half of such a
character in a JMS property with U+FFFD, beyond repair: in a body that held such pairs, a frame header value
with U+FFFD gives way to its SOAP copy.

Which parts of the layout Nokia's guide documents, and which come from IBM's ``alu5620sam_datastage`` or are
our reading: see docs/background.rst, 'Event messages', and docs/events.rst.
"""

from __future__ import annotations

import codecs
import copy
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Final

import attrs
from attrs import field, frozen
from lxml import etree

from ._events import (
    AlarmStatusChange,
    AttributeChange,
    AttributeValue,
    AttributeValueChange,
    Event,
    EventHeader,
    EventVessel,
    FileAvailableEvent,
    JmsMissedEvents,
    KeepAliveEvent,
    ObjectCreation,
    ObjectDeletion,
    SystemInfoEvent,
    TerminateClientSession,
    UnknownEvent,
)
from ._exceptions import MalformedMessage

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "NFMP_NAMESPACE",
    "SOAP_NAMESPACE",
    "EncodedMessage",
    "EventCodec",
    "decode_message",
    "encode_event",
]

SOAP_NAMESPACE: Final = "http://schemas.xmlsoap.org/soap/envelope/"
"""The SOAP 1.1 envelope namespace NFM-P messages use."""
NFMP_NAMESPACE: Final = "xmlapi_1.0"
"""The namespace of NFM-P's header and event elements."""
DEFAULT_MAX_MESSAGE_BYTES: Final = 4 * 1024 * 1024
"""Messages larger than this (4 MiB) are refused before parsing unless the codec is configured otherwise."""

_ENVELOPE = f"{{{SOAP_NAMESPACE}}}Envelope"
_SOAP_HEADER = f"{{{SOAP_NAMESPACE}}}Header"
_SOAP_BODY = f"{{{SOAP_NAMESPACE}}}Body"
_API = f"{{{NFMP_NAMESPACE}}}"
_API_LEN = len(_API)
_API_HEADER = _API + "header"
_API_JMS = _API + "jms"
_API_EVENT_NAME = _API + "eventName"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)

# Local names by lxml's full tag ("{xmlapi_1.0}severity" -> "severity"), for tags in the NFM-P namespace only:
# the namespace check and the slice happen once per distinct name, and every event shares one (interned) str
# per name. Which frame headers are header properties, likewise. Both bounded: emptied when full, so that a
# stream of ever new names (hostile or not) cannot grow them.
_MAX_CACHED_NAMES: Final = 4096
_LOCAL_NAMES: Final[dict[object, str]] = {}
_IS_PROPERTY: Final[dict[str, bool]] = {}

# The header properties that have a typed field on EventHeader (MTOSI_osTime is handled on its own).
_EVENT_NAME = "eventName"
_OBJECT_TYPE = "MTOSI_objectType"
_NT_TYPE = "MTOSI_NTType"
_CATEGORY = "ALA_category"
_CLIENT_ID = "ALA_clientId"
_OS_TIME = "MTOSI_osTime"
# The frame headers that are NFM-P header properties: these prefixes, and eventName.
_PROPERTY_PREFIXES: Final = ("ALA_", "MTOSI_")

# CESU-8: a UTF-16 surrogate as three bytes, ED A0-AF xx (high half) or ED B0-BF xx (low half). UTF-8 never
# has ED followed by A0-BF, so such bytes in a UTF-8 document are always this (or damage).
_CESU8_LEAD: Final = b"\xed"
# A pair (group 1) or a lone half. The common literal first keeps the scan fast (a memchr-like search).
_CESU8_SURROGATE: Final = re.compile(
    rb"\xed(?:([\xa0-\xaf][\x80-\xbf]\xed[\xb0-\xbf][\x80-\xbf])|[\xa0-\xbf][\x80-\xbf])"
)
_XML_ENCODING: Final = re.compile(rb"""<\?xml[^>]*?\sencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_REPLACEMENT: Final = "\ufffd"
# NFM-P can send its events as JMS object messages (a text message wrapped for compression); a STOMP client of
# ActiveMQ gets the body of text and bytes messages only, so such an event arrives with its properties alone.
_EMPTY: Final = (
    "empty body: no event document came with the message's properties (a JMS object message, as NFM-P can "
    "wrap events, reaches a STOMP client of ActiveMQ without its body: see the deployment documentation)"
)

# lxml parsers may be shared between threads: each thread gets its own libxml2 parser context.
_PARSER: Final = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    collect_ids=False,
)


class _Invalid(Exception):
    """Raised inside the decoder; turned into MalformedMessage (with the payload) at the boundary."""


@frozen(kw_only=True)
class EncodedMessage:
    """An event ready for the wire: the STOMP headers (JMS properties) and the SOAP body."""

    headers: Mapping[str, str] = field(hash=False)
    """The header properties to send as STOMP headers (``eventName``, ``MTOSI_*``, ``ALA_*``)."""
    body: bytes
    """The SOAP envelope, UTF-8 encoded, with an XML declaration."""


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be a positive number of bytes, got {value!r}")


@frozen(kw_only=True)
class EventCodec:
    """Decodes NFM-P messages into events and encodes events into messages.

    Stateless apart from its limits, and safe to share between threads.
    """

    max_message_bytes: int = field(default=DEFAULT_MAX_MESSAGE_BYTES, validator=_positive)
    """The largest body, in bytes, that :meth:`decode` will parse; larger ones are refused unread."""

    def decode(self, headers: Mapping[str, str], body: bytes | str) -> Event:
        """Turn one received message into an event.

        A UTF-8 body with characters written as CESU-8 surrogate pairs (text that crossed ActiveMQ's
        OpenWire) is read as the UTF-8 it stands for.

        Args:
            headers: The STOMP frame headers as received.
            body: The frame body, best as ``bytes``; ``str`` bodies (stomp.py decodes by default) are read
                as UTF-8, but stomp.py's decoding has already replaced the bytes of CESU-8 pairs with U+FFFD.

        Returns:
            The event. Event elements this version does not model become :class:`~nfmp_client.UnknownEvent`.

        Raises:
            MalformedMessage: The body is too large, not well-formed XML (a lone surrogate included), declares
                a DTD, is not an NFM-P SOAP event, or has fields that cannot be read. The exception carries
                the payload (as received) and headers.
        """
        payload = body if isinstance(body, bytes) else _as_bytes(body, headers)
        if not payload:
            raise MalformedMessage(_EMPTY, payload=payload, headers=headers)
        repaired = False
        try:
            root = _parse_hardened(payload, self.max_message_bytes, "message body")
        except _Invalid as exc:
            # Only a body the parser refused can hold CESU-8: ordinary messages never pay for a look.
            root = self._parse_cesu8(payload, headers, exc)
            repaired = True
        try:
            return _decode_envelope(root, headers, repaired)
        except _Invalid as exc:
            raise MalformedMessage(str(exc), payload=payload, headers=headers) from None
        except (ValueError, TypeError, OverflowError, RecursionError, UnicodeError) as exc:
            # Whatever the content, nothing but MalformedMessage leaves the codec: one odd value must not
            # turn into an error that stops the stream.
            reason = f"a field cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
            raise MalformedMessage(reason, payload=payload, headers=headers) from exc

    def _parse_cesu8(self, payload: bytes, headers: Mapping[str, str], refusal: _Invalid) -> etree._Element:
        """Parse a refused *payload* again, its CESU-8 pairs as UTF-8; MalformedMessage if that is not it."""
        try:
            document = payload
            if isinstance(refusal.__cause__, etree.XMLSyntaxError) and payload.find(_CESU8_LEAD) >= 0:
                document = _from_cesu8(payload)
            if document is payload:
                raise refusal
            return _parse_hardened(document, self.max_message_bytes, "message body")
        except _Invalid as exc:
            raise MalformedMessage(str(exc), payload=payload, headers=headers) from exc.__cause__

    def encode(self, event: Event) -> EncodedMessage:
        """Turn an event into the headers and body NFM-P would send for it.

        The STOMP headers and the SOAP ``<header>`` carry the same properties. ``header.stomp_headers`` of
        the event is not written (it describes a received frame). The contained events of an
        :class:`~nfmp_client.EventVessel` are written without headers, as on the wire.

        Raises:
            ValueError: A name or value cannot be represented (not a valid XML name, a character XML cannot
                carry, a header property given twice, a body field that collides with a typed field).
        """
        properties = _header_properties(event.header)
        envelope = etree.Element(_ENVELOPE, nsmap={"SOAP": SOAP_NAMESPACE})
        soap_header = etree.SubElement(envelope, _SOAP_HEADER)
        api_header = etree.SubElement(soap_header, _API_HEADER, nsmap={None: NFMP_NAMESPACE})
        for name, value in properties.items():
            etree.SubElement(api_header, _API + name).text = value
        soap_body = etree.SubElement(envelope, _SOAP_BODY)
        jms = etree.SubElement(soap_body, _API_JMS, nsmap={None: NFMP_NAMESPACE})
        _encode_event(jms, event, in_vessel=False)
        body = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
        return EncodedMessage(headers=properties, body=body)


_DEFAULT_CODEC: Final = EventCodec()


def decode_message(
    headers: Mapping[str, str], body: bytes | str, *, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> Event:
    """Decode one message with the default limits; see :meth:`EventCodec.decode`.

    Raises:
        MalformedMessage: The message cannot be decoded; the exception keeps the payload.
    """
    codec = (
        _DEFAULT_CODEC
        if max_message_bytes == DEFAULT_MAX_MESSAGE_BYTES
        else EventCodec(max_message_bytes=max_message_bytes)
    )
    return codec.decode(headers, body)


def encode_event(event: Event) -> EncodedMessage:
    """Encode one event; see :meth:`EventCodec.encode`.

    Raises:
        ValueError: A name or value of the event cannot be represented on the wire.
    """
    return _DEFAULT_CODEC.encode(event)


# --------------------------------------------------------------------------------------------- decoding


def _as_bytes(body: bytes | str, headers: Mapping[str, str]) -> bytes:
    if isinstance(body, bytes):
        return body
    try:
        return body.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedMessage(
            f"body text cannot be encoded as UTF-8: {exc.reason}",
            payload=body.encode("utf-8", "backslashreplace"),
            headers=headers,
        ) from None


def _from_cesu8(payload: bytes) -> bytes:
    """Rewrite CESU-8 surrogate pairs in a UTF-8 document as UTF-8 (raises _Invalid on a lone surrogate).

    A document the parser reads in another encoding, or without such bytes, comes back as it is.
    """
    if _CESU8_SURROGATE.search(payload) is None or not _read_as_utf8(payload):
        return payload
    return _CESU8_SURROGATE.sub(_surrogate_pair_to_utf8, payload)


def _surrogate_pair_to_utf8(match: re.Match[bytes]) -> bytes:
    if match.group(1) is None:
        half = ord(match.group().decode("utf-8", "surrogatepass"))
        raise _Invalid(
            f"not well-formed UTF-8: a lone UTF-16 surrogate U+{half:04X} (CESU-8 bytes "
            f"{match.group().hex(' ')} at byte {match.start()}) that pairs with no other"
        )
    pair = match.group().decode("utf-8", "surrogatepass")  # two surrogate code points
    return pair.encode("utf-16-le", "surrogatepass").decode("utf-16-le").encode("utf-8")


def _read_as_utf8(payload: bytes) -> bool:
    """Whether the XML parser reads *payload* as UTF-8 (XML 1.0, Appendix F: byte-order mark, declaration)."""
    head = payload[3:259] if payload.startswith(codecs.BOM_UTF8) else payload[:256]
    if head.startswith(b"<?xml"):
        declared = _XML_ENCODING.match(head)
        return declared is None or declared.group(1).lower() in (b"utf-8", b"utf8")
    return not head.startswith((codecs.BOM_UTF16_BE, codecs.BOM_UTF16_LE)) and b"\x00" not in head[:4]


def _parse_hardened(payload: bytes, max_bytes: int, noun: str) -> etree._Element:
    """Parse *payload* with the hardened parser: size limit first, DTDs refused (raises _Invalid).

    Every XML document the library reads from the outside (events, XML API answers) goes through here.
    """
    if len(payload) > max_bytes:
        raise _Invalid(f"{noun} of {len(payload)} bytes exceeds the limit of {max_bytes} bytes")
    try:
        root = etree.fromstring(payload, _PARSER)
    except (etree.XMLSyntaxError, etree.ParserError, ValueError, LookupError) as exc:
        raise _Invalid(f"not well-formed XML: {_shorten(getattr(exc, 'msg', None) or str(exc))}") from exc
    if root.getroottree().docinfo.internalDTD is not None:
        raise _Invalid("the document declares a DTD, which NFM-P messages never do (refused: entity attacks)")
    return root


def _shorten(text: str, limit: int = 200) -> str:
    # libxml2 quotes pieces of the input in its messages: keep reasons one readable line.
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _local(element: etree._Element) -> str:
    tag = element.tag
    name = _LOCAL_NAMES.get(tag)
    return _learn(tag) if name is None else name


def _learn(tag: object) -> str:
    """Check and cache the local name of a *tag* the cache lacks (_Invalid outside the NFM-P namespace)."""
    if type(tag) is not str:
        raise _Invalid("unexpected non-element node (entity reference) in the event")
    if not tag.startswith(_API):
        raise _Invalid(f"element {tag!r} is outside the NFM-P namespace {NFMP_NAMESPACE!r}")
    name = sys.intern(tag[_API_LEN:])
    if len(_LOCAL_NAMES) >= _MAX_CACHED_NAMES:
        _LOCAL_NAMES.clear()  # a flood of distinct names costs speed, never memory
    _LOCAL_NAMES[tag] = name
    return name


def _value(element: etree._Element) -> AttributeValue:
    if len(element):
        return tuple((_local(child), _value(child)) for child in element)
    return element.text or ""


def _fields(element: etree._Element) -> dict[str, AttributeValue]:
    # The hot loop of decoding (an alarm has ~25 attributes). A name given twice shows as fewer fields than
    # children; any problem sends the element through _check_fields, which reports the first one in document
    # order, as a check of each child in turn would.
    names = _LOCAL_NAMES
    fields: dict[str, AttributeValue] = {}
    try:
        for child in element:
            tag = child.tag
            name = names.get(tag)
            if name is None:
                name = _learn(tag)
            fields[name] = _value(child) if len(child) else (child.text or "")
    except Exception:
        _check_fields(element)
        raise
    if len(fields) != len(element):
        _check_fields(element)
    return fields


def _check_fields(element: etree._Element) -> None:
    """Raise the first problem of *element*'s fields in document order: the slow path of _fields."""
    seen = set()
    for child in element:
        name = _local(child)
        if name in seen:
            raise _Invalid(f"field {name!r} appears twice in <{_local(element)}>")
        seen.add(name)
        _value(child)


def _pop_text(fields: dict[str, AttributeValue], name: str) -> str | None:
    value = fields.pop(name, None)
    if value is None or isinstance(value, str):
        return value
    raise _Invalid(f"field {name!r} must be text, not a structure")


def _decode_envelope(root: etree._Element, stomp_headers: Mapping[str, str], repaired: bool = False) -> Event:
    if root.tag != _ENVELOPE:
        raise _Invalid(f"root element is {root.tag!r}, expected a SOAP 1.1 Envelope ({SOAP_NAMESPACE})")
    soap_header = soap_body = None
    for child in root:
        if child.tag == _SOAP_BODY and soap_body is None:
            soap_body = child
        elif child.tag == _SOAP_HEADER and soap_header is None:
            soap_header = child
    if soap_body is None:
        raise _Invalid("the SOAP envelope has no Body")

    # The frame wins over the SOAP copy, which only fills in what the frame does not carry.
    is_property = _IS_PROPERTY.get
    properties = {}
    for name, value in stomp_headers.items():
        known = is_property(name)
        if known is None:
            known = _learn_property(name)
        if known:
            properties[name] = value
    if soap_header is not None:
        # A frame value with U+FFFD lost characters on the way (see the module's docstring). Only worth a look
        # in a body that had CESU-8 pairs: the SOAP copy of such a value has them too.
        damaged = repaired and _REPLACEMENT in "".join(properties.values())
        names = _LOCAL_NAMES
        for api_header in soap_header:
            if api_header.tag == _API_HEADER:
                for prop in api_header:
                    tag: str = prop.tag  # type: ignore[assignment]  # no comments, PIs or entities here
                    local = names.get(tag)
                    if local is None:
                        if tag[:_API_LEN] != _API:
                            continue  # not a property: ignored
                        local = _learn(tag)
                    if local not in properties or (damaged and _REPLACEMENT in properties[local]):
                        properties[local] = prop.text or ""
                break
    header = _make_header(properties, stomp_headers)

    jms = None
    for child in soap_body:
        if child.tag == _API_JMS:
            jms = child
            break
    if jms is None:
        raise _Invalid(f"the SOAP Body has no <jms xmlns={NFMP_NAMESPACE!r}> element")
    if len(jms) != 1:
        raise _Invalid(f"<jms> must hold exactly one event element, it holds {len(jms)}")
    return _decode_event(jms[0], header, in_vessel=False)


def _learn_property(name: str) -> bool:
    """Whether the frame header *name* is a header property (cached; see _IS_PROPERTY)."""
    known = name.startswith(_PROPERTY_PREFIXES) or name == _EVENT_NAME
    if len(_IS_PROPERTY) >= _MAX_CACHED_NAMES:
        _IS_PROPERTY.clear()
    _IS_PROPERTY[name] = known
    return known


def _make_header(properties: dict[str, str], stomp_headers: Mapping[str, str]) -> EventHeader:
    os_time = None
    raw_time = properties.get(_OS_TIME)
    if raw_time is not None:
        os_time = _parse_epoch_ms(raw_time)
        if os_time is not None or not raw_time:
            del properties[_OS_TIME]  # an unreadable time stays in ``extra``, exactly as sent
    return EventHeader(
        event_name=properties.pop(_EVENT_NAME, ""),
        object_type=properties.pop(_OBJECT_TYPE, ""),
        nt_type=properties.pop(_NT_TYPE, ""),
        category=properties.pop(_CATEGORY, ""),
        client_id=properties.pop(_CLIENT_ID, ""),
        os_time=os_time,
        extra=properties,
        stomp_headers=dict(stomp_headers),
    )


def _parse_epoch_ms(value: str) -> datetime | None:
    digits = value[1:] if value[:1] == "-" else value
    # More than 16 digits is beyond any datetime (year 9999 is 2.5e14 ms), and far more would make int()
    # itself raise (Python's limit on the digits of a string it converts): not a time, kept as sent.
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 16:
        return None
    try:
        return _EPOCH + int(value) * _ONE_MS
    except (OverflowError, ValueError):
        return None


_Decoder = Callable[[etree._Element, EventHeader, bool], Event]


def _decode_event(element: etree._Element, header: EventHeader, *, in_vessel: bool) -> Event:
    name = _local(element)
    decoder = _DECODERS.get(name)
    if decoder is None:
        return _unknown(element, header, in_vessel)
    return decoder(element, header, in_vessel)


def _unknown(element: etree._Element, header: EventHeader, _in_vessel: bool) -> Event:
    # A copy on its own, without the declarations it inherits but does not use (the envelope's SOAP prefix).
    alone = copy.deepcopy(element)
    etree.cleanup_namespaces(alone)
    xml = etree.tostring(alone, encoding="unicode", with_tail=False)
    return UnknownEvent(header=header, element_name=_local(element), xml=xml)


def _keep_alive(_element: etree._Element, header: EventHeader, _in_vessel: bool) -> Event:
    return KeepAliveEvent(header=header)


def _state_change(element: etree._Element, header: EventHeader, in_vessel: bool) -> Event:
    fields = _fields(element)
    event_name = fields.get("eventName")
    if event_name == "JmsMissedEvents" or (event_name is None and fields.get("state") == "jmsMissedEvents"):
        fields.pop("eventName", None)
        return JmsMissedEvents(header=header, attributes=fields)
    if event_name == "SystemInfoEvent":
        del fields["eventName"]
        return SystemInfoEvent(
            header=header,
            sys_start_time=_pop_text(fields, "sysStartTime"),
            jms_start_time=_pop_text(fields, "jmsStartTime"),
            sys_primary_ip=_pop_text(fields, "sysPrimaryIp"),
            attributes=fields,
        )
    return _unknown(element, header, in_vessel)


def _terminate(element: etree._Element, header: EventHeader, _in_vessel: bool) -> Event:
    fields = _fields(element)
    client_id = _pop_text(fields, "clientId")
    return TerminateClientSession(
        header=header, client_id=header.client_id if client_id is None else client_id, attributes=fields
    )


def _creation(element: etree._Element, header: EventHeader, _in_vessel: bool) -> Event:
    if len(element) != 1:
        raise _Invalid(f"<objectCreationEvent> must hold exactly one object element, it holds {len(element)}")
    obj = element[0]
    return ObjectCreation(header=header, object_class=_local(obj), attributes=_fields(obj))


def _deletion(element: etree._Element, header: EventHeader, _in_vessel: bool) -> Event:
    fields = _fields(element)
    full_name = _pop_text(fields, "objectFullName") or ""
    return ObjectDeletion(header=header, object_full_name=full_name, attributes=fields)


def _attribute_change(element: etree._Element) -> AttributeChange:
    name = None
    values: dict[str, AttributeValue] = {}
    for child in element:
        local = _local(child)
        if local in ("newValue", "oldValue"):
            if local not in values:
                # The value is wrapped in one element (named after the attribute or its type).
                values[local] = _value(child[0]) if len(child) == 1 else _value(child)
        elif name is None:
            if len(child):
                raise _Invalid("the name of a changed attribute must be text")
            name = child.text or ""
    if name is None:
        raise _Invalid("an <attribute> of an attributeValueChangeEvent has no name")
    return AttributeChange(name=name, new_value=values.get("newValue"), old_value=values.get("oldValue"))


def _value_change(element: etree._Element, header: EventHeader, _in_vessel: bool) -> Event:
    full_name = ""
    changes = []
    fields: dict[str, AttributeValue] = {}
    seen_full_name = False
    for child in element:
        local = _local(child)
        if local == "attribute":
            changes.append(_attribute_change(child))
        elif local == "objectFullName" and not seen_full_name:
            if len(child):
                raise _Invalid("field 'objectFullName' must be text, not a structure")
            full_name, seen_full_name = child.text or "", True
        elif local in fields or local == "objectFullName":
            raise _Invalid(f"field {local!r} appears twice in <attributeValueChangeEvent>")
        else:
            fields[local] = _value(child)
    return AttributeValueChange(
        header=header, object_full_name=full_name, changes=tuple(changes), attributes=fields
    )


def _alarm_status(element: etree._Element, header: EventHeader, _in_vessel: bool) -> Event:
    fields = _fields(element)
    full_name = _pop_text(fields, "objectFullName") or ""
    return AlarmStatusChange(header=header, object_full_name=full_name, attributes=fields)


def _file_available(element: etree._Element, header: EventHeader, _in_vessel: bool) -> Event:
    fields = _fields(element)
    file_name = _pop_text(fields, "fileName") or ""
    return FileAvailableEvent(header=header, file_name=file_name, attributes=fields)


def _vessel(element: etree._Element, header: EventHeader, in_vessel: bool) -> Event:
    if in_vessel:
        raise _Invalid("an eventVessel cannot contain another eventVessel")
    events = tuple(_decode_event(child, _member_header(child, header), in_vessel=True) for child in element)
    return EventVessel(header=header, events=events)


# Contained events of a vessel have no header; their event_name comes from the element.
_MEMBER_EVENT_NAMES: Final = {
    "keepAliveEvent": "KeepAliveEvent",
    "objectCreationEvent": "ObjectCreation",
    "objectDeletionEvent": "ObjectDeletion",
    "attributeValueChangeEvent": "AttributeValueChange",
    "alarmStatusChangeEvent": "AlarmStatusChange",
    "fileAvailableEvent": "FileAvailableEvent",
    "terminateClientSessionEvent": "TerminateClientSession",
}


def _member_header(element: etree._Element, vessel_header: EventHeader) -> EventHeader:
    local = _local(element)
    event_name = _MEMBER_EVENT_NAMES.get(local, local)
    if local == "stateChangeEvent":
        for child in element:
            if child.tag == _API_EVENT_NAME:
                event_name = child.text or ""
                break
    return EventHeader(
        event_name=event_name, os_time=vessel_header.os_time, client_id=vessel_header.client_id
    )


_DECODERS: Final[dict[str, _Decoder]] = {
    "keepAliveEvent": _keep_alive,
    "stateChangeEvent": _state_change,
    "terminateClientSessionEvent": _terminate,
    "objectCreationEvent": _creation,
    "objectDeletionEvent": _deletion,
    "attributeValueChangeEvent": _value_change,
    "alarmStatusChangeEvent": _alarm_status,
    "fileAvailableEvent": _file_available,
    "eventVessel": _vessel,
}


# --------------------------------------------------------------------------------------------- encoding


def _header_properties(header: EventHeader) -> dict[str, str]:
    properties = {
        _EVENT_NAME: header.event_name,
        _OBJECT_TYPE: header.object_type,
        _NT_TYPE: header.nt_type,
        _CATEGORY: header.category,
        _CLIENT_ID: header.client_id,
    }
    if header.os_time is not None:
        properties[_OS_TIME] = str((header.os_time - _EPOCH) // _ONE_MS)
    for name, value in header.extra.items():
        if name in properties:
            raise ValueError(f"header property {name!r} is given twice (as a typed field and in extra)")
        properties[name] = value
    return properties


def _sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, _API + name)
    if text:
        element.text = text
    return element


def _write_value(element: etree._Element, value: AttributeValue) -> None:
    if isinstance(value, str):
        if value:
            element.text = value
        return
    if not value:
        raise ValueError("a structured attribute value must have at least one member; use '' for empty")
    for name, member in value:
        _write_value(_sub(element, name), member)


def _write_fields(
    parent: etree._Element, fields: Mapping[str, AttributeValue], reserved: Iterable[str] = ()
) -> None:
    for name in reserved:
        if name in fields:
            raise ValueError(f"body field {name!r} collides with a typed field of the event")
    for name, value in fields.items():
        _write_value(_sub(parent, name), value)


def _encode_event(jms: etree._Element, event: Event, *, in_vessel: bool) -> None:
    match event:
        case KeepAliveEvent():
            _sub(jms, "keepAliveEvent")
        case JmsMissedEvents(attributes=attributes):
            element = _sub(jms, "stateChangeEvent")
            _sub(element, "eventName", "JmsMissedEvents")
            _write_fields(element, attributes, ("eventName",))
        case SystemInfoEvent():
            element = _sub(jms, "stateChangeEvent")
            _sub(element, "eventName", "SystemInfoEvent")
            for name, value in (
                ("sysPrimaryIp", event.sys_primary_ip),
                ("jmsStartTime", event.jms_start_time),
                ("sysStartTime", event.sys_start_time),
            ):
                if value is not None:
                    _sub(element, name, value)
            _write_fields(
                element, event.attributes, ("eventName", "sysPrimaryIp", "jmsStartTime", "sysStartTime")
            )
        case TerminateClientSession(client_id=client_id, attributes=attributes):
            element = _sub(jms, "terminateClientSessionEvent")
            _sub(element, "clientId", client_id)
            _write_fields(element, attributes, ("clientId",))
        case ObjectCreation(object_class=object_class, attributes=attributes):
            _write_fields(_sub(_sub(jms, "objectCreationEvent"), object_class), attributes)
        case ObjectDeletion(object_full_name=full_name, attributes=attributes):
            element = _sub(jms, "objectDeletionEvent")
            _sub(element, "objectFullName", full_name)
            _write_fields(element, attributes, ("objectFullName",))
        case AttributeValueChange(object_full_name=full_name, changes=changes, attributes=attributes):
            element = _sub(jms, "attributeValueChangeEvent")
            _sub(element, "objectFullName", full_name)
            for change in changes:
                attribute = _sub(element, "attribute")
                _sub(attribute, "name", change.name)
                for wrapper, wrapped in (("newValue", change.new_value), ("oldValue", change.old_value)):
                    if wrapped is not None:
                        _write_value(_sub(_sub(attribute, wrapper), change.name), wrapped)
            _write_fields(element, attributes, ("objectFullName", "attribute"))
        case AlarmStatusChange(object_full_name=full_name, attributes=attributes):
            element = _sub(jms, "alarmStatusChangeEvent")
            _sub(element, "objectFullName", full_name)
            _write_fields(element, attributes, ("objectFullName",))
        case FileAvailableEvent(file_name=file_name, attributes=attributes):
            element = _sub(jms, "fileAvailableEvent")
            _sub(element, "fileName", file_name)
            _write_fields(element, attributes, ("fileName",))
        case EventVessel(events=events):
            if in_vessel:
                raise ValueError("an EventVessel cannot contain another EventVessel")
            element = _sub(jms, "eventVessel")
            for member in events:
                _encode_event(element, member, in_vessel=True)
        case UnknownEvent(element_name=element_name, xml=xml):
            jms.append(_parse_unknown(element_name, xml))


def _parse_unknown(element_name: str, xml: str) -> etree._Element:
    try:
        element = etree.fromstring(xml.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError as exc:
        raise ValueError(f"UnknownEvent.xml is not well-formed XML: {exc}") from exc
    if element.tag != _API + element_name:
        raise ValueError(
            f"UnknownEvent.xml must be one <{element_name} xmlns={NFMP_NAMESPACE!r}> element, "
            f"got {element.tag!r}"
        )
    return element
