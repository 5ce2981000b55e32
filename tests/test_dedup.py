"""The duplicate window: recent ids are recognised, memory stays bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from nfmp_client._dedup import RecentIds


class TestRecentIds:
    def test_second_sight_is_a_duplicate(self) -> None:
        """The first sighting is new, the second a duplicate."""
        ids = RecentIds(10)

        assert not ids.seen("ID:1")
        assert ids.seen("ID:1")
        assert "ID:1" in ids

    def test_bounded(self) -> None:
        """Beyond capacity the oldest id is forgotten."""
        ids = RecentIds(3)
        for n in range(5):
            ids.seen(f"ID:{n}")

        assert len(ids) == 3
        assert "ID:0" not in ids
        assert "ID:4" in ids

    def test_a_repeat_refreshes(self) -> None:
        """An id seen again becomes the most recent, so it is kept longest."""
        ids = RecentIds(2)
        ids.seen("a")
        ids.seen("b")
        ids.seen("a")
        ids.seen("c")

        assert "a" in ids
        assert "b" not in ids

    def test_capacity_validated(self) -> None:
        """A window of zero is refused."""
        with pytest.raises(ValueError, match="at least one"):
            RecentIds(0)

    @given(st.lists(st.text(max_size=4), max_size=200), st.integers(min_value=1, max_value=50))
    def test_never_exceeds_capacity_and_keeps_the_latest(self, stream: list[str], capacity: int) -> None:
        """Any stream: never more than capacity ids, and the last one is always remembered."""
        ids = RecentIds(capacity)
        for identity in stream:
            ids.seen(identity)
            assert len(ids) <= capacity
            assert identity in ids
