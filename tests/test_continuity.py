"""The continuity check as pure logic: the keep-alive period learned from server times, gaps judged after reconnects."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, strategies as st

from nfmp_client._continuity import Gap, KeepAliveContinuity

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def learned(check: KeepAliveContinuity, *times: float) -> None:
    for second in times:
        assert check.observe(at(second)) is None


def test_the_period_is_the_median_of_the_intervals_of_one_connection() -> None:
    check = KeepAliveContinuity()
    learned(check, 0, 30, 60)
    assert check.period is None  # two intervals: not trusted yet
    learned(check, 91, 120, 180)  # 31, 29 and one missing keep-alive (60)
    assert check.period == 30


def test_the_first_keepalive_after_a_reconnect_is_judged_by_the_period() -> None:
    check = KeepAliveContinuity(factor=2.5)
    learned(check, 0, 30, 60, 90)
    check.reconnected()
    gap = check.observe(at(90 + 76))

    assert gap == Gap(last=at(90), first=at(166), period=30, limit=75)
    assert gap.seconds == 76
    assert gap.evidence()["gap"] == "76.0 s"


def test_a_stored_keepalive_from_the_gap_is_no_hole() -> None:
    """A durable subscription kept the keep-alives: the first after the reconnect is one period later."""
    check = KeepAliveContinuity()
    learned(check, 0, 30, 60, 90)
    check.reconnected()
    assert check.observe(at(120)) is None
    assert check.observe(at(150)) is None  # and the stream goes on, judged no more


def test_a_gap_is_judged_only_after_a_reconnect() -> None:
    """A long silence within one connection is the watchdog's business, not a hole in a durable store."""
    check = KeepAliveContinuity()
    learned(check, 0, 30, 60, 90, 500)
    assert check.last == at(500)


def test_intervals_across_a_reconnect_are_not_learned() -> None:
    check = KeepAliveContinuity()
    learned(check, 0, 30, 60, 90)
    check.reconnected()
    learned(check, 100)  # 10 s: fine, but not a sample
    learned(check, 130, 160)
    assert check.period == 30


def test_a_redelivered_keepalive_leaves_the_judgement_to_the_next_one() -> None:
    check = KeepAliveContinuity()
    learned(check, 0, 30, 60, 90)
    check.reconnected()
    assert check.observe(at(90)) is None  # its acknowledgement was lost: delivered again
    assert check.observe(at(500)) is not None


def test_the_last_run_is_judged_with_its_learned_period() -> None:
    """After a restart of the application: the first keep-alive against the persisted one and period."""
    check = KeepAliveContinuity(last=at(90), learned=30.0)
    assert check.observe(at(400)) == Gap(last=at(90), first=at(400), period=30.0, limit=75.0)


def test_a_first_start_judges_nothing() -> None:
    check = KeepAliveContinuity()
    check.reconnected()
    assert check.observe(at(0)) is None
    assert check.last == at(0)


def test_without_a_period_nothing_is_judged_and_a_configured_one_wins() -> None:
    unknown = KeepAliveContinuity(last=at(0))
    assert unknown.observe(at(1000)) is None
    configured = KeepAliveContinuity(last=at(0), period=10.0, learned=300.0)
    assert configured.observe(at(26)) is not None


@pytest.mark.parametrize(("factor", "period"), [(1.0, None), (0.5, None), (2.5, 0.0), (2.5, -1.0)])
def test_bad_settings_are_refused(factor: float, period: float | None) -> None:
    with pytest.raises(ValueError, match="must be"):
        KeepAliveContinuity(factor=factor, period=period)


@given(intervals=st.lists(st.floats(min_value=20, max_value=40), min_size=3, max_size=30))
def test_a_store_that_kept_everything_never_looks_like_a_hole(intervals: list[float]) -> None:
    """However long the client was away (absence does not show in server times), a subscription that kept the
    keep-alives shows no gap: the first one after the reconnect came one jittery period after the last."""
    check = KeepAliveContinuity(factor=2.5)
    second = 0.0
    learned(check, second)
    for interval in intervals:
        second += interval
        learned(check, second)
    check.reconnected()
    assert check.observe(at(second + 40)) is None


def test_through_a_bridge_every_gap_is_judged() -> None:
    """The bridge's link to the server failed while the client's stayed up: the gap shows between two
    keep-alives of one connection; one kept by the server's store would not."""
    check = KeepAliveContinuity(every_gap=True)
    learned(check, 0, 30, 60, 90)
    assert check.observe(at(200)) == Gap(last=at(90), first=at(200), period=30, limit=75)
    learned(check, 230, 260)
    assert check.period == 30
