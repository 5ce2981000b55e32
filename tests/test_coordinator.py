"""ResyncCoordinator without a broker: plain values in, requests and held events out, the state file on disk."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import types
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from nfmp_client import (
    ClientConfig,
    EventHeader,
    JmsMissedEvents,
    KeepAliveEvent,
    ObjectCreation,
    ObjectDeletion,
    ResyncMode,
    ResyncReason,
    ResyncRequest,
    StateFileMismatch,
    SystemInfoEvent,
)
from nfmp_client._coordinator import ResyncCoordinator, Settled, _pack, _tagged, _unpack, answer
from nfmp_client.codec import decode_message, encode_event
from nfmp_client.state import StateStore

from .strategies import EVENT_STRATEGIES, named_alarm

NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)
INFO = SystemInfoEvent(sys_start_time="1", jms_start_time="2", sys_primary_ip="192.0.2.10")
INFO_1 = SystemInfoEvent(sys_start_time="1", jms_start_time="1", sys_primary_ip="192.0.2.10")


def deletion(number: int) -> ObjectDeletion:
    return ObjectDeletion(header=EventHeader(event_name="ObjectDeletion"), object_full_name=f"alarm-{number}")


class Harness:
    """A coordinator, what it asked the application, and what it settled (as the client would relay)."""

    def __init__(self, tmp_path: Path, *, defer: bool = True, fail: bool = False, **overrides: Any) -> None:
        settings: dict[str, Any] = {
            "servers": ["broker:61613"],
            "client_id": "oss1@1",
            "state_dir": tmp_path,
            "resync_coalesce_window": 0.0,
            "resync_min_interval": 0.0,
        }
        settings.update(overrides)
        self.config = ClientConfig(**settings)
        self.asked: list[ResyncRequest] = []
        self.verdicts: list[Settled] = []
        self.defer, self.fail = defer, fail
        self.coordinator = ResyncCoordinator(self.config, ask=self.ask, settle=self.verdicts.append)

    def ask(self, request: ResyncRequest) -> None:
        answer(self.application, request, "oss1@1")  # as the client does, on a thread of its own

    def application(self, request: ResyncRequest) -> None:
        self.asked.append(request)
        if self.fail:
            raise RuntimeError("retrieval failed")
        if self.defer:
            request.defer()

    def up(self, now: float = 0.0) -> ResyncRequest:
        """Start, connect, SystemInfoEvent: the INITIAL request."""
        self.coordinator.begin(now)
        self.coordinator.connected("broker:61613", now)
        self.coordinator.observe(INFO, now)
        self.coordinator.tick(now)
        return self.asked[-1]

    def settle(self, now: float = 1.0) -> list[Any]:
        """Relay the verdicts, then (as the client does once it handed them over) say the replay is done."""
        held: list[Any] = []
        while self.verdicts:
            held += self.coordinator.settled(self.verdicts.pop(0), now)
            self.coordinator.replayed()
        return held


def test_events_wait_for_the_retrieval_then_come_in_order_with_its_epoch(tmp_path: Path) -> None:
    """HOLD_AND_REPLAY: before the request events flow (with the old epoch); from the request until it
    completes they are held; then replayed in order with its epoch."""
    harness = Harness(tmp_path)
    coordinator = harness.coordinator
    coordinator.begin(0.0)
    coordinator.connected("broker:61613", 0.0)
    before = coordinator.admit(deletion(0), 0.0)
    assert before is not None  # no request yet: delivered, epoch 0
    assert before.header.resync_epoch == 0
    coordinator.observe(INFO, 0.0)
    coordinator.tick(0.0)
    request = harness.asked[-1]

    assert [coordinator.admit(deletion(n), 0.5) for n in (1, 2, 3)] == [None] * 3
    assert coordinator.held == 3
    request.complete()
    replayed = harness.settle()

    assert [e.object_full_name for e in replayed] == ["alarm-1", "alarm-2", "alarm-3"]
    assert {e.header.resync_epoch for e in replayed} == {request.epoch}
    assert coordinator.in_sync
    live = coordinator.admit(deletion(4), 2.0)
    assert live is not None
    assert live.header.resync_epoch == request.epoch


def test_apply_live_never_holds(tmp_path: Path) -> None:
    """APPLY_LIVE: events are delivered during the resync, tagged with it."""
    harness = Harness(tmp_path, resync_mode=ResyncMode.APPLY_LIVE)
    request = harness.up()
    event = harness.coordinator.admit(deletion(1), 0.5)

    assert event is not None
    assert event.header.resync_epoch == request.epoch


def test_a_returning_callback_completes_and_a_raising_one_fails(tmp_path: Path) -> None:
    """Without defer(), returning completes; raising fails, and the same reason is asked again."""
    completing = Harness(tmp_path / "a", defer=False)
    completing.up()
    assert completing.verdicts == [Settled(1, True, "")]

    failing = Harness(tmp_path / "b", fail=True)
    failing.up()
    assert failing.verdicts == [Settled(1, False, "RuntimeError: retrieval failed")]
    failing.settle()
    failing.fail = False
    failing.coordinator.tick(2.0)
    retry = failing.asked[-1]
    assert (retry.epoch, retry.reason) == (2, ResyncReason.INITIAL)
    assert retry.evidence["retry"] == "RuntimeError: retrieval failed"


def test_a_newer_trigger_replaces_the_request_and_drops_what_was_held(tmp_path: Path) -> None:
    """JmsMissedEvents during a resync: aborted; the next request starts holding afresh; the old epoch's
    completion is ignored."""
    harness = Harness(tmp_path)
    first = harness.up()
    harness.coordinator.admit(deletion(1), 0.1)
    harness.coordinator.observe(JmsMissedEvents(), 0.2)
    harness.coordinator.tick(0.2)
    second = harness.asked[-1]

    assert first.aborted
    assert second.reason is ResyncReason.MISSED_EVENTS
    assert harness.coordinator.held == 0
    first.complete()
    assert harness.settle() == []
    assert not harness.coordinator.in_sync
    harness.coordinator.admit(deletion(2), 0.3)
    second.complete()
    assert [e.object_full_name for e in harness.settle()] == ["alarm-2"]


def test_no_request_before_the_identity_is_known(tmp_path: Path) -> None:
    """Connected but no SystemInfoEvent yet: nothing is asked until it comes or the window ends."""
    harness = Harness(tmp_path, system_info_timeout=5.0)
    coordinator = harness.coordinator
    coordinator.begin(0.0)
    coordinator.connected("broker:61613", 0.0)
    coordinator.tick(1.0)
    assert harness.asked == []
    assert coordinator.deadline() == 5.0

    coordinator.tick(5.0)
    request = harness.asked[-1]
    assert request.reasons == {ResyncReason.INITIAL, ResyncReason.SERVER_STATE_UNKNOWN}


def test_unknown_state_can_be_only_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """resync_on_unknown_state=False: a missing SystemInfoEvent is a warning, not a request."""
    harness = Harness(tmp_path, resync_on_unknown_state=False, system_info_timeout=1.0)
    harness.up()
    harness.asked[-1].complete()
    harness.settle()
    harness.coordinator.connected("broker:61613", 10.0)
    harness.coordinator.tick(11.0)

    assert len(harness.asked) == 1
    assert "no SystemInfoEvent within 1 s" in caplog.text


def test_the_baseline_is_on_disk_and_survives_a_new_process(tmp_path: Path) -> None:
    """The state file holds the identity and epoch; a new coordinator (process) asks nothing when all holds."""
    harness = Harness(tmp_path)
    harness.up().complete()
    harness.settle()
    saved = StateStore(tmp_path).load("oss1@1")
    assert saved is not None
    assert (saved.sys_start_time, saved.resync_epoch, saved.in_sync) == ("1", 1, True)
    assert saved.last_event_at is None  # no event yet
    harness.coordinator.admit(deletion(1), 2.0)
    harness.coordinator.close()
    stopped = StateStore(tmp_path).load("oss1@1")
    assert stopped is not None
    assert stopped.last_event_at is not None

    again = Harness(tmp_path)
    again.coordinator.begin(0.0)
    again.coordinator.connected("broker:61613", 0.0)
    again.coordinator.observe(INFO, 0.0)
    again.coordinator.tick(0.0)
    assert again.asked == []
    assert again.coordinator.in_sync


def test_another_clients_state_file_is_refused(tmp_path: Path) -> None:
    """begin() raises StateFileMismatch instead of adopting another client id's baseline."""
    Harness(tmp_path).up()
    store = StateStore(tmp_path)
    store.path_for("oss1@1").rename(store.path_for("oss2@1"))

    with pytest.raises(StateFileMismatch):
        Harness(tmp_path, client_id="oss2@1").coordinator.begin(0.0)


