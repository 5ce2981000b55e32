"""The simulated network: the model applies events, the generator is reproducible and plausible."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
import pytest

from nfmp_client import (
    AttributeChange,
    AttributeValueChange,
    EventHeader,
    EventVessel,
    KeepAliveEvent,
    ObjectCreation,
    ObjectDeletion,
    XmlApiObject,
)
from nfmp_client.codec import decode_message, encode_event
from nfmp_client.testing import ALARM_CLASS, PORT_CLASS, EventGenerator, NetworkModel, ServerIdentity

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=timezone.utc)


def fixed_clock() -> datetime:
    return T0


def alarm(name: str, severity: str = "major") -> ObjectCreation:
    return ObjectCreation(
        header=EventHeader(event_name="ObjectCreation", object_type="fm.AlarmObject"),
        object_class=ALARM_CLASS,
        attributes={"objectFullName": name, "severity": severity},
    )


class TestServerIdentity:
    def test_started_at(self) -> None:
        """The start times are epoch milliseconds; the JMS service starts after the server."""
        identity = ServerIdentity.started_at(T0)

        assert identity.sys_start_time == str(int(T0.timestamp() * 1000))
        assert int(identity.jms_start_time) > int(identity.sys_start_time)

    def test_restart_always_moves_forward(self) -> None:
        """A restart gives later start times even with a clock that stands still or goes back."""
        identity = ServerIdentity.started_at(T0)

        again = identity.restarted(T0 - timedelta(hours=1))

        assert int(again.sys_start_time) > int(identity.sys_start_time)
        assert int(again.jms_start_time) > int(identity.jms_start_time)
        assert again.primary_ip == identity.primary_ip

    def test_jms_restart_moves_only_the_jms_start_time(self) -> None:
        """A JMS restart gives a later jmsStartTime; sysStartTime and the primary address stay."""
        identity = ServerIdentity.started_at(T0, primary_ip="192.0.2.20")

        again = identity.jms_restarted(T0 + timedelta(minutes=5))

        assert again.jms_start_time == str(int((T0 + timedelta(minutes=5)).timestamp() * 1000))
        assert again.sys_start_time == identity.sys_start_time
        assert again.primary_ip == identity.primary_ip == "192.0.2.20"

    def test_jms_restart_always_moves_forward(self) -> None:
        """With a clock that stands still or goes back, each JMS restart still gives a later jmsStartTime."""
        identity = ServerIdentity.started_at(T0)

        first = identity.jms_restarted(T0)  # the JMS service started 1.5 s after T0: the clock is behind
        second = first.jms_restarted(T0)
        third = second.jms_restarted(T0 - timedelta(hours=1))

        assert int(identity.jms_start_time) < int(first.jms_start_time) < int(second.jms_start_time)
        assert int(second.jms_start_time) < int(third.jms_start_time)
        assert (
            first.sys_start_time == second.sys_start_time == third.sys_start_time == identity.sys_start_time
        )

    def test_switchover_needs_another_address(self) -> None:
        """A switchover changes only the primary address, and must change it."""
        identity = ServerIdentity.started_at(T0)

        assert identity.switched_over("192.0.2.11").sys_start_time == identity.sys_start_time
        with pytest.raises(ValueError, match="different primary"):
            identity.switched_over(identity.primary_ip)


class TestNetworkModel:
    def test_creation_change_deletion(self) -> None:
        """An alarm is added by its creation, changed by a value change, removed by its deletion."""
        model = NetworkModel()

        model.apply(alarm("a-1"))
        model.apply(
            AttributeValueChange(
                object_full_name="a-1",
                changes=(AttributeChange(name="severity", new_value="critical", old_value="major"),),
            )
        )
        changed = model.get("a-1")
        model.apply(ObjectDeletion(object_full_name="a-1"))

        assert changed is not None
        assert changed.attributes["severity"] == "critical"
        assert model.get("a-1") is None
        assert len(model) == 0

    def test_vessel_members_apply_in_order(self) -> None:
        """An EventVessel's events are applied one after the other."""
        model = NetworkModel()

        model.apply(EventVessel(events=(alarm("a-1"), alarm("a-2"), ObjectDeletion(object_full_name="a-1"))))

        assert [a.full_name for a in model.alarms()] == ["a-2"]

    def test_unknown_objects_and_system_events_change_nothing(self) -> None:
        """Changes to objects the model lacks, and system events, are ignored."""
        model = NetworkModel()
        model.apply(alarm("a-1"))
        before = model.snapshot()

        model.apply(AttributeValueChange(object_full_name="nope", changes=(AttributeChange(name="x"),)))
        model.apply(ObjectDeletion(object_full_name="nope"))
        model.apply(KeepAliveEvent())

        assert model.snapshot() == before

    def test_alarms_and_objects_by_class(self) -> None:
        """alarms() and objects(class) return only their class, sorted by full name."""
        model = NetworkModel()
        EventGenerator(model, clock=fixed_clock).populate(nodes=2, ports_per_node=3, alarms=4)

        assert len(model.objects(PORT_CLASS)) == 6
        assert len(model.alarms()) == 4
        names = [obj.full_name for obj in model.objects(PORT_CLASS)]
        assert names == sorted(names)

    def test_object_without_full_name_is_refused(self) -> None:
        """put() needs an objectFullName."""
        with pytest.raises(ValueError, match="objectFullName"):
            NetworkModel().put(XmlApiObject(object_class=PORT_CLASS, attributes={}))


