"""ResyncRules: each of Nokia's rules, and a state machine over random histories against a model of loss."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from nfmp_client import ResyncReason
from nfmp_client._resync import ResyncRules, ResyncSchedule, Subscription, Trigger
from nfmp_client.state import Baseline

SUB = Subscription(
    client_id="oss1@1", topic="5620-SAM-topic-xml", selector="ALA_clientId in ('oss1@1','')", durable=True
)
IDENTITY = {"sys_start_time": "1000", "jms_start_time": "1001", "primary_ip": "192.0.2.10"}


def stored(**overrides: object) -> Baseline:
    values: dict[str, object] = {
        "client_id": SUB.client_id,
        "topic": SUB.topic,
        "selector": SUB.selector,
        "durable": SUB.durable,
        "sys_start_time": "1000",
        "jms_start_time": "1001",
        "primary_ip": "192.0.2.10",
        "resync_epoch": 3,
        "in_sync": True,
    }
    values.update(overrides)
    return Baseline(**values)  # type: ignore[arg-type]


def reconnected(rules: ResyncRules, **identity: str | None) -> list[ResyncReason]:
    """Connect, then a SystemInfoEvent with *identity* (the baseline's by default): the reasons raised."""
    reasons = []
    for trigger in (
        rules.connected("a:61613"),
        rules.system_info(**{**IDENTITY, **identity}),
    ):
        if trigger is not None:
            reasons.append(trigger.reason)
    return reasons


class TestRules:
    def test_first_start(self) -> None:
        """No baseline: INITIAL."""
        trigger = ResyncRules(SUB, None).start()
        assert trigger is not None
        assert trigger.reason is ResyncReason.INITIAL

    def test_durable_reconnect_same_server_needs_nothing(self) -> None:
        """Durable, same sysStartTime/jmsStartTime/primary IP, no JmsMissedEvents: keep going."""
        rules = ResyncRules(SUB, stored())
        assert rules.start() is None
        assert reconnected(rules) == []
        assert reconnected(rules) == []  # a later reconnection too

    @pytest.mark.parametrize("name", ["sys_start_time", "jms_start_time"])
    def test_server_restarted(self, name: str) -> None:
        """sysStartTime or jmsStartTime changed: SERVER_RESTARTED, with old and new values."""
        rules = ResyncRules(SUB, stored())
        rules.start()
        rules.connected("a:61613")
        trigger = rules.system_info(**{**IDENTITY, name: "2000"})

        assert trigger is not None
        assert trigger.reason is ResyncReason.SERVER_RESTARTED
        assert trigger.evidence == {f"old_{name}": IDENTITY[name], f"new_{name}": "2000"}
        assert getattr(rules.baseline, name) == "2000"  # the new identity is the baseline from now on
        assert reconnected(rules, **{name: "2000"}) == []

    def test_switchover(self) -> None:
        """The primary IP changed (usually with jmsStartTime): SWITCHOVER."""
        rules = ResyncRules(SUB, stored())
        rules.start()
        rules.connected("b:61613")
        trigger = rules.system_info(sys_start_time="1000", jms_start_time="3000", primary_ip="192.0.2.11")

        assert trigger is not None
        assert trigger.reason is ResyncReason.SWITCHOVER
        assert trigger.evidence["new_primary_ip"] == "192.0.2.11"
        assert trigger.evidence["new_jms_start_time"] == "3000"

    def test_missed_events(self) -> None:
        """JmsMissedEvents, connected or on reconnect: MISSED_EVENTS."""
        trigger = ResyncRules(SUB, stored()).missed_events({"clientId": "oss1@1", "nested": (("a", "b"),)})
        assert trigger.reason is ResyncReason.MISSED_EVENTS
        assert trigger.evidence == {"clientId": "oss1@1"}

    def test_non_durable_reconnect(self) -> None:
        """Non-durable: the first connection of a run is fine after INITIAL; every reconnection is not."""
        sub = attrs.evolve(SUB, durable=False)
        rules = ResyncRules(sub, None)
        assert rules.start() is not None
        assert reconnected(rules) == []
        assert reconnected(rules) == [ResyncReason.SUBSCRIPTION_NOT_DURABLE]

    def test_non_durable_process_restart(self) -> None:
        """Non-durable and the process restarted: what was sent meanwhile is gone."""
        sub = attrs.evolve(SUB, durable=False)
        trigger = ResyncRules(sub, stored(durable=False)).start()
        assert trigger is not None
        assert trigger.reason is ResyncReason.SUBSCRIPTION_NOT_DURABLE

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"selector": "ALA_clientId in ('oss1@1','') AND x = 1"}, "selector"),
            ({"topic": "5620-SAM-topic-xml-fault"}, "topic"),
            ({"durable": False}, "durable"),
            ({"subscription_name": "other"}, "subscription_name"),
        ],
    )
    def test_subscription_changed(self, change: dict[str, Any], field: str) -> None:
        """Another topic, selector, durability or name than last run: SUBSCRIPTION_CHANGED, both values."""
        trigger = ResyncRules(attrs.evolve(SUB, **change), stored()).start()

        assert trigger is not None
        assert trigger.reason is ResyncReason.SUBSCRIPTION_CHANGED
        assert trigger.evidence[f"new_{field}"] == str(change[field])

    def test_incomplete_resync_of_the_last_run(self) -> None:
        """The process died during a resync: INCOMPLETE."""
        trigger = ResyncRules(SUB, stored(in_sync=False)).start()
        assert trigger is not None
        assert trigger.reason is ResyncReason.INCOMPLETE
        assert trigger.evidence == {"resync_epoch": "3"}

    def test_a_first_run_that_never_resynced_still_owes_the_initial_resync(self) -> None:
        """A baseline saved before any resync was requested (epoch 0, not in sync): INITIAL again."""
        trigger = ResyncRules(SUB, stored(resync_epoch=0, in_sync=False, sys_start_time=None)).start()
        assert trigger is not None
        assert trigger.reason is ResyncReason.INITIAL

    def test_no_system_info_in_time(self) -> None:
        """Connected, no SystemInfoEvent within the window: SERVER_STATE_UNKNOWN, once."""
        rules = ResyncRules(SUB, stored())
        rules.start()
        rules.connected("a:61613")

        trigger = rules.system_info_overdue(5.0)
        assert trigger is not None
        assert trigger.reason is ResyncReason.SERVER_STATE_UNKNOWN
        assert rules.system_info_overdue(5.0) is None  # once per connection
        rules.connected("a:61613")
        assert rules.system_info(**IDENTITY) is None
        assert rules.system_info_overdue(5.0) is None  # it came: nothing overdue

    def test_epochs_in_the_baseline(self) -> None:
        """requested/completed keep the epoch and in_sync; an old epoch's completion is ignored."""
        rules = ResyncRules(SUB, stored())
        rules.requested(4)
        assert (rules.baseline.resync_epoch, rules.baseline.in_sync) == (4, False)
        rules.completed(3)
        assert rules.baseline.in_sync is False
        rules.completed(4)
        assert rules.baseline.in_sync is True

    def test_the_baseline_carries_the_identity_over(self) -> None:
        """A new run keeps the stored server identity and epoch, with this run's subscription."""
        rules = ResyncRules(attrs.evolve(SUB, selector="new"), stored())
        assert rules.baseline.selector == "new"
        assert rules.baseline.sys_start_time == "1000"
        assert rules.baseline.resync_epoch == 3