def test_the_hold_is_bounded_in_bytes_too(tmp_path: Path) -> None:
    """hold_limit_bytes: the message that would pass it starts the resync over (HOLD_OVERFLOW), the hold
    emptied, whatever the count."""
    harness = Harness(tmp_path, hold_limit_bytes=3000)
    first = harness.up()
    coordinator = harness.coordinator
    for number in range(3):
        assert coordinator.admit(deletion(number), 0.1, 1000) is None
    assert coordinator.held_bytes == 3000

    coordinator.admit(deletion(3), 0.2, 1000)
    coordinator.tick(0.2)

    assert first.aborted
    assert harness.asked[-1].reason is ResyncReason.HOLD_OVERFLOW
    assert harness.asked[-1].evidence["hold_limit_bytes"] == "3000"
    assert coordinator.held_bytes == 0


def test_a_failing_resync_is_retried_later_each_time(tmp_path: Path) -> None:
    """A resync failing again and again is asked after 10, 20, 40 s, then every 60 s (the cap), not every
    resync_min_interval forever; a success resets the delay."""
    harness = Harness(tmp_path, fail=True, resync_min_interval=10.0, resync_retry_max_delay=60.0)
    harness.up(0.0)
    coordinator = harness.coordinator
    asked_at = [0.0]
    now = 0.0
    while len(asked_at) < 6:
        harness.settle(now)
        now = coordinator.deadline()
        coordinator.tick(now)
        asked_at.append(now)

    assert [b - a for a, b in itertools.pairwise(asked_at)] == [10.0, 20.0, 40.0, 60.0, 60.0]
    harness.fail = False
    harness.settle(now)
    coordinator.tick(coordinator.deadline())
    harness.asked[-1].complete()
    harness.settle(coordinator.deadline())
    assert coordinator.in_sync