def run(
    seed: int, count: int
) -> tuple[NetworkModel, list[ObjectCreation | ObjectDeletion | AttributeValueChange]]:
    model = NetworkModel()
    generator = EventGenerator(model, seed=seed, clock=fixed_clock)
    generator.populate()
    events: list[ObjectCreation | ObjectDeletion | AttributeValueChange] = []
    for _ in range(count):
        event = generator.next_event()
        model.apply(event)
        events.append(event)
    return model, events


class TestEventGenerator:
    def test_same_seed_same_events(self) -> None:
        """Two runs with the same seed and clock produce the same events and the same model."""
        first_model, first = run(3, 300)
        second_model, second = run(3, 300)

        assert first == second
        assert first_model.snapshot() == second_model.snapshot()

    def test_other_seed_other_events(self) -> None:
        """Another seed gives other traffic."""
        assert run(3, 50)[1] != run(4, 50)[1]

    def test_events_always_make_sense(self) -> None:
        """Every change and deletion names an object that exists; every creation a new one."""
        model = NetworkModel()
        generator = EventGenerator(model, seed=11, max_alarms=10, clock=fixed_clock)
        generator.populate(nodes=1, ports_per_node=2, alarms=0)
        kinds: set[str] = set()
        for _ in range(500):
            event = generator.next_event()
            match event:
                case ObjectCreation():
                    assert model.get(event.object_full_name) is None
                case ObjectDeletion() | AttributeValueChange():
                    assert model.get(event.object_full_name) is not None
            kinds.add(type(event).__name__ + ("-alarm" if event.header.category == "FAULT" else ""))
            model.apply(event)
            assert len(model.alarms()) <= 10

        assert kinds == {
            "ObjectCreation-alarm",
            "ObjectCreation",
            "ObjectDeletion-alarm",
            "ObjectDeletion",
            "AttributeValueChange-alarm",
            "AttributeValueChange",
        }

    def test_events_survive_the_wire(self) -> None:
        """Generated events encode and decode to themselves (headers included)."""
        _, events = run(5, 100)

        for event in events:
            message = encode_event(event)
            decoded = decode_message(message.headers, message.body)
            assert attrs.evolve(decoded, header=attrs.evolve(decoded.header, stomp_headers={})) == event

    def test_max_alarms_validated(self) -> None:
        """max_alarms below 1 is refused."""
        with pytest.raises(ValueError, match="max_alarms"):
            EventGenerator(NetworkModel(), max_alarms=0)