# ------------------------------------------------------------------------------------------------ model


class World(RuleBasedStateMachine):
    """An NFM-P server, its broker and one OSS process, driven at random.

    The model knows the truth: whether events for the client may have been lost (or whether what the OSS
    holds can no longer be trusted) since its last completed resync. The rules never see it; they see what a
    client sees (SystemInfoEvent, JmsMissedEvents, connections). Checked: a resync is requested exactly when
    the truth calls for one (never missed, never for nothing), once the client is connected and has heard the
    server's identity.
    """

    def __init__(self) -> None:
        super().__init__()
        self.durable = True
        self.selector = "s1"
        self.identity = {"sys_start_time": "1", "jms_start_time": "1", "primary_ip": "10.0.0.1"}
        self.stored: Baseline | None = None  # what the OSS persisted
        self.server_subscription = False  # the broker keeps a (durable) subscription for the client
        self.running = False
        self.connected = False
        self.settled = False  # connected and the SystemInfoEvent (or its absence) has been judged
        self.decider: ResyncRules | None = None
        self.lost = True  # the truth: the OSS's copy cannot be trusted (nothing known yet)
        self.requested = False  # a resync is pending (requested, not completed)
        self.owed = False  # a resync is owed (triggered; requested or not yet)
        self.epoch = 0
        self.loss_pending_notice = False  # JmsMissedEvents due on the next subscription
        self.synced_blind = False  # the last resync completed before the client knew the server's identity

    # -- helpers

    def judge(self, trigger: Trigger | None) -> None:
        if trigger is None:
            return
        # A changed identity is a resync even if the application happened to resync since (it could not
        # know: the SystemInfoEvent that would have told the rules did not come).
        identity_news = trigger.reason in (ResyncReason.SERVER_RESTARTED, ResyncReason.SWITCHOVER)
        # Likewise when the last resync completed before any identity was known (the server may have
        # restarted after it).
        blind = trigger.reason is ResyncReason.SERVER_STATE_UNKNOWN and self.synced_blind
        assert self.lost or identity_news or blind, f"a resync was requested for nothing: {trigger}"
        self.lost = True  # owed: the copy is not to be trusted until the resync completes
        assert self.decider is not None
        self.decider.owe(trigger)  # on disk before the message that caused it is acknowledged
        self.owed = True
        self.persist()

    def persist(self) -> None:
        assert self.decider is not None
        self.stored = self.decider.baseline

    def subscription(self) -> Subscription:
        return Subscription(client_id="oss@1", topic="t", selector=self.selector, durable=self.durable)

    # -- the OSS process

    @precondition(lambda self: not self.running)
    @rule(durable=st.booleans(), new_selector=st.sampled_from([False, False, False, True]))
    def start_process(self, durable: bool, new_selector: bool) -> None:
        """The OSS starts, perhaps configured differently than last time."""
        if new_selector:
            self.selector += "'"
        changed = self.stored is not None and (
            self.stored.durable != durable or self.stored.selector != self.selector
        )
        if changed or not durable:
            self.lost = True  # the broker dropped the backlog, or nothing was kept for a non-durable client
            self.server_subscription = False
        self.durable = durable
        self.running = True
        self.requested = False
        self.decider = ResyncRules(self.subscription(), self.stored)
        self.judge(self.decider.start())
        self.persist()

    @precondition(lambda self: self.running)
    @rule()
    def crash(self) -> None:
        """kill -9 at any step: memory is lost (an owed or requested resync too), what was persisted stays."""
        self.running = self.connected = self.settled = False
        self.requested = self.owed = False
        if not self.durable:
            self.lost = True
            self.server_subscription = False

    @precondition(lambda self: self.running and not self.connected)
    @rule(system_info=st.booleans())
    def connect(self, system_info: bool) -> None:
        """The client (re)subscribes; the server sends SystemInfoEvent (or, sometimes, does not)."""
        assert self.decider is not None
        self.server_subscription = self.durable
        self.connected = True
        self.judge(self.decider.connected("broker:61613"))
        if self.loss_pending_notice:
            self.loss_pending_notice = False
            self.judge(self.decider.missed_events({}))
        if system_info:
            self.judge(self.decider.system_info(**self.identity))
        else:
            self.lost = True  # a restart or a switchover can no longer be ruled out
            self.judge(self.decider.system_info_overdue(5.0))
        self.persist()
        self.settled = True

    @precondition(lambda self: self.connected)
    @rule()
    def disconnect(self) -> None:
        """The link drops (the durable subscription stays on the server)."""
        self.connected = self.settled = False
        if not self.durable:
            self.lost = True
            self.server_subscription = False

    # -- the server

    @rule(change=st.sampled_from(["restart", "switchover", "remove", "overflow"]))
    def server(self, change: str) -> None:
        """Something happens on the server side (one rule, so that it is not drawn four times as often)."""
        if change == "restart":  # sysStartTime and jmsStartTime change; clients are dropped
            self.identity = {**self.identity, "sys_start_time": self.identity["sys_start_time"] + "1"}
            self.identity["jms_start_time"] += "1"
            self.lost = True
            self.connected = self.settled = False
        elif change == "switchover":  # the standby becomes the primary; clients are dropped
            self.identity = {**self.identity, "primary_ip": self.identity["primary_ip"] + "0"}
            self.identity["jms_start_time"] += "2"
            self.lost = True
            self.connected = self.settled = False
        elif change == "remove" and self.server_subscription and not self.connected:
            # An administrator removes the durable subscription while the client is away.
            self.server_subscription = False
            self.lost = True
            self.loss_pending_notice = True
        elif change == "overflow" and self.settled:
            # The server discards events for a slow client and says so while connected.
            assert self.decider is not None
            self.lost = True
            self.judge(self.decider.missed_events({}))
            self.persist()

    # -- the application

    @precondition(lambda self: self.settled and self.owed and not self.requested)
    @rule()
    def request_resync(self) -> None:
        """The owed resync becomes a request (after coalescing, once connected and the identity judged)."""
        assert self.decider is not None
        self.epoch += 1
        self.decider.requested(self.epoch)
        self.requested = True
        self.persist()

    @precondition(lambda self: self.settled and self.requested)
    @rule()
    def complete_resync(self) -> None:
        """The application rebuilt its copy from the XML API and the held events were replayed."""
        assert self.decider is not None
        self.synced_blind = self.decider.baseline.sys_start_time is None
        self.decider.completed(self.epoch)
        self.persist()
        self.requested = self.owed = False
        self.lost = False

    @invariant()
    def never_a_missed_resync(self) -> None:
        if self.settled:
            assert not self.lost or self.owed, "events may be lost and no resync is owed"