# ---------------------------------------------------------------------------------------- crashes (kill -9)

_CHILD = """
import os, signal, sys
from pathlib import Path
from nfmp_client import ClientConfig, EventHeader, ObjectDeletion, SystemInfoEvent
from nfmp_client._coordinator import ResyncCoordinator, Settled

state_dir, point = Path(sys.argv[1]), sys.argv[2]
config = ClientConfig(servers=["broker:61613"], client_id="oss1@1", state_dir=state_dir,
                      resync_coalesce_window=0.0, resync_min_interval=0.0)
asked, verdicts = [], []

def ask(request):
    asked.append(request)
    request.defer()

coordinator = ResyncCoordinator(config, ask=ask, settle=verdicts.append)

def info(start):
    return SystemInfoEvent(sys_start_time=start, jms_start_time=start, sys_primary_ip="192.0.2.10")

def complete(replay_count=None):
    asked[-1].complete()
    held = coordinator.settled(verdicts.pop(), 1.0)
    if replay_count is None:
        coordinator.replayed()
    return held

def die():
    os.kill(os.getpid(), signal.SIGKILL)

coordinator.begin(0.0)
coordinator.connected("broker:61613", 0.0)
coordinator.observe(info("1"), 0.0)
coordinator.tick(0.0)
complete()  # in sync with the server of sysStartTime 1
if point == "in-sync":
    die()
coordinator.observe(info("2"), 2.0)  # the server restarted: the trigger (its message acknowledged next)
if point == "after-trigger":
    die()
coordinator.tick(2.0)  # the request: the application starts its retrieval
if point == "during-retrieval":
    die()
for n in range(3):
    coordinator.admit(ObjectDeletion(header=EventHeader(event_name="ObjectDeletion"), object_full_name=str(n)), 2.5)
held = complete(replay_count=1)  # the retrieval is done; the held events are being handed over...
if point == "during-replay":
    die()
coordinator.replayed()  # ...all of them
die()
"""


