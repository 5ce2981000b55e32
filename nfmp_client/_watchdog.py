"""The KeepAliveEvent watchdog, as pure logic: has the server been silent for too long.

STOMP heart-beats prove that the broker's TCP path is alive. They cannot tell that NFM-P behind the broker
(or a bridge in front of it) stopped sending: NFM-P publishes a KeepAliveEvent on each topic about every 30
seconds (the NFM-P XML API and JMS developer guide, chapter "Connection monitoring and error recovery"), and
Nokia's advice is to check the server when nothing at all arrived for two minutes (same guide, chapter "JMS
communication"). Any message counts as a sign of life, not only keep-alives. The sources: see
docs/background.rst, 'Keep-alives'.

The watchdog holds no thread and reads no clock: the caller says what time it is. That makes every rule a
plain-value test.
"""

from __future__ import annotations

from typing import Final, final

__all__ = ["DEFAULT_KEEPALIVE_TIMEOUT", "KeepAliveWatchdog"]

DEFAULT_KEEPALIVE_TIMEOUT: Final = 120.0
"""Seconds of total silence after which the connection is declared dead: Nokia's two minutes, four keep-alive
periods (see docs/background.rst, 'Keep-alives')."""


@final
class KeepAliveWatchdog:
    """Tracks the last sign of life from the server against a timeout. Not thread-safe: one owner."""

    def __init__(self, timeout: float = DEFAULT_KEEPALIVE_TIMEOUT) -> None:
        """Expire after *timeout* seconds without any message.

        Raises:
            ValueError: *timeout* is not positive.
        """
        if not timeout > 0:
            raise ValueError(f"the keep-alive timeout must be positive, got {timeout!r}")
        self.timeout = timeout
        """Seconds of silence that mean the connection is dead."""
        self._last: float | None = None

    def start(self, now: float) -> None:
        """Arm the watchdog at *now* (a new connection): silence is counted from here."""
        self._last = now

    def stop(self) -> None:
        """Disarm: :meth:`expired` is False and :meth:`deadline` None until the next :meth:`start`."""
        self._last = None

    @property
    def armed(self) -> bool:
        """Whether the watchdog is counting."""
        return self._last is not None

    def observe(self, now: float) -> None:
        """Record a sign of life (any message from the server) at *now*."""
        if self._last is not None and now > self._last:
            self._last = now

    def pause(self, seconds: float) -> None:
        """Let *seconds* not count as silence (time the client spent in the application's code).

        While the application's code runs, the client reads nothing and acknowledges nothing (so the broker,
        its prefetch window full, may send nothing): that is no silence of the server's. Nor is it a sign of
        life: the silence before it still counts.
        """
        if self._last is not None and seconds > 0:
            self._last += seconds

    def last_seen(self) -> float | None:
        """Return when the last sign of life (or the start) was, or None when disarmed."""
        return self._last

    def deadline(self) -> float | None:
        """Return when the watchdog expires unless something arrives first, or None when disarmed."""
        return None if self._last is None else self._last + self.timeout

    def silence(self, now: float) -> float:
        """Return the seconds since the last sign of life (0 when disarmed)."""
        return 0.0 if self._last is None else max(0.0, now - self._last)

    def expired(self, now: float) -> bool:
        """Whether the server has been silent for longer than the timeout at *now*."""
        deadline = self.deadline()
        return deadline is not None and now >= deadline

    def __repr__(self) -> str:
        """Show the timeout and the state."""
        state = "disarmed" if self._last is None else f"last seen at {self._last:.3f}"
        return f"<KeepAliveWatchdog timeout={self.timeout:g}s, {state}>"