TestWorld = World.TestCase
TestWorld.settings = settings(max_examples=1000, stateful_step_count=30, deadline=None)


class TestSchedule:
    def trigger(self, reason: ResyncReason, **evidence: str) -> Trigger:
        return Trigger(reason=reason, evidence=evidence)

    def test_nothing_pending_nothing_due(self) -> None:
        """No trigger, no request."""
        schedule = ResyncSchedule(coalesce_window=1.0, min_interval=10.0)
        assert schedule.due_at() is None
        assert schedule.take(100.0) is None

    def test_triggers_in_the_window_coalesce(self) -> None:
        """Triggers within the window become one request; the main reason is the most fundamental."""
        schedule = ResyncSchedule(coalesce_window=1.0, min_interval=10.0, last_epoch=4)
        schedule.add(self.trigger(ResyncReason.MISSED_EVENTS, a="1"), 100.0)
        schedule.add(self.trigger(ResyncReason.SERVER_RESTARTED, b="2"), 100.5)

        assert schedule.take(100.9) is None  # the window is still open
        due = schedule.take(101.0)
        assert due is not None
        assert due.epoch == 5
        assert due.reason is ResyncReason.SERVER_RESTARTED
        assert due.reasons == {ResyncReason.SERVER_RESTARTED, ResyncReason.MISSED_EVENTS}
        assert due.evidence == {"a": "1", "b": "2"}
        assert due.aborts is None
        assert schedule.outstanding == 5
        assert not schedule.pending

    def test_minimum_interval_between_requests(self) -> None:
        """A request comes at least min_interval after the previous one; triggers keep coalescing."""
        schedule = ResyncSchedule(coalesce_window=0.5, min_interval=10.0)
        schedule.add(self.trigger(ResyncReason.INITIAL), 0.0)
        first = schedule.take(0.5)
        assert first is not None
        schedule.settle(first.epoch)
        schedule.add(self.trigger(ResyncReason.MISSED_EVENTS), 2.0)
        schedule.add(self.trigger(ResyncReason.MISSED_EVENTS), 6.0)

        assert schedule.due_at() == 10.5
        assert schedule.take(10.4) is None
        second = schedule.take(10.5)
        assert second is not None
        assert (second.epoch, second.reasons) == (2, frozenset({ResyncReason.MISSED_EVENTS}))

    def test_a_trigger_during_a_resync_replaces_it(self) -> None:
        """The next request says which outstanding one it aborts; settling the old one changes nothing."""
        schedule = ResyncSchedule(coalesce_window=0.0, min_interval=0.0)
        schedule.add(self.trigger(ResyncReason.INITIAL), 0.0)
        first = schedule.take(0.0)
        assert first is not None
        schedule.add(self.trigger(ResyncReason.SWITCHOVER), 1.0)
        second = schedule.take(1.0)

        assert second is not None
        assert second.aborts == first.epoch
        assert schedule.settle(first.epoch) is False
        assert schedule.outstanding == second.epoch
        assert schedule.settle(second.epoch) is True
        assert schedule.outstanding is None

    @pytest.mark.parametrize(("window", "interval"), [(-1.0, 0.0), (0.0, -1.0)])
    def test_negative_times_refused(self, window: float, interval: float) -> None:
        """Negative windows are configuration errors."""
        with pytest.raises(ValueError, match=">= 0"):
            ResyncSchedule(coalesce_window=window, min_interval=interval)

    @given(
        st.lists(
            st.tuples(st.sampled_from(list(ResyncReason)), st.floats(0, 5, allow_nan=False)),
            min_size=1,
            max_size=20,
        ),
        st.floats(0, 3, allow_nan=False),
        st.floats(0, 30, allow_nan=False),
    )
    def test_every_trigger_ends_up_in_exactly_one_request(
        self, triggers: list[tuple[ResyncReason, float]], window: float, interval: float
    ) -> None:
        """However triggers and polls interleave, each reason is in a request, epochs rise by one, and two
        requests are never closer than the minimum interval."""
        schedule = ResyncSchedule(coalesce_window=window, min_interval=interval)
        now, requests, seen = 0.0, [], set()
        for reason, gap in triggers:
            now += gap
            schedule.add(self.trigger(reason), now)
            seen.add(reason)
            due = schedule.take(now)
            if due is not None:
                requests.append((now, due))
        while schedule.pending:
            at = schedule.due_at()
            assert at is not None
            due = schedule.take(at)
            assert due is not None
            requests.append((at, due))

        assert [d.epoch for _, d in requests] == list(range(1, len(requests) + 1))
        assert set().union(*(d.reasons for _, d in requests)) == seen
        times = [t for t, _ in requests]
        assert all(b - a >= interval - 1e-9 for a, b in itertools.pairwise(times))


@pytest.mark.parametrize(
    ("expect_system_info", "reason"), [(True, ResyncReason.SERVER_STATE_UNKNOWN), (False, None)]
)
def test_the_first_identity_after_a_blind_resync(
    expect_system_info: bool, reason: ResyncReason | None
) -> None:
    """Directly, a resync that completed before any SystemInfoEvent was seen cannot be trusted against the first
    identity (the server may have restarted in between). Through a bridge no resync waits for one: the first
    identity is taken as it is, a restart before it having shown as a gap in the keep-alives."""
    subscription = Subscription(client_id="oss@1", topic="t", selector="s", durable=True)
    blind = Baseline(client_id="oss@1", topic="t", selector="s", durable=True, resync_epoch=1, in_sync=True)
    rules = ResyncRules(subscription, blind, expect_system_info=expect_system_info)
    rules.connected("broker:61613")

    trigger = rules.system_info(sys_start_time="1", jms_start_time="1", primary_ip="10.0.0.1")

    assert (trigger.reason if trigger else None) is reason
    assert rules.baseline.sys_start_time == "1"
