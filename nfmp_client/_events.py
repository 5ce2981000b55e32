"""NFM-P JMS events as frozen, typed values.

This module knows nothing of XML, lxml, STOMP or JMS property names: it is the model the rest of the library
and the application work with. Turning wire messages into these values (and back) is ``_codec``'s job.

Every event carries an :class:`EventHeader` (the filterable header every NFM-P message has) and the fields of
its own kind. The set of kinds is closed (:data:`Event`): an element a future server release adds arrives as
an :class:`UnknownEvent` that keeps its XML, so nothing is ever silently dropped.

Where the NFM-P documentation is silent about a body layout, the choice made here is stated in the class
docstring; ``docs/events.rst`` lists the sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Tuple, TypeGuard, Union

import attrs
from attrs import field, frozen

__all__ = [
    "AlarmStatusChange",
    "AttributeChange",
    "AttributeValue",
    "AttributeValueChange",
    "DataEvent",
    "Event",
    "EventHeader",
    "EventVessel",
    "FileAvailableEvent",
    "JmsMissedEvents",
    "KeepAliveEvent",
    "ObjectCreation",
    "ObjectDeletion",
    "SystemEvent",
    "SystemInfoEvent",
    "TerminateClientSession",
    "UnknownEvent",
    "epoch_ms_to_datetime",
    "is_system_event",
]

AttributeValue = Union[str, Tuple[Tuple[str, "AttributeValue"], ...]]
"""The value of one attribute of an NFM-P object.

A leaf element (``<severity>major</severity>``) is its text (``"major"``; an empty element is ``""``). An
element with child elements (a structure or a list) is a tuple of ``(child name, child value)`` pairs in
document order, so repeated names and nesting survive.
"""

_ZERO = timedelta(0)


def _utc_or_none(
    _instance: object, attribute: attrs.Attribute[datetime | None], value: datetime | None
) -> None:
    if value is not None and value.utcoffset() != _ZERO:
        raise ValueError(f"{attribute.name} must be an aware UTC datetime or None, got {value!r}")


def epoch_ms_to_datetime(value: str | None) -> datetime | None:
    """Read an NFM-P epoch-milliseconds string as an aware UTC datetime.

    Args:
        value: A decimal string such as ``"1222891102168"`` (NFM-P's format for ``MTOSI_osTime``,
            ``jmsStartTime`` and, by every sample seen, ``sysStartTime``), or ``None``.

    Returns:
        The instant as a ``datetime`` in UTC, or ``None`` when *value* is ``None``, empty, not a plain
        decimal number, or outside the range a ``datetime`` can hold.
    """
    if not value or not value.isascii() or not value.lstrip("-").isdigit():
        return None
    try:
        return datetime.fromtimestamp(int(value) / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


@frozen(kw_only=True)
class EventHeader:
    """The header every NFM-P event message carries.

    NFM-P sends these as JMS message properties (which arrive as STOMP headers) and repeats them in the SOAP
    ``<header>`` element of the body. A property that is absent is the empty string.

    The mappings ``extra`` and ``stomp_headers`` take part in equality but not in hashing.
    """

    event_name: str = ""
    """``eventName``: what happened, e.g. ``ObjectCreation``, ``JmsMissedEvents``, ``KeepAliveEvent``."""
    object_type: str = ""
    """``MTOSI_objectType``: the class of the object concerned (``fm.AlarmObject``) or of a system event
    (``KeepAliveEvent``, ``StateChangeEvent``, ``TerminateClientSession``)."""
    nt_type: str = ""
    """``MTOSI_NTType``: the notification type, e.g. ``NT_ALARM``, ``NT_OBJECTCREATION``, ``NT_HEARTBEAT``."""
    category: str = ""
    """``ALA_category``: ``FAULT``, ``EQUIPMENT``, ``GENERAL``, ``STATISTICS``, ..."""
    client_id: str = ""
    """``ALA_clientId``: the OSS client (``name@ID``) the event is addressed to; empty for broadcast."""
    os_time: datetime | None = field(default=None, validator=_utc_or_none)
    """``MTOSI_osTime``: when the server created the event, as an aware UTC datetime with millisecond
    precision; ``None`` when the message does not say."""
    extra: Mapping[str, str] = field(factory=dict, hash=False)
    """Every other header property by its wire name (``ALA_alarmType``, ``ALA_isVessel``,
    ``MTOSI_objectName``, ...)."""
    stomp_headers: Mapping[str, str] = field(factory=dict, hash=False)
    """The STOMP frame headers exactly as received (``message-id``, ``destination``, ... and the properties).
    Empty for an event that was built, not received."""
    resync_epoch: int = field(default=0, eq=False)
    """The resync epoch the event was delivered under (set by :class:`~nfmp_client.NfmpClient`; 0 before any
    resync, or for an event that was not delivered by a client). An application drops events of an epoch
    older than the resync it last completed. Not part of the event's equality."""


