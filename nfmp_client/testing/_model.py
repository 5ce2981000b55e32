"""The simulated network: a model of the alarms and inventory, the server identity, an event generator.

The model is the truth a resync must arrive at. :class:`NetworkModel` applies data events (an alarm raised is
an ``ObjectCreation`` of ``fm.AlarmInfo``, a cleared alarm the ``ObjectDeletion`` of its alarm object, a
change an ``AttributeValueChange``), so a mirror that starts from a snapshot of the model and applies the same
events afterwards must end equal to it. :class:`EventGenerator` produces plausible traffic from a seed, so a
run is reproducible.

Nothing here touches the network or the clock (times are passed in): it is tested with plain values.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Final, final

import attrs
from attrs import frozen

from .._events import (
    AttributeChange,
    AttributeValue,
    AttributeValueChange,
    Event,
    EventHeader,
    EventVessel,
    ObjectCreation,
    ObjectDeletion,
)
from .._xmlapi import XmlApiObject

__all__ = ["ALARM_CLASS", "PORT_CLASS", "EventGenerator", "NetworkModel", "ServerIdentity"]

ALARM_CLASS: Final = "fm.AlarmInfo"
"""The class of alarm objects in events and in ``findFaults`` results."""
ALARM_OBJECT_TYPE: Final = "fm.AlarmObject"
PORT_CLASS: Final = "equipment.PhysicalPort"
"""The inventory class the generator creates, changes and deletes."""

_SEVERITIES: Final = ("warning", "minor", "major", "critical")
_ALARMS: Final = (
    ("LinkDown", "linkDown", "communicationsAlarm"),
    ("CardFailure", "replaceableUnitProblem", "equipmentAlarm"),
    ("LossOfSignal", "lossOfSignal", "communicationsAlarm"),
    ("HighTemperature", "temperatureUnacceptable", "environmentalAlarm"),
    ("BgpPeerDown", "protocolError", "communicationsAlarm"),
)


def _epoch_ms(instant: datetime) -> str:
    return str(round(instant.timestamp() * 1000))


@frozen(kw_only=True)
class ServerIdentity:
    """What a SystemInfoEvent tells a client about the server: compared by clients to detect a restart.

    The times are epoch-millisecond strings, as NFM-P sends them.
    """

    sys_start_time: str
    """When the server (``sysStartTime``) started."""
    jms_start_time: str
    """When the server's JMS service (``jmsStartTime``) started."""
    primary_ip: str = "192.0.2.10"
    """The address of the active (primary) server (``sysPrimaryIp``)."""

    @classmethod
    def started_at(cls, instant: datetime, *, primary_ip: str = "192.0.2.10") -> ServerIdentity:
        """Return the identity of a server that started at *instant* (its JMS service 1.5 s later)."""
        ms = int(_epoch_ms(instant))
        return cls(sys_start_time=str(ms), jms_start_time=str(ms + 1500), primary_ip=primary_ip)

    def restarted(self, instant: datetime) -> ServerIdentity:
        """Return the identity after a restart at *instant*: new start times, same primary address.

        The new times are later than the old ones even if *instant* is not (a coarse or frozen clock).
        """
        ms = max(int(_epoch_ms(instant)), int(self.sys_start_time) + 1, int(self.jms_start_time) + 1)
        return attrs.evolve(self, sys_start_time=str(ms), jms_start_time=str(ms + 1500))

    def jms_restarted(self, instant: datetime) -> ServerIdentity:
        """Return the identity after only the JMS service restarted at *instant* (its broker came back).

        The new ``jmsStartTime`` is later than the old one even if *instant* is not (a coarse or frozen
        clock); ``sysStartTime`` and the primary address stay.
        """
        ms = max(int(_epoch_ms(instant)), int(self.jms_start_time) + 1)
        return attrs.evolve(self, jms_start_time=str(ms))

    def switched_over(self, primary_ip: str) -> ServerIdentity:
        """Return the identity after an activity switch: the standby at *primary_ip* became the primary."""
        if primary_ip == self.primary_ip:
            raise ValueError(f"a switchover needs a different primary address than {primary_ip!r}")
        return attrs.evolve(self, primary_ip=primary_ip)


