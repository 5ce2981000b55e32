"""nfmp_client.testing: a simulated NFM-P server and fault-injection kit, on top of a real ActiveMQ broker.

No NFM-P server is at hand on a laptop or in CI. This package behaves like one on the wire so that tests,
examples and the applications built on nfmp_client can reproduce every situation of Nokia's resync rules on
demand:

* :class:`SimulatedServer` publishes NFM-P-shaped events to the NFM-P topics, keep-alives, a SystemInfoEvent
  to each new subscriber, and runs the scenarios (restart, switchover, missed events, overflow, terminate,
  silence).
* :class:`EventGenerator` and :class:`NetworkModel`: reproducible alarm and inventory traffic, and the truth
  a resync must arrive at.
* :class:`SnapshotServer`: the XML API endpoint (``POST /xmlapi/invoke``, ``findFaults`` / ``find``).
* :class:`FaultProxy`: a loopback TCP proxy that blackholes, resets, delays or idles out a connection.
* :class:`ManualRunner` with :class:`FakeClock`: a client stepped by the test in virtual time, no threads.
* :class:`MemoryBroker`: an ActiveMQ-like broker in memory that speaks the transport Protocol (its
  :class:`MemoryServer` servers publish, refuse, hang, hold, reject logins, fall silent, drop; each
  :class:`MemoryTransport` is one connection), for those virtual-time tests; the conformance suite holds it
  to what ActiveMQ does.
* :class:`ActiveMQAdmin`: the broker-side controls (close a client's connection, remove a durable
  subscription) over ActiveMQ's JMX.

Everything not listed in ``__all__`` is private.
"""

from .._public import claim_public_names as _claim_public_names
from ._activemq import (
    ActiveMQAdmin as ActiveMQAdmin,
    BrokerAdminError as BrokerAdminError,
    BrokerConnection as BrokerConnection,
    DurableSubscription as DurableSubscription,
)
from ._fake_clock import FakeClock as FakeClock
from ._memory import (
    MemoryBroker as MemoryBroker,
    MemoryServer as MemoryServer,
    MemoryTransport as MemoryTransport,
)
from ._model import (
    ALARM_CLASS as ALARM_CLASS,
    PORT_CLASS as PORT_CLASS,
    EventGenerator as EventGenerator,
    NetworkModel as NetworkModel,
    ServerIdentity as ServerIdentity,
)
from ._proxy import FaultProxy as FaultProxy, ProxyMode as ProxyMode, ProxyStats as ProxyStats
from ._runner import ManualRunner as ManualRunner
from ._simulator import (
    NFMP_TOPICS as NFMP_TOPICS,
    SimulatedServer as SimulatedServer,
    SimulatorError as SimulatorError,
    Subscriber as Subscriber,
)
from ._snapshot import SnapshotServer as SnapshotServer, SnapshotSource as SnapshotSource

__all__ = [
    "ALARM_CLASS",
    "NFMP_TOPICS",
    "PORT_CLASS",
    "ActiveMQAdmin",
    "BrokerAdminError",
    "BrokerConnection",
    "DurableSubscription",
    "EventGenerator",
    "FakeClock",
    "FaultProxy",
    "ManualRunner",
    "MemoryBroker",
    "MemoryServer",
    "MemoryTransport",
    "NetworkModel",
    "ProxyMode",
    "ProxyStats",
    "ServerIdentity",
    "SimulatedServer",
    "SimulatorError",
    "SnapshotServer",
    "SnapshotSource",
    "Subscriber",
]

_claim_public_names(globals(), __all__, __name__)
