"""Nokia's resync rules as pure logic: given what happened, is a resync needed, and why.

The NFM-P XML API developer guide gives the rules ("Connection monitoring and error recovery",
"Recommended durable JMS client operation"). An OSS must retrieve the current state again
(alarms over ``findFaults``, inventory over ``find``) when:

* it has no baseline yet (its first start, or its state was lost): :attr:`ResyncReason.INITIAL`;
* the subscription it stored events under is not the one it has now (another topic, selector or durability:
  the broker silently drops the backlog of a durable subscription re-created with another selector):
  :attr:`ResyncReason.SUBSCRIPTION_CHANGED`;
* a resync it started never completed (the process died during it): :attr:`ResyncReason.INCOMPLETE`;
* the server says events were lost (JmsMissedEvents: the durable subscription was removed while the client
  was away, or its queue overflowed while connected): :attr:`ResyncReason.MISSED_EVENTS`;
* the server restarted (``sysStartTime`` or ``jmsStartTime`` in SystemInfoEvent changed):
  :attr:`ResyncReason.SERVER_RESTARTED`;
* the active server changed (``sysPrimaryIp`` changed): :attr:`ResyncReason.SWITCHOVER`;
* the subscription is not durable and the client was disconnected (nothing was kept for it), or the process
  restarted: :attr:`ResyncReason.SUBSCRIPTION_NOT_DURABLE`;
* after a reconnect of a durable subscription (or a restart of the application), the first keep-alive is later
  than the last one before by more than the keep-alive period allows: the subscription did not keep what was
  sent meanwhile (it was removed or lost, and no server says so): :attr:`ResyncReason.KEEPALIVE_GAP`; through
  a JMS bridge, any such gap between two keep-alives (the bridge's link to the server failed and what was sent
  meanwhile was not kept);
* after a reconnect, no SystemInfoEvent came within the configured window, so none of the above can be
  ruled out: :attr:`ResyncReason.SERVER_STATE_UNKNOWN` (configurable).

A durable subscription that reconnects with no JmsMissedEvents and an unchanged SystemInfoEvent needs no
resync: the server kept the events, and the backlog drains. Which of these rules are Nokia's and which are
this library's own, with the sources: see docs/background.rst, 'The resync rules'.

:class:`ResyncRules` holds no thread, clock or I/O: the client feeds it what happened and persists the
:class:`~nfmp_client.Baseline` it keeps up to date. Every rule is a plain-value test.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import final

import attrs
from attrs import field, frozen

from ._continuity import DEFAULT_GAP_FACTOR, KeepAliveContinuity
from ._state import Baseline

__all__ = ["Due", "ResyncReason", "ResyncRequest", "ResyncRules", "ResyncSchedule", "Subscription", "Trigger"]


class ResyncReason(enum.Enum):
    """Why a resync is needed, the most fundamental first.

    A coalesced request is named after the first of its reasons in this order (a switchover explains the
    missed events that come with it). Which reasons are Nokia's rules and which are this library's own:
    :doc:`background <background>` (*The resync rules*).
    """

    INITIAL = "initial"
    """No baseline: the first start of this client id (or its state was removed)."""
    SUBSCRIPTION_CHANGED = "subscription-changed"
    """The topic, selector or durability differs from the last run: the stored events were for another
    subscription (a broker drops a durable subscription's backlog when it is re-created differently). Also
    after a move to another server of the configuration (a failover, a return to the primary): the durable
    subscription there is a new one, so the events of the gap were not kept for it."""
    INCOMPLETE = "incomplete"
    """A resync was requested in an earlier run and never completed."""
    SWITCHOVER = "switchover"
    """``sysPrimaryIp`` changed: the standby became the primary (an activity switch)."""
    SERVER_RESTARTED = "server-restarted"
    """``sysStartTime`` or ``jmsStartTime`` changed: the server (or its JMS server) restarted."""
    MISSED_EVENTS = "missed-events"
    """The server sent JmsMissedEvents: events for this client were discarded."""
    KEEPALIVE_GAP = "keepalive-gap"
    """After a reconnect (or a restart of the application) the first keep-alive came from much later than the
    last one before it: the durable subscription or queue did not keep what the server sent meanwhile, though
    no JmsMissedEvents said so (the continuity check: :doc:`background <background>`)."""
    SUBSCRIPTION_NOT_DURABLE = "subscription-not-durable"
    """A non-durable subscription was interrupted (a disconnect or a restart): what was sent meanwhile is
    gone."""
    SERVER_STATE_UNKNOWN = "server-state-unknown"
    """Connected, but no SystemInfoEvent arrived in time: a restart or a switchover cannot be ruled out."""
    UNDELIVERABLE = "undeliverable"
    """The handler kept raising on an event until it was given up (``max_handler_failures``): the
    application's copy lacks that event."""
    HOLD_OVERFLOW = "hold-overflow"
    """Too many events arrived during a resync to be held for replay: the resync starts over."""


@frozen(kw_only=True)
class Trigger:
    """A resync is needed: the reason and what shows it."""

    reason: ResyncReason
    """The reason."""
    evidence: Mapping[str, str] = field(factory=dict)
    """What shows it, as readable values: e.g. ``{"old_sys_start_time": ..., "new_sys_start_time": ...}``."""


@frozen(kw_only=True)
class Subscription:
    """The subscription a client has now: what a baseline is compared with."""

    client_id: str
    """The OSS client id."""
    topic: str
    """The topic."""
    selector: str
    """The selector."""
    durable: bool
    """Whether it is durable."""
    subscription_name: str | None = None
    """The durable subscription's name."""
    queue: str | None = None
    """The queue consumed instead of the topic, if any."""


_COMPARED = ("topic", "selector", "durable", "subscription_name", "queue")


@final
class ResyncRules:
    """Decides, event by event, whether a resync is needed. Not thread-safe: one owner.

    Call :meth:`start` once, then :meth:`connected` after each (re)subscription, :meth:`system_info` for each
    SystemInfoEvent, :meth:`missed_events` for each JmsMissedEvents, :meth:`keepalive` for each KeepAliveEvent
    and :meth:`system_info_overdue` when the window for a SystemInfoEvent after a connect ran out. Each
    returns the trigger, if the event calls for a resync. :attr:`baseline` is what to persist (it changes when
    the server's identity does, and with each keep-alive).
    """

    def __init__(
        self,
        subscription: Subscription,
        baseline: Baseline | None,
        *,
        expect_system_info: bool = True,
        continuity: bool = False,
        gap_factor: float = DEFAULT_GAP_FACTOR,
        keepalive_period: float | None = None,
    ) -> None:
        """Judge *subscription* against *baseline*, the one saved by an earlier run (None: none).

        Args:
            subscription: The subscription of this run.
            baseline: The baseline of the last run, or None.
            expect_system_info: Whether the server greets each connection with a SystemInfoEvent (not through
                a JMS bridge: NFM-P greets the bridge's connection). Through a bridge, every gap between two
                keep-alives is judged, not only those across the client's own reconnects.
            continuity: Whether to judge the keep-alives' continuity (durable subscriptions and queues only).
            gap_factor: How many keep-alive periods a gap may last.
            keepalive_period: The keep-alive period in seconds; None: learned.
        """
        self._subscription = subscription
        self._stored = baseline
        self._baseline = self._fresh(baseline)
        self._connections = 0
        self._awaiting_system_info = False
        self._expect_system_info = expect_system_info
        self._continuity = (
            KeepAliveContinuity(
                factor=gap_factor,
                period=keepalive_period,
                last=baseline.last_keepalive if baseline else None,
                learned=baseline.keepalive_period if baseline else None,
                every_gap=not expect_system_info,
            )
            if continuity and subscription.durable
            else None
        )

    @property
    def baseline(self) -> Baseline:
        """The baseline to persist, this subscription and the server identity seen last."""
        return self._baseline

    @property
    def awaiting_system_info(self) -> bool:
        """Whether a SystemInfoEvent is expected (connected, and none seen since)."""
        return self._awaiting_system_info

    def start(self) -> Trigger | None:
        """Judge the baseline of the last run, as the process starts."""
        stored = self._stored
        if stored is None:
            return Trigger(reason=ResyncReason.INITIAL)
        changed = {
            name: (getattr(stored, name), getattr(self._subscription, name))
            for name in _COMPARED
            if getattr(stored, name) != getattr(self._subscription, name)
        }
        if changed:
            evidence = {}
            for name, (old, new) in changed.items():
                evidence[f"old_{name}"], evidence[f"new_{name}"] = str(old), str(new)
            return Trigger(reason=ResyncReason.SUBSCRIPTION_CHANGED, evidence=evidence)
        owed = {"owed": ",".join(stored.owed), **stored.owed_evidence} if stored.owed else {}
        if not stored.in_sync and not stored.resync_epoch:
            # A first run that ended before its initial resync was even requested (it never reached the
            # broker, or stopped while the request was being coalesced): the initial resync is still owed.
            return Trigger(
                reason=ResyncReason.INITIAL,
                evidence={"detail": "no resync has completed for this client id yet", **owed},
            )
        if not stored.in_sync:
            # A resync was owed (a trigger, written before its message was acknowledged), requested, or
            # under way when the last run ended: the reasons it had still hold.
            return Trigger(
                reason=ResyncReason.INCOMPLETE,
                evidence={"resync_epoch": str(stored.resync_epoch), **owed},
            )
        if not self._subscription.durable:
            return Trigger(
                reason=ResyncReason.SUBSCRIPTION_NOT_DURABLE,
                evidence={"interruption": "the client process restarted"},
            )
        return None

    def connected(self, server: str, *, moved_from: str | None = None) -> Trigger | None:
        """Record a (re)subscription on *server*; after the first of this run, it is a reconnection.

        *moved_from*: the durable subscription was last used on another server of the configuration; the
        one used now is a new one (whatever the old server kept, the gap was not kept here).
        """
        self._connections += 1
        self._awaiting_system_info = self._expect_system_info
        if self._continuity is not None:
            self._continuity.reconnected()
        self._baseline = attrs.evolve(self._baseline, server=server)
        if moved_from is not None and self._subscription.durable:
            return Trigger(
                reason=ResyncReason.SUBSCRIPTION_CHANGED,
                evidence={"old_server": moved_from, "new_server": server},
            )
        if self._connections > 1 and not self._subscription.durable:
            return Trigger(
                reason=ResyncReason.SUBSCRIPTION_NOT_DURABLE, evidence={"interruption": "a reconnection"}
            )
        return None

    def system_info(
        self, *, sys_start_time: str | None, jms_start_time: str | None, primary_ip: str | None
    ) -> Trigger | None:
        """Compare the identity in a SystemInfoEvent with the baseline's, then keep it."""
        self._awaiting_system_info = False
        old = self._baseline
        new = attrs.evolve(
            old,
            sys_start_time=sys_start_time if sys_start_time is not None else old.sys_start_time,
            jms_start_time=jms_start_time if jms_start_time is not None else old.jms_start_time,
            primary_ip=primary_ip if primary_ip is not None else old.primary_ip,
        )
        self._baseline = new
        unknown = (old.sys_start_time, old.jms_start_time, old.primary_ip) == (None, None, None)
        if old.in_sync and unknown and self._expect_system_info:
            # The last resync completed before any SystemInfoEvent was seen: whether the server restarted
            # since cannot be told, so the copy cannot be trusted against this identity. Through a bridge the
            # resync never waits for one (NFM-P greets the bridge, at its own times): the first identity is
            # taken as it is, and a restart or switchover before it showed as a gap in the keep-alives.
            return Trigger(
                reason=ResyncReason.SERVER_STATE_UNKNOWN,
                evidence={"detail": "the last resync completed before the server's identity was known"},
            )
        evidence: dict[str, str] = {}
        for name in ("primary_ip", "sys_start_time", "jms_start_time"):
            before, after = getattr(old, name), getattr(new, name)
            if before is not None and before != after:
                evidence[f"old_{name}"], evidence[f"new_{name}"] = before, after
        if "old_primary_ip" in evidence:
            return Trigger(reason=ResyncReason.SWITCHOVER, evidence=evidence)
        if evidence:
            return Trigger(reason=ResyncReason.SERVER_RESTARTED, evidence=evidence)
        return None

    def missed_events(self, attributes: Mapping[str, object]) -> Trigger:
        """Judge a JmsMissedEvents: always a resync."""
        return Trigger(
            reason=ResyncReason.MISSED_EVENTS,
            evidence={name: str(value) for name, value in attributes.items() if isinstance(value, str)},
        )

    @property
    def keepalive_period(self) -> float | None:
        """The keep-alive period gaps are judged by (configured or learned), or None."""
        return None if self._continuity is None else self._continuity.period

    def keepalive(self, os_time: datetime | None) -> Trigger | None:
        """Take a KeepAliveEvent's server time: a hole if it is the first after a reconnect, much too late.

        The time is kept in the baseline (persist it before acknowledging the keep-alive: a process that dies
        before that is judged against an older one, which can only make the gap look longer).
        """
        continuity = self._continuity
        if continuity is None or os_time is None:
            return None
        gap = continuity.observe(os_time)
        self._baseline = attrs.evolve(
            self._baseline, last_keepalive=continuity.last, keepalive_period=continuity.learned
        )
        if gap is None:
            return None
        return Trigger(reason=ResyncReason.KEEPALIVE_GAP, evidence=gap.evidence())

    def system_info_overdue(self, window: float) -> Trigger | None:
        """Judge the absence of a SystemInfoEvent *window* seconds after the last connection."""
        if not self._awaiting_system_info:
            return None
        self._awaiting_system_info = False
        return Trigger(
            reason=ResyncReason.SERVER_STATE_UNKNOWN,
            evidence={"window": f"{window:g} s", "server": self._baseline.server or ""},
        )

    def owe(self, trigger: Trigger) -> None:
        """Record that a resync is owed because of *trigger* (persist the baseline before acknowledging)."""
        old = self._baseline
        self._baseline = attrs.evolve(
            old,
            in_sync=False,
            owed=tuple(sorted({*old.owed, trigger.reason.value})),
            owed_evidence={**old.owed_evidence, **trigger.evidence},
        )

    def requested(self, epoch: int) -> None:
        """Record that the resync of *epoch* was requested: not in sync until :meth:`completed`."""
        self._baseline = attrs.evolve(self._baseline, resync_epoch=epoch, in_sync=False)

    def completed(self, epoch: int) -> None:
        """Record that the resync of *epoch* completed (an older epoch's completion changes nothing)."""
        if epoch == self._baseline.resync_epoch:
            self._baseline = attrs.evolve(self._baseline, in_sync=True, owed=(), owed_evidence={})

    def _fresh(self, stored: Baseline | None) -> Baseline:
        # The subscription of this run; the server identity and epoch carried over from the stored baseline.
        subscription = self._subscription
        return Baseline(
            client_id=subscription.client_id,
            topic=subscription.topic,
            selector=subscription.selector,
            durable=subscription.durable,
            subscription_name=subscription.subscription_name,
            queue=subscription.queue,
            sys_start_time=stored.sys_start_time if stored else None,
            jms_start_time=stored.jms_start_time if stored else None,
            primary_ip=stored.primary_ip if stored else None,
            server=stored.server if stored else None,
            resync_epoch=stored.resync_epoch if stored else 0,
            in_sync=stored.in_sync if stored else False,
            owed=stored.owed if stored else (),
            owed_evidence=dict(stored.owed_evidence) if stored else {},
            last_keepalive=stored.last_keepalive if stored else None,
            keepalive_period=stored.keepalive_period if stored else None,
            last_event_at=stored.last_event_at if stored else None,
        )


_PRECEDENCE = {reason: index for index, reason in enumerate(ResyncReason)}


@frozen(kw_only=True)
class Due:
    """A resync to request now: the coalesced triggers, under a new epoch."""

    epoch: int
    """The new request's epoch (one more than the last)."""
    reason: ResyncReason
    """The main reason (the first in :class:`ResyncReason`'s order among those coalesced)."""
    reasons: frozenset[ResyncReason]
    """Every reason coalesced into this request."""
    evidence: Mapping[str, str]
    """The evidence of every trigger, merged (a later trigger's value wins on a clash)."""
    aborts: int | None = None
    """The epoch of the outstanding request this one replaces (it is aborted), if any."""


@final
class ResyncSchedule:
    """When to request a resync: coalescing, a minimum interval, epochs, and what is outstanding.

    Triggers that come close together (a reconnection's SystemInfoEvent, JmsMissedEvents and a restart all at
    once) become one request: the first pending trigger waits *coalesce_window* seconds for others. Two
    requests are at least *min_interval* seconds apart, to spare the server a storm of full retrievals. A
    trigger while a request is outstanding aborts it: the next request replaces it, with a higher epoch. Pure:
    times are the caller's monotonic seconds. Not thread-safe: one owner.
    """

    def __init__(self, *, coalesce_window: float, min_interval: float, last_epoch: int = 0) -> None:
        """Start after *last_epoch* (the persisted baseline's)."""
        if coalesce_window < 0 or min_interval < 0:
            raise ValueError("coalesce_window and min_interval must be >= 0")
        self._coalesce = coalesce_window
        self._min_interval = min_interval
        self._epoch = last_epoch
        self._pending: list[Trigger] = []
        self._pending_since: float | None = None
        self._last_request_at: float | None = None
        self._outstanding: int | None = None
        self._not_before: float | None = None

    @property
    def outstanding(self) -> int | None:
        """The epoch of the request the application is working on, or None."""
        return self._outstanding

    @property
    def pending(self) -> bool:
        """Whether triggers wait to become a request."""
        return bool(self._pending)

    def add(self, trigger: Trigger, now: float) -> None:
        """Record *trigger* at *now*; it becomes part of the next request."""
        if not self._pending:
            self._pending_since = now
        self._pending.append(trigger)

    def due_at(self) -> float | None:
        """When the pending triggers become a request (None: nothing pending)."""
        if self._pending_since is None:
            return None
        at = self._pending_since + self._coalesce
        if self._last_request_at is not None:
            at = max(at, self._last_request_at + self._min_interval)
        if self._not_before is not None:
            at = max(at, self._not_before)
        return at

    def hold_off(self, until: float) -> None:
        """Make no request before *until* (a failed resync is retried later each time)."""
        self._not_before = until

    def take(self, now: float) -> Due | None:
        """Return the request due at *now* (and count it as requested), or None if none is due yet."""
        at = self.due_at()
        if at is None or now < at:
            return None
        reasons = frozenset(t.reason for t in self._pending)
        evidence: dict[str, str] = {}
        for trigger in self._pending:
            evidence.update(trigger.evidence)
        self._epoch += 1
        due = Due(
            epoch=self._epoch,
            reason=min(reasons, key=_PRECEDENCE.__getitem__),
            reasons=reasons,
            evidence=evidence,
            aborts=self._outstanding,
        )
        self._pending, self._pending_since = [], None
        self._last_request_at, self._not_before = now, None
        self._outstanding = self._epoch
        return due

    def abandon(self) -> None:
        """Give up the outstanding request (the client stops): it reads as aborted from now on."""
        self._outstanding = None

    def settle(self, epoch: int) -> bool:
        """Close the request of *epoch* (completed or failed); return whether it was the current one.

        A stale epoch (a request already replaced) changes nothing.
        """
        if epoch != self._outstanding:
            return False
        self._outstanding = None
        return True


@final
class ResyncRequest:
    """A resync the application must carry out now: passed to ``Handler.on_resync_required``.

    Finish it in one of three ways:

    * return from ``on_resync_required`` after retrieving the state (the request is then complete), or raise
      (it failed: a new request follows after ``resync_min_interval``);
    * call :meth:`defer` in the callback, do the work elsewhere (a worker thread), then :meth:`complete` or
      :meth:`fail` from any thread.

    With ``ResyncMode.HOLD_AND_REPLAY`` the data events that arrive meanwhile are held and handed to
    ``on_event`` once it is complete, each tagged with this request's epoch. A newer trigger replaces the
    request (:attr:`aborted` turns True): stop, a new request comes.
    """

    def __init__(
        self,
        due: Due,
        *,
        at: datetime,
        settle: Callable[[int, bool, str], None],
        current: Callable[[], int | None],
    ) -> None:
        """Wrap *due*; *settle(epoch, ok, why)* reports the outcome, *current()* is the outstanding epoch."""
        self.reason = due.reason
        """The main reason."""
        self.reasons = due.reasons
        """Every reason coalesced into this request."""
        self.evidence = due.evidence
        """What shows it (old and new sysStartTime, the JmsMissedEvents fields, ...)."""
        self.epoch = due.epoch
        """This request's epoch: events delivered after it carry it (``event.header.resync_epoch``)."""
        self.at = at
        """When it was requested (aware UTC)."""
        self._settle = settle
        self._current = current
        self._deferred = False
        self._settled = False

    @property
    def aborted(self) -> bool:
        """Whether a newer request replaced this one before it was finished."""
        return not self._settled and self._current() != self.epoch

    @property
    def deferred(self) -> bool:
        """Whether :meth:`defer` was called."""
        return self._deferred

    @property
    def settled(self) -> bool:
        """Whether :meth:`complete` or :meth:`fail` was called."""
        return self._settled

    def defer(self) -> None:
        """Say that the resync goes on after ``on_resync_required`` returns (then :meth:`complete` it)."""
        self._deferred = True

    def complete(self) -> None:
        """Say that the application's copy is rebuilt (from any thread); held events are then replayed."""
        self._finish(True, "")

    def fail(self, why: str | BaseException) -> None:
        """Say that the resync could not be done (from any thread); a new request follows."""
        self._finish(False, str(why) or type(why).__name__)

    def _finish(self, ok: bool, why: str) -> None:
        if self._settled:
            return
        self._settled = True
        self._settle(self.epoch, ok, why)

    def __repr__(self) -> str:
        """Show the epoch, the reasons and the state."""
        state = "settled" if self._settled else "aborted" if self.aborted else "open"
        reasons = ",".join(sorted(r.value for r in self.reasons))
        return f"<ResyncRequest #{self.epoch} {self.reason.value} ({reasons}) {state}>"