@final
class NetworkModel:
    """The simulated server's current alarms and inventory objects, by full name. Thread-safe.

    It doubles as the :class:`~nfmp_client.testing.SnapshotSource` of a
    :class:`~nfmp_client.testing.SnapshotServer`: :meth:`alarms` and :meth:`objects` return consistent
    copies.
    """

    def __init__(self, objects: Iterable[XmlApiObject] = ()) -> None:
        """Start with *objects* (alarms are the objects of class ``fm.AlarmInfo``)."""
        self._lock = threading.Lock()
        self._objects: dict[str, XmlApiObject] = {}
        for obj in objects:
            self.put(obj)

    def put(self, obj: XmlApiObject) -> None:
        """Add or replace *obj* (by its ``objectFullName``) without an event: for setting up a scenario.

        Raises:
            ValueError: The object has no ``objectFullName`` attribute.
        """
        full_name = obj.attributes.get("objectFullName")
        if not isinstance(full_name, str) or not full_name:
            raise ValueError(f"a {obj.object_class} needs an objectFullName attribute to be in the model")
        with self._lock:
            self._objects[full_name] = obj

    def apply(self, event: Event) -> None:
        """Change the model as *event* says; system events and unknown events change nothing.

        An ``AttributeValueChange`` or ``ObjectDeletion`` of an object the model does not hold is ignored,
        as NFM-P's own consumers must (the object may predate the model).
        """
        with self._lock:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        match event:
            case ObjectCreation():
                full_name = event.object_full_name
                if full_name:
                    self._objects[full_name] = XmlApiObject(
                        object_class=event.object_class, attributes=dict(event.attributes)
                    )
            case ObjectDeletion():
                self._objects.pop(event.object_full_name, None)
            case AttributeValueChange():
                old = self._objects.get(event.object_full_name)
                if old is not None:
                    attributes = dict(old.attributes)
                    for change in event.changes:
                        if change.new_value is not None:
                            attributes[change.name] = change.new_value
                    self._objects[event.object_full_name] = attrs.evolve(old, attributes=attributes)
            case EventVessel():
                for member in event.events:
                    self._apply(member)
            case _:
                pass

    def alarms(self) -> list[XmlApiObject]:
        """Return the active alarms (objects of class ``fm.AlarmInfo``), sorted by full name."""
        return self.objects(ALARM_CLASS)

    def objects(self, full_class_name: str) -> list[XmlApiObject]:
        """Return the objects of class *full_class_name*, sorted by full name."""
        with self._lock:
            found = [obj for obj in self._objects.values() if obj.object_class == full_class_name]
        return sorted(found, key=lambda obj: obj.full_name)

    def get(self, full_name: str) -> XmlApiObject | None:
        """Return the object with *full_name*, or None."""
        with self._lock:
            return self._objects.get(full_name)

    def snapshot(self) -> dict[str, XmlApiObject]:
        """Every object, by full name: what a mirror of this server must equal."""
        with self._lock:
            return dict(self._objects)

    def __len__(self) -> int:
        """Count the objects (alarms and inventory)."""
        with self._lock:
            return len(self._objects)

    def __repr__(self) -> str:
        """Summarize: counts, not contents."""
        with self._lock:
            alarms = len([obj for obj in self._objects.values() if obj.object_class == ALARM_CLASS])
            return f"<NetworkModel {alarms} alarms, {len(self._objects) - alarms} other objects>"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


