"""A bounded memory of recently handled message identities, so a redelivery is not handled twice.

A message that was handled but whose acknowledgement did not reach the broker (the link died in between) is
delivered again after the reconnect. ActiveMQ puts no ``redelivered`` header on durable-topic redeliveries, so
the only clue is the ``message-id``. The window is bounded: memory stays constant
however long the client runs.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final, final

__all__ = ["DEFAULT_DEDUP_WINDOW", "RecentIds"]

DEFAULT_DEDUP_WINDOW: Final = 10_000
"""How many message identities are remembered by default (well above a broker's prefetch)."""


@final
class RecentIds:
    """The last *capacity* identities seen, oldest forgotten first. Not thread-safe: one owner."""

    def __init__(self, capacity: int = DEFAULT_DEDUP_WINDOW) -> None:
        """Remember up to *capacity* identities.

        Raises:
            ValueError: *capacity* is not positive.
        """
        if capacity < 1:
            raise ValueError(f"the duplicate window must hold at least one id, got {capacity!r}")
        self.capacity = capacity
        """How many identities are remembered."""
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, identity: str) -> bool:
        """Return whether *identity* was seen recently; remember it either way."""
        if identity in self._ids:
            self._ids.move_to_end(identity)
            return True
        self._ids[identity] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False

    def __contains__(self, identity: object) -> bool:
        """Whether *identity* is remembered (without remembering it)."""
        return identity in self._ids

    def __len__(self) -> int:
        """Count the remembered identities."""
        return len(self._ids)

    def __repr__(self) -> str:
        """Show the fill level."""
        return f"<RecentIds {len(self._ids)}/{self.capacity}>"