@frozen(kw_only=True)
class KeepAliveEvent:
    """The periodic proof of life NFM-P publishes on every topic (about every 30 seconds).

    Nokia: "KeepAliveEvents may be received ahead of other event types"; if nothing at all arrives for a
    reasonable time, the server or the path to it is in trouble. The sources: :doc:`background <background>`
    (*Keep-alives*).
    """

    header: EventHeader = field(factory=EventHeader)
    """The common header."""


@frozen(kw_only=True)
class JmsMissedEvents:
    """The server lost events for this client: the application's copy is out of sync and must be resynced.

    Sent (as a ``stateChangeEvent``) when the server's queue for the client overflowed, or on reconnect when
    the client's durable subscription had been removed while it was away (:doc:`background <background>`,
    *JmsMissedEvents*).
    """

    header: EventHeader = field(factory=EventHeader)
    """The common header; ``header.client_id`` is the client that missed events."""
    attributes: Mapping[str, AttributeValue] = field(factory=lambda: {"state": "jmsMissedEvents"}, hash=False)
    """The body fields other than ``eventName`` (NFM-P sends ``state`` = ``jmsMissedEvents``)."""


@frozen(kw_only=True)
class SystemInfoEvent:
    """The server's identity, compared with the last known one to decide whether a resync is needed.

    Nokia: resync when ``sysStartTime`` or ``jmsStartTime`` differ from the recorded values, or the primary
    server address changed. The values are kept exactly as sent (opaque strings; only equality matters);
    :attr:`sys_start_datetime` and :attr:`jms_start_datetime` read them as times when they are epoch
    milliseconds. The sources: :doc:`background <background>` (*The server's identity*).
    """

    header: EventHeader = field(factory=EventHeader)
    """The common header."""
    sys_start_time: str | None = None
    """``sysStartTime``: when the NFM-P server last started; ``None`` when the message does not carry it."""
    jms_start_time: str | None = None
    """``jmsStartTime``: when the server's JMS service last started; ``None`` when absent."""
    sys_primary_ip: str | None = None
    """``sysPrimaryIp``: the address of the active (primary) main server; ``None`` when absent."""
    attributes: Mapping[str, AttributeValue] = field(factory=dict, hash=False)
    """Any further body fields, by element name."""

    @property
    def sys_start_datetime(self) -> datetime | None:
        """``sys_start_time`` as an aware UTC datetime, or ``None`` if it is not epoch milliseconds."""
        return epoch_ms_to_datetime(self.sys_start_time)

    @property
    def jms_start_datetime(self) -> datetime | None:
        """``jms_start_time`` as an aware UTC datetime, or ``None`` if it is not epoch milliseconds."""
        return epoch_ms_to_datetime(self.jms_start_time)


@frozen(kw_only=True)
class TerminateClientSession:
    """The server is about to close this client's JMS session (an administrator or an XML API call did it).

    For a durable subscription the server keeps queuing; for a non-durable one the subscription is gone
    (:doc:`background <background>`, *TerminateClientSession*).
    """

    header: EventHeader = field(factory=EventHeader)
    """The common header."""
    client_id: str = ""
    """The client whose session ends (``clientId`` in the body, else ``ALA_clientId`` of the header)."""
    attributes: Mapping[str, AttributeValue] = field(factory=dict, hash=False)
    """Any further body fields, by element name."""


@frozen(kw_only=True)
class ObjectCreation:
    """An object was created: an alarm raised (class ``fm.AlarmInfo``) or an inventory object added.

    The body holds one element named after the object's class whose children are the object's attributes.
    """

    header: EventHeader = field(factory=EventHeader)
    """The common header (``header.object_type`` is e.g. ``fm.AlarmObject`` for an alarm)."""
    object_class: str = ""
    """The class of the created object as named in the body, e.g. ``fm.AlarmInfo``,
    ``equipment.PhysicalPort``."""
    attributes: Mapping[str, AttributeValue] = field(factory=dict, hash=False)
    """The object's attributes in document order (for an alarm: ``severity``, ``alarmName``,
    ``objectFullName``, ``affectedObjectFullName``, ``firstTimeDetected``, ...)."""

    @property
    def object_full_name(self) -> str:
        """The object's full name, its ``objectFullName`` attribute, else ``MTOSI_objectName``."""
        value = self.attributes.get("objectFullName")
        if isinstance(value, str) and value:
            return value
        return self.header.extra.get("MTOSI_objectName", "")

    @property
    def is_alarm(self) -> bool:
        """Whether this creation raises an alarm (``NT_ALARM`` or an ``fm.Alarm*`` class)."""
        return self.header.nt_type == "NT_ALARM" or self.object_class.startswith("fm.Alarm")


@frozen(kw_only=True)
class ObjectDeletion:
    """An object was deleted; a cleared alarm reaches an OSS as the deletion of its alarm object."""

    header: EventHeader = field(factory=EventHeader)
    """The common header."""
    object_full_name: str = ""
    """The full name of the deleted object."""
    attributes: Mapping[str, AttributeValue] = field(factory=dict, hash=False)
    """Any further body fields, by element name."""

    @property
    def object_class(self) -> str:
        """The deleted object's class (``MTOSI_objectType``); empty inside an :class:`EventVessel`."""
        return self.header.object_type