@final
class EventGenerator:
    """Plausible NFM-P traffic for a :class:`NetworkModel`, reproducible from a seed.

    Alarms are raised on ports, change severity, get acknowledged and clear; ports change operational state,
    appear and disappear. Each event is chosen from the model's current content, so it always makes sense
    (an alarm is only cleared if it is active). The generator does not change the model: apply each event
    (the simulator does, as it publishes it) before asking for the next one.

    Two generators with the same seed, started on equal models and given the same clock readings, produce
    the same events.
    """

    def __init__(
        self,
        model: NetworkModel,
        *,
        seed: int = 0,
        max_alarms: int = 100,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        """Generate for *model*.

        Args:
            model: The model the events describe.
            seed: The seed of the random choices.
            max_alarms: No alarm is raised while this many are active.
            clock: Gives the event times (``MTOSI_osTime``, alarm detection times); aware UTC datetimes.
        """
        if max_alarms < 1:
            raise ValueError(f"max_alarms must be at least 1, got {max_alarms!r}")
        self._model = model
        self._random = random.Random(seed)  # noqa: S311  # reproducible traffic, not secrets
        self._max_alarms = max_alarms
        self._clock = clock
        self._serial = 0

    def populate(self, *, nodes: int = 4, ports_per_node: int = 8, alarms: int = 5) -> None:
        """Fill the model with an initial inventory of ports and some active alarms, without events.

        This is the state the server has before any client connects.
        """
        for node in range(1, nodes + 1):
            for port in range(1, ports_per_node + 1):
                self._model.put(self._port(node, port))
        for _ in range(alarms):
            event = self._raise_alarm()
            if event is not None:
                self._model.apply(event)

    def next_event(self) -> ObjectCreation | ObjectDeletion | AttributeValueChange:
        """Choose the next event from the model's current content (the model is not changed)."""
        actions: list[tuple[int, Callable[[], ObjectCreation | ObjectDeletion | AttributeValueChange | None]]]
        actions = [
            (30, self._raise_alarm),
            (20, self._change_severity),
            (10, self._acknowledge),
            (20, self._clear_alarm),
            (10, self._port_state),
            (5, self._create_port),
            (5, self._delete_port),
        ]
        while True:
            (action,) = self._random.choices([a for _, a in actions], weights=[w for w, _ in actions])
            event = action()
            if event is not None:
                return event
            # Not possible right now (no alarm to clear, ...): try another action. _create_port always works.

    # ---------------------------------------------------------------------------------------- actions

    def _header(
        self, event_name: str, object_type: str, nt_type: str, category: str, **extra: str
    ) -> EventHeader:
        return EventHeader(
            event_name=event_name,
            object_type=object_type,
            nt_type=nt_type,
            category=category,
            os_time=self._now(),
            extra=extra,
        )

    def _now(self) -> datetime:
        instant = self._clock()
        return instant.replace(microsecond=instant.microsecond // 1000 * 1000)  # the wire has milliseconds

    def _ports(self) -> list[XmlApiObject]:
        return self._model.objects(PORT_CLASS)

    def _port(self, node: int, port: int) -> XmlApiObject:
        full_name = f"network:10.10.10.{node}|shelf-1|cardSlot-1|card|port-1/1/{port}"
        return XmlApiObject(
            object_class=PORT_CLASS,
            attributes={
                "objectFullName": full_name,
                "displayedName": f"Port 1/1/{port}",
                "nodeId": f"10.10.10.{node}",
                "administrativeState": "portInService",
                "operationalState": "portInService",
                "speed": "10000000000",
            },
        )

    def _raise_alarm(self) -> ObjectCreation | None:
        ports = self._ports()
        if not ports or len(self._model.alarms()) >= self._max_alarms:
            return None
        port = self._random.choice(ports)
        name, cause, alarm_type = self._random.choice(_ALARMS)
        severity = self._random.choice(_SEVERITIES)
        self._serial += 1
        full_name = f"{port.full_name}|alarm-{self._serial}"
        detected = _epoch_ms(self._now())
        return ObjectCreation(
            header=self._header(
                "ObjectCreation",
                ALARM_OBJECT_TYPE,
                "NT_ALARM",
                "FAULT",
                ALA_alarmType=alarm_type,
                ALA_isVessel="false",
                MTOSI_objectName=full_name,
                MTOSI_perceivedSeverity=severity,
                MTOSI_probableCause=cause,
            ),
            object_class=ALARM_CLASS,
            attributes={
                "objectFullName": full_name,
                "affectedObjectFullName": port.full_name,
                "affectedObjectClassName": PORT_CLASS,
                "alarmName": name,
                "alarmType": alarm_type,
                "probableCause": cause,
                "severity": severity,
                "isAcknowledged": "false",
                "nodeId": _text(port.attributes, "nodeId"),
                "firstTimeDetected": detected,
                "lastTimeDetected": detected,
            },
        )

    def _change(
        self, obj: XmlApiObject, category: str, changes: list[tuple[str, str]]
    ) -> AttributeValueChange:
        object_type = ALARM_OBJECT_TYPE if obj.object_class == ALARM_CLASS else obj.object_class
        return AttributeValueChange(
            header=self._header(
                "AttributeValueChange",
                object_type,
                "NT_ATTRIBUTE_VALUE_CHANGE",
                category,
                MTOSI_objectName=obj.full_name,
            ),
            object_full_name=obj.full_name,
            changes=tuple(
                AttributeChange(name=name, new_value=new, old_value=_text(obj.attributes, name))
                for name, new in changes
            ),
        )

    def _change_severity(self) -> AttributeValueChange | None:
        alarms = self._model.alarms()
        if not alarms:
            return None
        alarm = self._random.choice(alarms)
        current = _text(alarm.attributes, "severity")
        severity = self._random.choice([s for s in _SEVERITIES if s != current])
        return self._change(
            alarm, "FAULT", [("severity", severity), ("lastTimeDetected", _epoch_ms(self._now()))]
        )

    def _acknowledge(self) -> AttributeValueChange | None:
        alarms = [a for a in self._model.alarms() if _text(a.attributes, "isAcknowledged") != "true"]
        if not alarms:
            return None
        return self._change(self._random.choice(alarms), "FAULT", [("isAcknowledged", "true")])

    def _clear_alarm(self) -> ObjectDeletion | None:
        alarms = self._model.alarms()
        if not alarms:
            return None
        alarm = self._random.choice(alarms)
        return ObjectDeletion(
            header=self._header(
                "ObjectDeletion",
                ALARM_OBJECT_TYPE,
                "NT_OBJECTDELETION",
                "FAULT",
                MTOSI_objectName=alarm.full_name,
            ),
            object_full_name=alarm.full_name,
        )

    def _port_state(self) -> AttributeValueChange | None:
        ports = self._ports()
        if not ports:
            return None
        port = self._random.choice(ports)
        state = (
            "portOutOfService"
            if _text(port.attributes, "operationalState") == "portInService"
            else "portInService"
        )
        return self._change(port, "EQUIPMENT", [("operationalState", state)])

    def _create_port(self) -> ObjectCreation:
        node = self._random.randint(1, 9)
        self._serial += 1
        port = self._port(node, 100 + self._serial)
        return ObjectCreation(
            header=self._header(
                "ObjectCreation",
                PORT_CLASS,
                "NT_OBJECTCREATION",
                "EQUIPMENT",
                MTOSI_objectName=port.full_name,
            ),
            object_class=PORT_CLASS,
            attributes=dict(port.attributes),
        )

    def _delete_port(self) -> ObjectDeletion | None:
        # Only ports without an active alarm, so no alarm points at a port that is gone.
        alarmed = {_text(a.attributes, "affectedObjectFullName") for a in self._model.alarms()}
        ports = [p for p in self._ports() if p.full_name not in alarmed]
        if not ports:
            return None
        port = self._random.choice(ports)
        return ObjectDeletion(
            header=self._header(
                "ObjectDeletion",
                PORT_CLASS,
                "NT_OBJECTDELETION",
                "EQUIPMENT",
                MTOSI_objectName=port.full_name,
            ),
            object_full_name=port.full_name,
        )


def _text(attributes: Mapping[str, AttributeValue], name: str) -> str:
    value = attributes.get(name, "")
    return value if isinstance(value, str) else ""
