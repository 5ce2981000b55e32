"""NFM-P XML API messages for a resync (SOAP 1.1 over HTTP POST ``/xmlapi/invoke``): requests and responses.

A resync reads the server's current state: the alarm list (``fm.FaultManager.findFaults``) and the objects of
a class (``find``). Both directions are here, because the simulated server (which answers) and the client
(which asks) share them. Layout, from the NFM-P XML API developer guide ("Retrieving alarms") and Nokia's
``samifmod.py``::

    <SOAP:Envelope xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/">
      <SOAP:Header>
        <header xmlns="xmlapi_1.0">
          <security><user>oss</user><password>MD5-HEX</password></security>
          <requestID>oss1@1:7</requestID>
        </header>
      </SOAP:Header>
      <SOAP:Body>
        <find xmlns="xmlapi_1.0"><fullClassName>equipment.PhysicalPort</fullClassName></find>
      </SOAP:Body>
    </SOAP:Envelope>

and the response body ``<findResponse xmlns="xmlapi_1.0"><result><equipment.PhysicalPort>...</result>``,
one element per object named after its class, its children the attributes (our reading: the guide shows the
``result`` wrapper; the per-object layout follows the event bodies). Errors come back as ``SOAP:Fault``.

Parsing is as hardened as the event codec's (same parser, DTDs refused, a size limit). Passwords are never
part of a repr or an error message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Union

from attrs import field, frozen
from lxml import etree

from ._codec import (
    _API,
    _API_LEN,
    _ENVELOPE,
    _SOAP_BODY,
    _SOAP_HEADER,
    DEFAULT_MAX_MESSAGE_BYTES,
    NFMP_NAMESPACE,
    SOAP_NAMESPACE,
    _fields,
    _Invalid,
    _parse_hardened,
    _sub,
    _write_fields,
)
from ._events import AttributeValue
from ._exceptions import XmlApiError, XmlApiFault

__all__ = [
    "FindFaultsRequest",
    "FindRequest",
    "PingRequest",
    "ReceivedRequest",
    "XmlApiCredentials",
    "XmlApiObject",
    "XmlApiRequest",
    "decode_request",
    "decode_response",
    "encode_fault",
    "encode_request",
    "encode_response",
]

_FIND_FAULTS = "fm.FaultManager.findFaults"
_FAULT = f"{{{SOAP_NAMESPACE}}}Fault"


@frozen(kw_only=True)
class XmlApiObject:
    """One object of a ``find`` / ``findFaults`` result: its class and its attributes."""

    object_class: str
    """The object's class, e.g. ``fm.AlarmInfo`` or ``equipment.PhysicalPort``."""
    attributes: Mapping[str, AttributeValue] = field(factory=dict, hash=False)
    """The attributes, by name, in document order."""

    @property
    def full_name(self) -> str:
        """The object's ``objectFullName`` ("" when it has none)."""
        value = self.attributes.get("objectFullName", "")
        return value if isinstance(value, str) else ""


@frozen(kw_only=True)
class XmlApiCredentials:
    """The XML API user. The password is kept out of reprs; it is sent as its MD5 hex digest."""

    user: str
    """The user name."""
    password: str = field(repr=False)
    """The password in clear, or its MD5 hex digest when *hashed* is True."""
    hashed: bool = False
    """Whether *password* already is the MD5 hex digest."""

    @property
    def password_digest(self) -> str:
        """The MD5 hex digest of the password, as NFM-P expects it on the wire."""
        if self.hashed:
            return self.password.lower()
        return hashlib.md5(self.password.encode(), usedforsecurity=False).hexdigest()

    def matches(self, other: XmlApiCredentials) -> bool:
        """Whether *other* names the same user with the same password (clear or hashed)."""
        return self.user == other.user and self.password_digest == other.password_digest


@frozen(kw_only=True)
class FindFaultsRequest:
    """``fm.FaultManager.findFaults``: the current alarm list."""

    request_id: str = ""
    """Free-form ``requestID`` echoed in logs."""


@frozen(kw_only=True)
class FindRequest:
    """``find``: the objects of one class."""

    full_class_name: str
    """The class, e.g. ``equipment.PhysicalPort``."""
    result_attributes: tuple[str, ...] = ()
    """Only these attributes in the result (``resultFilter``); all when empty."""
    request_id: str = ""
    """Free-form ``requestID``."""


@frozen(kw_only=True)
class PingRequest:
    """``ping``: answered only by the active server."""

    request_id: str = ""
    """Free-form ``requestID``."""


XmlApiRequest = Union[FindFaultsRequest, FindRequest, PingRequest]
"""The requests this module reads and writes."""


@frozen(kw_only=True)
class ReceivedRequest:
    """A request as a server received it: what is asked, and by whom."""

    request: XmlApiRequest
    """The request."""
    credentials: XmlApiCredentials | None
    """The security header's user and password (hashed as sent), or None without one."""


