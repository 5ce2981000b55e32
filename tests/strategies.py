"""Hypothesis strategies for every event class, with values that XML and STOMP can carry; and a plain alarm."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
from hypothesis import strategies as st
from lxml import etree

from nfmp_client import (
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
from nfmp_client.codec import NFMP_NAMESPACE

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
TYPED_PROPERTIES = {
    "eventName",
    "MTOSI_objectType",
    "MTOSI_NTType",
    "ALA_category",
    "ALA_clientId",
    "MTOSI_osTime",
}
KNOWN_ELEMENTS = {
    "keepAliveEvent",
    "stateChangeEvent",
    "terminateClientSessionEvent",
    "objectCreationEvent",
    "objectDeletionEvent",
    "attributeValueChangeEvent",
    "alarmStatusChangeEvent",
    "fileAvailableEvent",
    "eventVessel",
}

# Text XML 1.0 can carry: no surrogates, no C0 controls other than tab/LF/CR, no U+FFFE/U+FFFF.
xml_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")),
        st.sampled_from("\t\n\r <>&'\"]]>"),
    ),
    max_size=30,
)
xml_names = st.from_regex(r"[A-Za-wyz_][A-Za-z0-9_.\-]{0,14}", fullmatch=True)
property_names = st.from_regex(r"(ALA|MTOSI)_[A-Za-z][A-Za-z0-9_]{0,14}", fullmatch=True).filter(
    lambda name: name not in TYPED_PROPERTIES
)
os_times = st.integers(min_value=-62_135_596_800_000, max_value=253_402_300_799_999).map(
    lambda ms: EPOCH + timedelta(milliseconds=ms)
)

attribute_values: st.SearchStrategy[AttributeValue] = st.recursive(
    xml_text,
    lambda children: st.lists(st.tuples(xml_names, children), min_size=1, max_size=4).map(tuple),
    max_leaves=8,
)


def attribute_maps(*reserved: str) -> st.SearchStrategy[dict[str, AttributeValue]]:
    """Body fields by name, avoiding the names a typed field of the event writes."""
    return st.dictionaries(xml_names.filter(lambda name: name not in reserved), attribute_values, max_size=5)


headers = st.builds(
    EventHeader,
    event_name=xml_text,
    object_type=xml_text,
    nt_type=xml_text,
    category=xml_text,
    client_id=xml_text,
    os_time=st.none() | os_times,
    extra=st.dictionaries(property_names, xml_text, max_size=4),
)


@st.composite
def unknown_xml(draw: st.DrawFn) -> tuple[str, str]:
    """An event element nfmp_client does not model, serialised as lxml would."""
    name = draw(xml_names.filter(lambda n: n not in KNOWN_ELEMENTS))
    element = etree.Element(f"{{{NFMP_NAMESPACE}}}{name}", nsmap={None: NFMP_NAMESPACE})
    for child_name, text in draw(st.lists(st.tuples(xml_names, xml_text), max_size=4)):
        etree.SubElement(element, f"{{{NFMP_NAMESPACE}}}{child_name}").text = text or None
    return name, etree.tostring(element, encoding="unicode")


def _unknown(header: EventHeader, name_and_xml: tuple[str, str]) -> UnknownEvent:
    return UnknownEvent(header=header, element_name=name_and_xml[0], xml=name_and_xml[1])


MEMBER_EVENT_NAMES = {
    KeepAliveEvent: "KeepAliveEvent",
    JmsMissedEvents: "JmsMissedEvents",
    SystemInfoEvent: "SystemInfoEvent",
    TerminateClientSession: "TerminateClientSession",
    ObjectCreation: "ObjectCreation",
    ObjectDeletion: "ObjectDeletion",
    AttributeValueChange: "AttributeValueChange",
    AlarmStatusChange: "AlarmStatusChange",
    FileAvailableEvent: "FileAvailableEvent",
}


def events_with(header_strategy: st.SearchStrategy[EventHeader]) -> dict[type, st.SearchStrategy[Event]]:
    """One strategy per event class except EventVessel, all using *header_strategy*, by class."""
    strategies: list[st.SearchStrategy[Event]] = [
        st.builds(KeepAliveEvent, header=header_strategy),
        st.builds(JmsMissedEvents, header=header_strategy, attributes=attribute_maps("eventName")),
        st.builds(
            SystemInfoEvent,
            header=header_strategy,
            sys_start_time=st.none() | xml_text,
            jms_start_time=st.none() | xml_text,
            sys_primary_ip=st.none() | xml_text,
            attributes=attribute_maps("eventName", "sysStartTime", "jmsStartTime", "sysPrimaryIp"),
        ),
        st.builds(
            TerminateClientSession,
            header=header_strategy,
            client_id=xml_text,
            attributes=attribute_maps("clientId"),
        ),
        st.builds(
            ObjectCreation, header=header_strategy, object_class=xml_names, attributes=attribute_maps()
        ),
        st.builds(
            ObjectDeletion,
            header=header_strategy,
            object_full_name=xml_text,
            attributes=attribute_maps("objectFullName"),
        ),
        st.builds(
            AttributeValueChange,
            header=header_strategy,
            object_full_name=xml_text,
            changes=st.lists(
                st.builds(
                    AttributeChange,
                    name=xml_names,
                    new_value=st.none() | attribute_values,
                    old_value=st.none() | attribute_values,
                ),
                max_size=4,
            ).map(tuple),
            attributes=attribute_maps("objectFullName", "attribute"),
        ),
        st.builds(
            AlarmStatusChange,
            header=header_strategy,
            object_full_name=xml_text,
            attributes=attribute_maps("objectFullName"),
        ),
        st.builds(
            FileAvailableEvent,
            header=header_strategy,
            file_name=xml_text,
            attributes=attribute_maps("fileName"),
        ),
        st.builds(_unknown, header_strategy, unknown_xml()),
    ]
    classes = [*MEMBER_EVENT_NAMES, UnknownEvent]
    return dict(zip(classes, strategies, strict=True))


def as_vessel_member(event: Event, vessel_header: EventHeader) -> Event:
    """*event* as it comes out of a vessel: a header with only its name and the vessel's time and client."""
    name = event.element_name if isinstance(event, UnknownEvent) else MEMBER_EVENT_NAMES[type(event)]
    member_header = EventHeader(
        event_name=name, os_time=vessel_header.os_time, client_id=vessel_header.client_id
    )
    return attrs.evolve(event, header=member_header)


@st.composite
def vessels(draw: st.DrawFn) -> EventVessel:
    """An EventVessel whose members look exactly as the decoder rebuilds them."""
    vessel_header = draw(headers)
    members = draw(st.lists(st.one_of(*events_with(st.just(EventHeader())).values()), max_size=4))
    return EventVessel(
        header=vessel_header, events=tuple(as_vessel_member(m, vessel_header) for m in members)
    )


EVENT_STRATEGIES: dict[type, st.SearchStrategy[Event]] = {**events_with(headers), EventVessel: vessels()}
"""A strategy for every event class, vessels included."""
events: st.SearchStrategy[Event] = st.one_of(*EVENT_STRATEGIES.values())
"""Any event."""


def named_alarm(name: str) -> ObjectCreation:
    """A raised alarm called *name* (``alarmName``; full name ``alarm:<name>``), for tests that publish a few."""
    return ObjectCreation(
        header=EventHeader(
            event_name="ObjectCreation",
            object_type="fm.AlarmObject",
            nt_type="NT_ALARM",
            category="FAULT",
            os_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
        ),
        object_class="fm.AlarmInfo",
        attributes={"alarmName": name, "objectFullName": f"alarm:{name}"},
    )
