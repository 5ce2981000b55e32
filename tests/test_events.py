"""Tests for nfmp_client._events: the event values."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone

import attrs
import pytest
from hypothesis import given

from nfmp_client import (
    AttributeChange,
    AttributeValueChange,
    Event,
    EventHeader,
    EventVessel,
    JmsMissedEvents,
    KeepAliveEvent,
    ObjectCreation,
    ObjectDeletion,
    SystemInfoEvent,
    TerminateClientSession,
    UnknownEvent,
    is_system_event,
)
from nfmp_client.codec import epoch_ms_to_datetime

from .strategies import events

UTC = timezone.utc


class TestEventHeader:
    def test_defaults_are_empty(self) -> None:
        """A header built without arguments has empty properties and no time."""
        header = EventHeader()

        assert (header.event_name, header.client_id, header.os_time, header.extra) == ("", "", None, {})

    def test_naive_time_is_refused(self) -> None:
        """os_time must be aware: a naive datetime is a programming error."""
        with pytest.raises(ValueError, match="aware UTC"):
            EventHeader(os_time=datetime(2026, 1, 1))

    def test_non_utc_offset_is_refused(self) -> None:
        """os_time must be in UTC."""
        with pytest.raises(ValueError, match="aware UTC"):
            EventHeader(os_time=datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=2))))

    def test_any_zero_offset_zone_is_utc(self) -> None:
        """A zero-offset timezone other than timezone.utc is accepted."""
        assert (
            EventHeader(os_time=datetime(2026, 1, 1, tzinfo=timezone(timedelta(0), "Z"))).os_time is not None
        )

    def test_keyword_only(self) -> None:
        """Fields are keyword-only, so adding one never silently shifts positional arguments."""
        with pytest.raises(TypeError):
            EventHeader("ObjectCreation")  # type: ignore[call-arg]


class TestValues:
    @given(events)
    def test_frozen(self, event: Event) -> None:
        """Events cannot be changed after construction."""
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            event.header = EventHeader()  # type: ignore[misc]

    @given(events)
    def test_pickle_round_trip(self, event: Event) -> None:
        """Events survive pickling (to a queue, a process or a spill file) unchanged."""
        assert pickle.loads(pickle.dumps(event)) == event

    @given(events)
    def test_hashable_and_consistent_with_equality(self, event: Event) -> None:
        """Events can be put in sets; equal events hash equally."""
        assert hash(event) == hash(attrs.evolve(event))

    def test_mappings_take_part_in_equality(self) -> None:
        """Two events that differ only in a mapping field are not equal."""
        assert ObjectCreation(attributes={"a": "1"}) != ObjectCreation(attributes={"a": "2"})


class TestConveniences:
    def test_object_full_name_from_attribute_or_header(self) -> None:
        """ObjectCreation.object_full_name prefers the attribute and falls back to MTOSI_objectName."""
        header = EventHeader(extra={"MTOSI_objectName": "from-header"})

        assert (
            ObjectCreation(header=header, attributes={"objectFullName": "from-body"}).object_full_name
            == "from-body"
        )
        assert ObjectCreation(header=header).object_full_name == "from-header"
        assert ObjectCreation().object_full_name == ""

    def test_is_alarm(self) -> None:
        """Alarms are recognised by NT_ALARM or by an fm.Alarm* class."""
        assert ObjectCreation(header=EventHeader(nt_type="NT_ALARM"), object_class="x").is_alarm
        assert ObjectCreation(object_class="fm.AlarmInfo").is_alarm
        assert not ObjectCreation(object_class="equipment.PhysicalPort").is_alarm

    def test_object_class_of_deletion_and_change_is_the_object_type(self) -> None:
        """Deletions and attribute changes name their class through MTOSI_objectType."""
        header = EventHeader(object_type="equipment.Shelf")

        assert ObjectDeletion(header=header).object_class == "equipment.Shelf"
        assert AttributeValueChange(header=header).object_class == "equipment.Shelf"

    def test_new_values(self) -> None:
        """AttributeValueChange.new_values maps each changed attribute to its new value."""
        change = AttributeValueChange(
            changes=(AttributeChange(name="a", new_value="1"), AttributeChange(name="b", old_value="0"))
        )

        assert change.new_values == {"a": "1", "b": None}

    def test_system_info_times(self) -> None:
        """SystemInfoEvent reads epoch-millisecond start times as datetimes, anything else as None."""
        info = SystemInfoEvent(sys_start_time="1353585305268", jms_start_time="yesterday")

        assert info.sys_start_datetime == datetime(2012, 11, 22, 11, 55, 5, 268000, tzinfo=UTC)
        assert info.jms_start_datetime is None

    def test_jms_missed_events_default_state(self) -> None:
        """A JmsMissedEvents built by hand has the state NFM-P sends."""
        assert JmsMissedEvents().attributes == {"state": "jmsMissedEvents"}

    @pytest.mark.parametrize(
        ("event", "expected"),
        [
            (KeepAliveEvent(), True),
            (JmsMissedEvents(), True),
            (SystemInfoEvent(), True),
            (TerminateClientSession(), True),
            (ObjectCreation(), False),
            (ObjectDeletion(), False),
            (EventVessel(), False),
            (UnknownEvent(), False),
        ],
        ids=lambda v: type(v).__name__ if not isinstance(v, bool) else str(v),
    )
    def test_is_system_event(self, event: Event, expected: bool) -> None:
        """The four connection/server events are system events; the rest carry data."""
        assert is_system_event(event) is expected


class TestEpochMs:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("0", datetime(1970, 1, 1, tzinfo=UTC)),
            ("1222891102168", datetime(2008, 10, 1, 19, 58, 22, 168000, tzinfo=UTC)),
            ("-1000", datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
            (None, None),
            ("", None),
            ("12.5", None),
            (" 12", None),
            ("١٢٣", None),
            ("99999999999999999999", None),
        ],
    )
    def test_values(self, value: str | None, expected: datetime | None) -> None:
        """Only plain decimal epoch milliseconds within datetime's range give a time."""
        assert epoch_ms_to_datetime(value) == expected