class TestCrash:
    @pytest.mark.parametrize(
        ("point", "owed"),
        [
            ("in-sync", False),
            ("after-trigger", True),
            ("during-retrieval", True),
            ("during-replay", True),
            ("replayed", False),
        ],
    )
    def test_the_next_process_resyncs_exactly_when_one_was_owed(
        self, tmp_path: Path, point: str, owed: bool
    ) -> None:
        """kill -9 at each point of a server restart's resync: the next process asks for a resync (INCOMPLETE,
        with the reasons it had) exactly when one was owed, never otherwise."""
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, str(tmp_path), point],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert child.returncode == -signal.SIGKILL, child.stderr

        harness = Harness(tmp_path)
        coordinator = harness.coordinator
        coordinator.begin(10.0)
        coordinator.connected("broker:61613", 10.0)
        coordinator.observe(
            SystemInfoEvent(sys_start_time="2", jms_start_time="2", sys_primary_ip="192.0.2.10")
            if point != "in-sync"
            else INFO_1,
            10.0,
        )
        coordinator.tick(10.0)

        if not owed:
            assert harness.asked == []
            assert coordinator.in_sync
            return
        (request,) = harness.asked
        assert request.reason is ResyncReason.INCOMPLETE
        assert "server-restarted" in request.evidence["owed"]
        assert request.evidence["new_sys_start_time"] == "2"


def test_a_keepalive_alone_is_written_without_a_sync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each keep-alive's time is on disk before it is acknowledged, but only a write that changes more than
    the keep-alive is synced: one fsync per keep-alive would cost every client a disk flush per period."""
    harness = Harness(tmp_path, defer=False)
    harness.up()
    harness.settle()
    writes: list[bool] = []
    save = StateStore.save

    def recorded(store: StateStore, baseline: Any, *, now: datetime, sync: bool = True) -> Any:
        writes.append(sync)
        return save(store, baseline, now=now, sync=sync)

    monkeypatch.setattr(StateStore, "save", recorded)
    for second in range(5):
        keepalive = KeepAliveEvent(
            header=EventHeader(os_time=datetime(2026, 12, 1, 8, 0, second, tzinfo=timezone.utc))
        )
        harness.coordinator.observe(keepalive, 2.0 + second)
    harness.coordinator.observe(
        SystemInfoEvent(sys_start_time="2", jms_start_time="2", sys_primary_ip="10.0.0.1"), 8.0
    )

    assert writes == [False] * 5 + [True]
    saved = StateStore(tmp_path).load("oss1@1")
    assert saved is not None
    assert saved.last_keepalive == datetime(2026, 12, 1, 8, 0, 4, tzinfo=timezone.utc)


def test_an_event_is_tagged_in_place_once_and_copied_after() -> None:
    """A fresh event (never tagged) gets its epoch in place; one tagged already is copied, never changed,
    since the application may hold it."""
    fresh = ObjectDeletion(header=EventHeader(event_name="ObjectDeletion"), object_full_name="x")
    assert _tagged(fresh, 3) is fresh
    assert fresh.header.resync_epoch == 3

    again = _tagged(fresh, 4)
    assert again is not fresh
    assert (fresh.header.resync_epoch, again.header.resync_epoch) == (3, 4)
    assert again == fresh  # the epoch is not part of an event's equality


@given(st.one_of(*EVENT_STRATEGIES.values()))
@settings(max_examples=200)
def test_a_held_event_comes_back_equal_and_smaller(event: Any) -> None:
    """A held event is kept packed and comes back equal, its epoch included."""
    packed = _pack(event)
    assert isinstance(packed, bytes)
    back = _unpack(packed)
    assert back == event
    assert back.header.resync_epoch == event.header.resync_epoch


def test_an_alarm_is_held_in_less_than_half_the_bytes_counted_for_it() -> None:
    """Held, an alarm takes less than half of what is counted against hold_limit_bytes for it (its message
    as received), so the limit bounds the hold's memory with room to spare."""
    message = encode_event(named_alarm("held"))
    headers = {**message.headers, "message-id": "ID:host-1-2-3:1:1:1:42", "destination": "/topic/t"}
    event = decode_message(headers, message.body)
    assert isinstance(event, ObjectCreation)
    packed = _pack(event)
    assert isinstance(packed, bytes)
    assert len(packed) < (len(message.body) + 64 * len(headers)) / 2


def test_an_event_that_cannot_be_pickled_is_held_as_it_is() -> None:
    """Not one the codec made (a mapping proxy as attributes): held unpacked, handed back the same."""
    event = ObjectDeletion(object_full_name="x", attributes=types.MappingProxyType({"a": "b"}))
    assert _pack(event) is event
    assert _unpack(event) is event
