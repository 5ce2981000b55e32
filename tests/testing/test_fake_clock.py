"""FakeClock: time moves only on advance(); waiters wake when their fake timeout passes."""

from __future__ import annotations

import threading

import pytest

from nfmp_client.engine import Clock, MonotonicClock
from nfmp_client.testing import FakeClock


class TestFakeClock:
    def test_is_a_clock(self) -> None:
        """Both clocks satisfy the Clock protocol."""
        assert isinstance(FakeClock(), Clock)
        assert isinstance(MonotonicClock(), Clock)

    def test_advance(self) -> None:
        """advance() moves time forward, never back."""
        clock = FakeClock(start=5.0)
        clock.advance(1.5)

        assert clock.monotonic() == 6.5
        with pytest.raises(ValueError, match="cannot go back"):
            clock.advance(-1)

    def test_wait_returns_when_fake_time_passes(self) -> None:
        """A waiter times out when the fake clock passes its timeout, not in real time."""
        clock = FakeClock()
        event = threading.Event()
        result: list[bool] = []
        waiter = threading.Thread(target=lambda: result.append(clock.wait(event, 30.0)))
        waiter.start()

        clock.advance(29.0)
        waiter.join(0.05)
        assert waiter.is_alive()
        clock.advance(1.0)
        waiter.join(5)

        assert result == [False]

    def test_wait_returns_when_event_set(self) -> None:
        """A waiter returns True as soon as its event is set."""
        clock = FakeClock()
        event = threading.Event()
        event.set()

        assert clock.wait(event, 100.0)
