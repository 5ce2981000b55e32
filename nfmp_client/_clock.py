"""Time, injected: the only place the client reads the clock or waits.

Timeouts and intervals use a monotonic clock, never the wall clock (which jumps with NTP and daylight saving).
Code that needs time takes a :class:`Clock`; tests give it a
:class:`~nfmp_client.testing.FakeClock` and move time by hand, so timing logic is tested without sleeping.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol, final, runtime_checkable

__all__ = ["Clock", "MonotonicClock"]


@runtime_checkable
class Clock(Protocol):
    """A monotonic clock that can also wait."""

    def monotonic(self) -> float:
        """Return seconds on a clock that never goes back (only differences mean anything)."""
        ...

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait until *event* is set or *timeout* seconds have passed; return whether it is set."""
        ...


def utc_now() -> datetime:
    """Return the wall-clock time now, aware UTC (for timestamps shown to people; never for intervals)."""
    return datetime.now(timezone.utc)


@final
class MonotonicClock:
    """The real clock: :func:`time.monotonic` and real waiting."""

    def monotonic(self) -> float:
        """Return :func:`time.monotonic`."""
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait on *event* for up to *timeout* seconds."""
        return event.wait(timeout)

    def __repr__(self) -> str:
        """Name the clock."""
        return "MonotonicClock()"