def encode_request(request: XmlApiRequest, credentials: XmlApiCredentials | None = None) -> bytes:
    """Write *request* as the SOAP body to POST to ``/xmlapi/invoke``."""
    envelope = etree.Element(_ENVELOPE, nsmap={"SOAP": SOAP_NAMESPACE})
    header = etree.SubElement(
        etree.SubElement(envelope, _SOAP_HEADER), _API + "header", nsmap={None: NFMP_NAMESPACE}
    )
    if credentials is not None:
        security = _sub(header, "security")
        _sub(security, "user", credentials.user)
        _sub(security, "password", credentials.password_digest)
    if request.request_id:
        _sub(header, "requestID", request.request_id)
    body = etree.SubElement(envelope, _SOAP_BODY)
    match request:
        case FindFaultsRequest():
            etree.SubElement(body, _API + _FIND_FAULTS, nsmap={None: NFMP_NAMESPACE})
        case FindRequest():
            find = etree.SubElement(body, _API + "find", nsmap={None: NFMP_NAMESPACE})
            _sub(find, "fullClassName", request.full_class_name)
            if request.result_attributes:
                result_filter = _sub(find, "resultFilter")
                for name in request.result_attributes:
                    _sub(result_filter, "attribute", name)
        case PingRequest():
            etree.SubElement(body, _API + "ping", nsmap={None: NFMP_NAMESPACE})
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def decode_request(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> ReceivedRequest:
    """Read a request (server side).

    Raises:
        XmlApiError: Not a well-formed SOAP request of a kind this module knows.
    """
    soap_header, soap_body = _envelope(body, max_bytes)
    credentials = None
    request_id = ""
    header = _child(soap_header, "header") if soap_header is not None else None
    if header is not None:
        request_id = _text(_child(header, "requestID"))
        security = _child(header, "security")
        if security is not None:
            password = _child(security, "password")
            hashed = password is None or password.get("hashed", "true") != "false"
            credentials = XmlApiCredentials(
                user=_text(_child(security, "user")), password=_text(password), hashed=hashed
            )
    operation = _only_child(soap_body)
    name = _name(operation)
    request: XmlApiRequest
    if name == _FIND_FAULTS:
        request = FindFaultsRequest(request_id=request_id)
    elif name == "find":
        class_name = _text(_child(operation, "fullClassName"))
        if not class_name:
            raise XmlApiError("a find request needs a fullClassName")
        result_filter = _child(operation, "resultFilter")
        attributes = tuple(_text(a) for a in result_filter) if result_filter is not None else ()
        request = FindRequest(full_class_name=class_name, result_attributes=attributes, request_id=request_id)
    elif name == "ping":
        request = PingRequest(request_id=request_id)
    else:
        raise XmlApiError(f"unsupported XML API request <{name}>")
    return ReceivedRequest(request=request, credentials=credentials)


def encode_response(request: XmlApiRequest, objects: Sequence[XmlApiObject] = ()) -> bytes:
    """Write the response to *request* holding *objects* (server side)."""
    envelope = etree.Element(_ENVELOPE, nsmap={"SOAP": SOAP_NAMESPACE})
    body = etree.SubElement(envelope, _SOAP_BODY)
    match request:
        case FindFaultsRequest():
            name = _FIND_FAULTS + "Response"
        case FindRequest():
            name = "findResponse"
        case PingRequest():
            name = "pingResponse"
    response = etree.SubElement(body, _API + name, nsmap={None: NFMP_NAMESPACE})
    if not isinstance(request, PingRequest):
        result = _sub(response, "result")
        wanted = set(getattr(request, "result_attributes", ()))
        for obj in objects:
            attributes = {k: v for k, v in obj.attributes.items() if not wanted or k in wanted}
            _write_fields(_sub(result, obj.object_class), attributes)
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def encode_fault(code: str, message: str) -> bytes:
    """Write a ``SOAP:Fault`` with *code* (e.g. ``SOAP:Client``) and *message* (server side)."""
    envelope = etree.Element(_ENVELOPE, nsmap={"SOAP": SOAP_NAMESPACE})
    fault = etree.SubElement(etree.SubElement(envelope, _SOAP_BODY), _FAULT)
    etree.SubElement(fault, "faultcode").text = code
    etree.SubElement(fault, "faultstring").text = message
    return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")


def decode_response(body: bytes, *, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[XmlApiObject]:
    """Read a response (client side): the objects of its result, empty for a ``pingResponse``.

    Raises:
        XmlApiFault: The server answered with a SOAP fault.
        XmlApiError: The response cannot be read.
    """
    _, soap_body = _envelope(body, max_bytes)
    response = _only_child(soap_body)
    if response.tag == _FAULT:
        code = response.findtext("faultcode") or ""
        raise XmlApiFault(code=code, message=response.findtext("faultstring") or "")
    name = _name(response)
    if not name.endswith("Response"):
        raise XmlApiError(f"<{name}> is not an XML API response")
    result = _child(response, "result")
    if result is None:
        return []
    try:
        return [XmlApiObject(object_class=_name(obj), attributes=_fields(obj)) for obj in result]
    except _Invalid as exc:
        raise XmlApiError(f"unreadable result: {exc}") from None


def _envelope(body: bytes, max_bytes: int) -> tuple[etree._Element | None, etree._Element]:
    try:
        root = _parse_hardened(body, max_bytes, "body")
    except _Invalid as exc:
        raise XmlApiError(str(exc)) from None
    if root.tag != _ENVELOPE:
        raise XmlApiError(f"root element is {root.tag!r}, expected a SOAP 1.1 Envelope")
    soap_header = root.find(_SOAP_HEADER)
    soap_body = root.find(_SOAP_BODY)
    if soap_body is None:
        raise XmlApiError("the SOAP envelope has no Body")
    return soap_header, soap_body


def _only_child(element: etree._Element) -> etree._Element:
    children = [child for child in element if isinstance(child.tag, str)]
    if len(children) != 1:
        raise XmlApiError(f"the SOAP Body must hold exactly one element, it holds {len(children)}")
    return children[0]


def _name(element: etree._Element) -> str:
    tag = element.tag
    if not isinstance(tag, str) or tag[:_API_LEN] != _API:
        raise XmlApiError(f"element {tag!r} is outside the NFM-P namespace {NFMP_NAMESPACE!r}")
    return tag[_API_LEN:]


def _child(element: etree._Element | None, name: str) -> etree._Element | None:
    return None if element is None else element.find(_API + name)


def _text(element: etree._Element | None) -> str:
    return "" if element is None else (element.text or "").strip()
