"""The KeepAliveEvent watchdog: any message resets it; silence beyond the timeout expires it."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from nfmp_client._watchdog import DEFAULT_KEEPALIVE_TIMEOUT, KeepAliveWatchdog


class TestKeepAliveWatchdog:
    def test_default_is_nokias_two_minutes(self) -> None:
        """The default timeout is the 120 s Nokia gives."""
        assert KeepAliveWatchdog().timeout == DEFAULT_KEEPALIVE_TIMEOUT == 120.0

    def test_disarmed_never_expires(self) -> None:
        """Before start (and after stop) there is no deadline."""
        watchdog = KeepAliveWatchdog(1.0)

        assert not watchdog.armed
        assert watchdog.deadline() is None
        assert not watchdog.expired(10_000.0)
        watchdog.start(0.0)
        watchdog.stop()
        assert not watchdog.expired(10_000.0)

    def test_expires_exactly_at_the_deadline(self) -> None:
        """Silence of exactly the timeout expires it; a moment less does not."""
        watchdog = KeepAliveWatchdog(2.0)
        watchdog.start(100.0)

        assert not watchdog.expired(101.999)
        assert watchdog.expired(102.0)
        assert watchdog.silence(102.5) == 2.5

    def test_any_message_resets(self) -> None:
        """Each observed message moves the deadline."""
        watchdog = KeepAliveWatchdog(2.0)
        watchdog.start(0.0)

        watchdog.observe(1.5)
        watchdog.observe(3.0)

        assert watchdog.deadline() == 5.0
        assert not watchdog.expired(4.9)

    def test_time_never_goes_back(self) -> None:
        """An observation older than the last one (a late thread) does not move the deadline back."""
        watchdog = KeepAliveWatchdog(2.0)
        watchdog.start(10.0)

        watchdog.observe(5.0)

        assert watchdog.last_seen() == 10.0

    def test_observe_while_disarmed_is_ignored(self) -> None:
        """Messages before start do not arm it."""
        watchdog = KeepAliveWatchdog(2.0)

        watchdog.observe(1.0)

        assert not watchdog.armed

    @pytest.mark.parametrize("timeout", [0.0, -1.0, float("nan")])
    def test_timeout_must_be_positive(self, timeout: float) -> None:
        """Zero, negative and NaN timeouts are refused."""
        with pytest.raises(ValueError, match="positive"):
            KeepAliveWatchdog(timeout)

    @given(
        st.lists(st.floats(min_value=0, max_value=1e6), max_size=30), st.floats(min_value=0.01, max_value=1e3)
    )
    def test_expired_iff_silence_reaches_timeout(self, times: list[float], timeout: float) -> None:
        """Whatever the observations, expiry means the silence since the latest one reached the timeout."""
        watchdog = KeepAliveWatchdog(timeout)
        watchdog.start(0.0)
        for moment in times:
            watchdog.observe(moment)
        latest = max([0.0, *times])

        assert watchdog.expired(latest + timeout)
        assert not watchdog.expired(latest + timeout * 0.999)