@frozen(kw_only=True)
class AttributeChange:
    """One changed attribute of an :class:`AttributeValueChange`."""

    name: str
    """The attribute's name, e.g. ``operationalState`` or ``severity``."""
    new_value: AttributeValue | None = None
    """The value after the change; ``None`` when the message does not give it."""
    old_value: AttributeValue | None = None
    """The value before the change; ``None`` when the message does not give it."""


@frozen(kw_only=True)
class AttributeValueChange:
    """Attributes of an existing object changed (alarm severity, acknowledgement, port state, ...)."""

    header: EventHeader = field(factory=EventHeader)
    """The common header."""
    object_full_name: str = ""
    """The full name of the changed object."""
    changes: tuple[AttributeChange, ...] = ()
    """The changed attributes, in the order the server listed them."""
    attributes: Mapping[str, AttributeValue] = field(factory=dict, hash=False)
    """Any further body fields, by element name."""

    @property
    def object_class(self) -> str:
        """The changed object's class (``MTOSI_objectType``); empty inside an :class:`EventVessel`."""
        return self.header.object_type

    @property
    def new_values(self) -> dict[str, AttributeValue | None]:
        """The new value of every changed attribute, by name."""
        return {change.name: change.new_value for change in self.changes}


@frozen(kw_only=True)
class AlarmStatusChange:
    """The status of an alarm changed (NFM-P's ``alarmStatusChangeEvent``)."""

    header: EventHeader = field(factory=EventHeader)
    """The common header."""
    object_full_name: str = ""
    """The full name of the alarm object."""
    attributes: Mapping[str, AttributeValue] = field(factory=dict, hash=False)
    """The other body fields (``olcState``, ``spanObjectPointer``, ...), by element name."""


@frozen(kw_only=True)
class FileAvailableEvent:
    """A file the application asked for (``findToFile``) is ready on the server."""

    header: EventHeader = field(factory=EventHeader)
    """The common header."""
    file_name: str = ""
    """The name of the file on the server."""
    attributes: Mapping[str, AttributeValue] = field(factory=dict, hash=False)
    """Any further body fields (``status``, ``serverIpAddress``, ...), by element name."""


@frozen(kw_only=True)
class UnknownEvent:
    """An event this version of nfmp_client does not model. Nothing is lost: the XML is kept.

    Covers every NFM-P event element without a class here (``xmlFilterChangeEvent``, ``statsEvent``,
    ``logFileAvailableEvent``, ...) and ``stateChangeEvent`` flavours other than JmsMissedEvents and
    SystemInfoEvent.
    """

    header: EventHeader = field(factory=EventHeader)
    """The common header."""
    element_name: str = ""
    """The local name of the event element, e.g. ``xmlFilterChangeEvent``."""
    xml: str = ""
    """The event element serialised as XML, namespace declarations included."""


@frozen(kw_only=True)
class EventVessel:
    """A batch of events delivered in one message (topic ``5620-SAM-topic-xml-filtered``).

    The contained events have no header of their own on the wire: each one's header carries its
    ``event_name`` and the vessel's ``os_time`` and ``client_id``, and is otherwise empty (so
    ``object_class`` of a contained deletion or attribute change is unknown, ``""``).
    """

    header: EventHeader = field(factory=EventHeader)
    """The vessel's own header (``ALA_isVessel`` = ``true``, ``ALA_vesselSize`` in ``header.extra``)."""
    events: tuple[Event, ...] = ()
    """The contained events, in order. A vessel never contains a vessel."""


SystemEvent = Union[KeepAliveEvent, JmsMissedEvents, SystemInfoEvent, TerminateClientSession]
"""The events that tell the client about the connection and the server, not about the network."""

DataEvent = Union[
    ObjectCreation,
    ObjectDeletion,
    AttributeValueChange,
    AlarmStatusChange,
    FileAvailableEvent,
    EventVessel,
    UnknownEvent,
]
"""The events that carry network data (alarms, inventory, files) for the application."""

Event = Union[SystemEvent, DataEvent]
"""Every event the codec can produce: a closed set, so mypy checks ``match`` statements for exhaustiveness."""

_SYSTEM_EVENT_TYPES = (KeepAliveEvent, JmsMissedEvents, SystemInfoEvent, TerminateClientSession)


def is_system_event(event: Event) -> TypeGuard[SystemEvent]:
    """Tell whether *event* is a system event (keep-alive, missed events, system info, session termination).

    Nokia's recommended client keeps these in their own queue and watches them even while a resync holds the
    data events back. A type checker narrows *event* to ``SystemEvent`` where this returns True.
    """
    return isinstance(event, _SYSTEM_EVENT_TYPES)
