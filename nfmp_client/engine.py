"""nfmp_client.engine: the client's seams, for tests and other transports.

An :class:`~nfmp_client.NfmpClient` takes three parts from outside: a clock, a transport factory and a runner.
Production uses the defaults (the real monotonic clock, stomp.py, a thread); tests give it
:class:`~nfmp_client.testing.FakeClock`, :class:`~nfmp_client.testing.MemoryBroker` and
:class:`~nfmp_client.testing.ManualRunner` and step the client in virtual time. A transport for another
library implements :class:`Transport` and passes the conformance suite in the project's tests.

* :class:`Transport`, :class:`TransportFactory`: one connection, and what makes one; a transport reports
  :class:`Opened`, :class:`FrameReceived` (or a :class:`FrameBatch` of several) and :class:`Lost` to its
  sink (``TransportReport`` is their union).
* :class:`StompTransport`, :func:`stomp_transport`: the stomp.py implementation, the default.
* :class:`Runner`, :class:`Loop`, :class:`ThreadRunner`: what runs the client's supervisor.
* :class:`AttemptFailed`: what a transport's blocking side operations (a probe, a removal) raise.
* :class:`Clock`, :class:`MonotonicClock`: the source of time, and the real one, the default.
"""

from ._clock import Clock, MonotonicClock
from ._engine import (
    AttemptFailed,
    FrameBatch,
    FrameReceived,
    Loop,
    Lost,
    Opened,
    Runner,
    ThreadRunner,
    Transport,
    TransportFactory,
    TransportReport,
)
from ._public import claim_public_names as _claim_public_names
from ._transport import StompTransport, stomp_transport

__all__ = [
    "AttemptFailed",
    "Clock",
    "FrameBatch",
    "FrameReceived",
    "Loop",
    "Lost",
    "MonotonicClock",
    "Opened",
    "Runner",
    "StompTransport",
    "ThreadRunner",
    "Transport",
    "TransportFactory",
    "TransportReport",
    "stomp_transport",
]

_claim_public_names(globals(), __all__, __name__)
