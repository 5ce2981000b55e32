"""The continuity check, as pure logic: did a durable stream keep everything while the client was away.

NFM-P publishes a KeepAliveEvent on each topic about every 30 seconds, and a durable subscription stores it
for an absent client like any other event. So after a reconnect (or a restart of the application) the first
keep-alive received should be one the server sent during the gap, about one period after the last one received
before it. When it is much later, the subscription did not keep the keep-alives of the gap, nor, most likely,
the events sent with them: it was removed or lost while the client was away (an administrator, a broker that
lost its store, a bridge broker's queue re-created), and no JmsMissedEvents will say so when the broker that
lost it is not NFM-P. The same idea as the stream counters of XEP-0198 (Stream Management) in XMPP, with the
server's keep-alives as the counter.

The check reads the server's time stamps (``MTOSI_osTime``), never arrival times: a stored backlog arrives in
a burst. Nokia does not publish the keep-alive period, so it is learned from the stream (the median of the
last intervals between consecutive keep-alives of one connection) or configured. A gap larger than *factor*
periods is a hole. Why this is sound and where it is blind: docs/background.rst, 'The continuity check'.

Holds no thread, clock or I/O: the caller hands it each keep-alive's time stamp and says when it reconnected.
"""

from __future__ import annotations

import statistics
from collections import deque
from datetime import datetime
from typing import Final, final

from attrs import frozen

__all__ = ["DEFAULT_GAP_FACTOR", "Gap", "KeepAliveContinuity"]

DEFAULT_GAP_FACTOR: Final = 2.5
"""A gap larger than this many keep-alive periods is a hole: one keep-alive missing (twice the period) is not
enough, so that a server's late or skipped keep-alive does not cost a resync."""
_SAMPLES: Final = 9  # intervals the learned period is the median of
_MIN_SAMPLES: Final = 3  # intervals needed before a learned period is trusted


@frozen(kw_only=True)
class Gap:
    """The first keep-alive after a reconnect came too long after the last one before it."""

    last: datetime
    """The server time of the last keep-alive received before the reconnect."""
    first: datetime
    """The server time of the first keep-alive received after it."""
    period: float
    """The keep-alive period the gap was judged by, in seconds."""
    limit: float
    """The longest gap that was acceptable, in seconds (*factor* periods)."""

    @property
    def seconds(self) -> float:
        """The gap, in seconds of the server's clock."""
        return (self.first - self.last).total_seconds()

    def evidence(self) -> dict[str, str]:
        """Return the gap as readable values, for a resync request's evidence."""
        return {
            "last_keepalive": self.last.isoformat(),
            "first_keepalive": self.first.isoformat(),
            "gap": f"{self.seconds:.1f} s",
            "keepalive_period": f"{self.period:.1f} s",
            "limit": f"{self.limit:.1f} s",
        }


@final
class KeepAliveContinuity:
    """Learns the keep-alive period and judges the first keep-alive after each reconnect. One owner."""

    def __init__(
        self,
        *,
        factor: float = DEFAULT_GAP_FACTOR,
        period: float | None = None,
        last: datetime | None = None,
        learned: float | None = None,
        every_gap: bool = False,
    ) -> None:
        """Judge gaps longer than *factor* periods.

        Args:
            factor: How many keep-alive periods a gap may last.
            period: The keep-alive period in seconds, if known; None: learned from the stream.
            last: The server time of the last keep-alive seen (from the persisted baseline), if any.
            learned: The period learned by an earlier run (from the persisted baseline), if any; used until
                this run has learned its own.
            every_gap: Judge every interval, not only the first after a reconnect: for a stream that reaches
                the client through a JMS bridge, whose own link to the server can fail while the client's
                stays up (a backlog the server kept keeps the time stamps close together all the same).

        Raises:
            ValueError: *factor* is not above 1 or *period* not positive.
        """
        if not factor > 1:
            raise ValueError(f"the gap factor must be above 1, got {factor!r}")
        if period is not None and not period > 0:
            raise ValueError(f"the keep-alive period must be positive, got {period!r}")
        self._factor = factor
        self._configured = period
        self._learned = learned if learned is not None and learned > 0 else None
        self._last = last
        self._intervals: deque[float] = deque(maxlen=_SAMPLES)
        self._judging = last is not None  # the first keep-alive of a run is judged against the last run's
        self._every_gap = every_gap

    @property
    def last(self) -> datetime | None:
        """The server time of the last keep-alive seen (to persist)."""
        return self._last

    @property
    def period(self) -> float | None:
        """The keep-alive period gaps are judged by: configured, learned, or None (not known yet)."""
        return self._configured or self._learned

    @property
    def learned(self) -> float | None:
        """The period learned from the stream (to persist), or None."""
        return self._learned

    def reconnected(self) -> None:
        """Say that the stream was interrupted: the next keep-alive is judged against the last one."""
        self._intervals.clear()  # intervals are learned within one connection only
        self._judging = self._last is not None

    def observe(self, os_time: datetime) -> Gap | None:
        """Take a keep-alive's server time; return the gap if it is the first after a reconnect, too late."""
        last = self._last
        if last is None:
            self._last = os_time
            return None
        if os_time <= last:
            return None  # redelivered or reordered: not news (the next one is judged if this was the first)
        interval = (os_time - last).total_seconds()
        self._last = os_time
        if self._judging or self._every_gap:
            period = self.period
            if period is not None and interval > self._factor * period:
                self._judging = False
                return Gap(last=last, first=os_time, period=period, limit=self._factor * period)
            if self._judging:
                self._judging = False
                return None  # an interval across a reconnect is no sample
        self._intervals.append(interval)
        if len(self._intervals) >= _MIN_SAMPLES:
            self._learned = statistics.median(self._intervals)
        return None
