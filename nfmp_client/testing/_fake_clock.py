"""FakeClock: a clock that moves only when a test says so."""

from __future__ import annotations

import threading
from typing import final

__all__ = ["FakeClock"]

_POLL = 0.005  # real seconds between looks at the event while a waiter waits for fake time


@final
class FakeClock:
    """A :class:`~nfmp_client.engine.Clock` for tests: :meth:`advance` moves time, waking waiters it passes.

    Timing logic runs against it without real sleeping: a test advances the clock past a deadline and checks
    what happened, to the millisecond.
    """

    def __init__(self, start: float = 1000.0) -> None:
        """Start at *start* seconds."""
        self._now = start
        self._changed = threading.Condition()

    def monotonic(self) -> float:
        """Return the current fake time."""
        with self._changed:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by *seconds* and wake every waiter whose timeout has passed.

        Raises:
            ValueError: *seconds* is negative (a monotonic clock never goes back).
        """
        if seconds < 0:
            raise ValueError(f"a monotonic clock cannot go back ({seconds!r} s)")
        with self._changed:
            self._now += seconds
            self._changed.notify_all()

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait until *event* is set or the fake time has advanced by *timeout*; return whether it is set."""
        with self._changed:
            deadline = None if timeout is None else self._now + timeout
            while not event.is_set() and (deadline is None or self._now < deadline):
                self._changed.wait(_POLL)
        return event.is_set()

    def __repr__(self) -> str:
        """Show the time."""
        return f"FakeClock(now={self.monotonic():.3f})"
