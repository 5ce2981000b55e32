"""The resync coordinator: the rules, the schedule and the persisted baseline, run by the client's supervisor.

Data flows one way: the client hands it what happened (a connection, a system event, a data event, the time,
the application's verdict on a request); it decides (``_resync``), keeps the baseline on disk (``_state``),
asks the application for a resync through the handler, and tells the client which data events to deliver now
and which were held. It owns no thread: every method runs on the supervisor thread, except that the
application may settle a request from any thread (that only enqueues a message for the supervisor).
"""

from __future__ import annotations

import logging
import os
import pickle
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final, final

import attrs
from attrs import frozen

from ._clock import utc_now
from ._config import ClientConfig, ResyncMode
from ._events import DataEvent, JmsMissedEvents, KeepAliveEvent, SystemEvent, SystemInfoEvent
from ._resync import Due, ResyncReason, ResyncRequest, ResyncRules, ResyncSchedule, Subscription, Trigger
from ._state import Baseline, StateError, StateLock, StateStore

__all__ = ["ResyncCoordinator", "Settled", "answer", "default_state_dir"]

log = logging.getLogger("nfmp_client.resync")

_NO_DEADLINE: Final = float("inf")


def default_state_dir() -> Path:
    """Return ``$XDG_STATE_HOME/nfmp_client``, or ``~/.local/state/nfmp_client``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "nfmp_client"


@frozen
class Settled:
    """The application finished the request of *epoch*: *ok*, or failed because *why*."""

    epoch: int
    ok: bool
    why: str


def _pack(event: DataEvent) -> bytes | DataEvent:
    # A held event as compact bytes: about 1 KB for a typical 2 KB alarm against 3.7 KB decoded (held events
    # can be many: a retrieval takes minutes, and events keep coming). Packed and unpacked by this process
    # only; an event that cannot be pickled (not one the codec made) is held as it is.
    try:
        return zlib.compress(pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL), 1)
    except (pickle.PicklingError, TypeError, AttributeError):
        return event


def _unpack(held: bytes | DataEvent) -> DataEvent:
    if type(held) is bytes:
        event: DataEvent = pickle.loads(zlib.decompress(held))  # noqa: S301  # this process's own bytes
        return event
    return held  # type: ignore[return-value]  # not bytes: an event held as it is


def _tagged(event: DataEvent, epoch: int) -> DataEvent:
    header = event.header
    if header.resync_epoch == epoch:
        return event
    if header.resync_epoch == 0:
        # Never tagged: an event the codec made for this client, which no one else holds yet (every event is
        # tagged before the application sees it, once a resync happened). Set in place: two copies of a
        # frozen event per message cost more than the rest of the delivery path.
        object.__setattr__(header, "resync_epoch", epoch)
        return event
    return attrs.evolve(event, header=attrs.evolve(header, resync_epoch=epoch))


@final
class ResyncCoordinator:
    """Decides when the application must resync, asks it, and holds data events meanwhile."""

    def __init__(
        self,
        config: ClientConfig,
        *,
        ask: Callable[[ResyncRequest], None],
        settle: Callable[[Settled], None],
    ) -> None:
        """Prepare; nothing is read before :meth:`begin`.

        Args:
            config: The client configuration.
            ask: Hands a request to the application and returns at once (the client runs the application's
                ``on_resync_required`` elsewhere, through :func:`answer`); the verdict comes through the
                request (``complete()`` / ``fail()``).
            settle: Receives the application's verdicts (thread-safe: the client's inbox).
        """
        self._config = config
        self._ask_handler = ask
        self._settle = settle
        self._store = StateStore(config.state_dir or default_state_dir())
        self._lock: StateLock | None = None
        self._subscription = Subscription(
            client_id=config.client_id,
            topic=config.topic,
            selector=config.selector,
            durable=config.durable,
            subscription_name=config.durable_name,
            queue=config.queue,
        )
        self._rules = self._rules_for(None)
        self._schedule = ResyncSchedule(
            coalesce_window=config.resync_coalesce_window, min_interval=config.resync_min_interval
        )
        self._request: ResyncRequest | None = None
        self._holding = False  # from a request until a resync completes (a failed one keeps holding)
        self._held: list[bytes | DataEvent] = []  # packed (see _pack), in arrival order
        self._held_bytes = 0
        self._failures = 0  # resyncs failed in a row: each retry waits longer
        self._completing: int | None = None  # the epoch settled, its held events being replayed
        self._owed_since_settle: list[Trigger] = []  # triggers during a replay: still owed after it
        self._replay_at = _NO_DEADLINE  # when a failed replay is handed over again
        self._system_info_due = _NO_DEADLINE
        self._connected = False
        self._saved: Baseline | None = None  # the baseline last written (saved_at aside)
        self._by_reason: dict[str, int] = {}
        self._last_event_at: datetime | None = None  # when the last data event came, if since the last write
        # Whether a resync asked since the stream last resumed (a connection, the end of a silence) or since
        # the last keep-alive covers a gap in the keep-alives: its retrieval comes after what the gap lost.
        self._gap_covered = False
        self._heard_at: float | None = None  # when the last message came

    # ------------------------------------------------------------------------------------------ reading

    @property
    def request(self) -> ResyncRequest | None:
        """The request the application is working on, or None."""
        return self._request

    @property
    def epoch(self) -> int:
        """The epoch of the last resync requested (0: none yet)."""
        return self._rules.baseline.resync_epoch

    @property
    def in_sync(self) -> bool:
        """Whether the last requested resync completed and nothing calls for another yet."""
        return self._rules.baseline.in_sync and self._request is None and not self._schedule.pending

    @property
    def last_server(self) -> str | None:
        """The server the durable subscription was last used on (this run's, else the saved baseline's)."""
        return self._rules.baseline.server

    def requests_by_reason(self) -> dict[str, int]:
        """Return the resync requests of this process, by main reason."""
        return dict(self._by_reason)

    @property
    def held(self) -> int:
        """Data events held for replay now."""
        return len(self._held)

    # ------------------------------------------------------------------------------------------ inputs

    def begin(self, now: float) -> None:
        """Load the last run's baseline and judge it (the process starts).

        Raises:
            StateFileLocked: Another client (this process or another) uses this client id and state directory.
            StateError: The state file exists but cannot be used (corrupt, another client id's, unreadable).
        """
        if self._lock is None or not self._lock.held:
            self._lock = self._store.lock(self._config.client_id)  # one client per baseline, until close()
        try:
            baseline = self._store.load(self._config.client_id)
        except StateError:
            self._lock.release()
            raise
        self._rules = self._rules_for(baseline)
        self._schedule = ResyncSchedule(
            coalesce_window=self._config.resync_coalesce_window,
            min_interval=self._config.resync_min_interval,
            last_epoch=baseline.resync_epoch if baseline else 0,
        )
        self._request, self._holding, self._held, self._held_bytes = None, False, [], 0
        self._trigger(self._rules.start(), now)
        self._persist()

    def connected(self, server: str, now: float, *, moved_from: str | None = None) -> None:
        """Record a (re)subscription on *server*; a SystemInfoEvent is now expected.

        *moved_from*: the durable subscription was last used on that other server; the client discarded any
        subscription of its name here and subscribed afresh.
        """
        self._connected = True
        self._system_info_due = (
            _NO_DEADLINE if self._config.via_bridge else now + self._config.system_info_timeout
        )
        # A resync still to be asked is asked on this connection, so its retrieval covers whatever a gap
        # before it lost; one asked before it (perhaps retrieving still) does not.
        self._gap_covered, self._heard_at = self._schedule.pending, now
        self._trigger(self._rules.connected(server, moved_from=moved_from), now)
        self._persist()

    def disconnected(self) -> None:
        """Record that the connection is gone (no request is made until the next one is up)."""
        self._connected = False
        self._system_info_due = _NO_DEADLINE

    def postpone_system_info(self, seconds: float) -> None:
        """Let *seconds* not count against ``system_info_timeout``: messages were waiting to be delivered.

        After a durable reconnect the broker delivers the stored backlog before the server's fresh
        SystemInfoEvent; a backlog that takes longer to drain than the window says nothing about the server.
        """
        if self._system_info_due != _NO_DEADLINE and seconds > 0:
            self._system_info_due += seconds

    def observe(self, event: SystemEvent, now: float) -> None:
        """Judge a system event (SystemInfoEvent, JmsMissedEvents and KeepAliveEvent matter)."""
        self._heard(now)
        if isinstance(event, SystemInfoEvent):
            self._system_info_due = _NO_DEADLINE
            trigger = self._rules.system_info(
                sys_start_time=event.sys_start_time,
                jms_start_time=event.jms_start_time,
                primary_ip=event.sys_primary_ip,
            )
            self._trigger(trigger, now)
            self._persist()
        elif isinstance(event, JmsMissedEvents):
            self._trigger(self._rules.missed_events(event.attributes), now)
        elif isinstance(event, KeepAliveEvent):
            trigger = self._rules.keepalive(event.header.os_time)
            if trigger is not None and self._gap_covered:
                log.info(
                    "%s: keep-alives missing for %s; the resync asked since covers them",
                    self._config.client_id,
                    trigger.evidence.get("gap", ""),
                )
            else:
                self._trigger(trigger, now)
            self._gap_covered = self._schedule.pending  # a new interval: only what is still due covers it
            self._persist()

    def admit(self, event: DataEvent, now: float, size: int = 0) -> DataEvent | None:
        """Return *event* tagged with its epoch to deliver now, or None if it is held for replay.

        *size*: the bytes of the message as received, counted against ``hold_limit_bytes`` while held.
        """
        self._last_event_at = utc_now()
        self._heard(now)
        if not self._holding or self._config.resync_mode is ResyncMode.APPLY_LIVE:
            return _tagged(event, self.epoch)
        config = self._config
        if len(self._held) >= config.hold_limit or self._held_bytes + size > config.hold_limit_bytes:
            log.warning(
                "%s: more than %d events or %d bytes arrived during resync #%d: it starts over",
                config.client_id,
                config.hold_limit,
                config.hold_limit_bytes,
                self.epoch,
            )
            self._held, self._held_bytes = [], 0
            self._trigger(
                Trigger(
                    reason=ResyncReason.HOLD_OVERFLOW,
                    evidence={
                        "hold_limit": str(config.hold_limit),
                        "hold_limit_bytes": str(config.hold_limit_bytes),
                    },
                ),
                now,
            )
            return None
        self._held.append(_pack(event))  # tagged when replayed, with the epoch of the resync it waited for
        self._held_bytes += size
        return None

    @property
    def held_bytes(self) -> int:
        """Bytes (as received) of the data events held for replay now."""
        return self._held_bytes

    def deadline(self) -> float:
        """Return the monotonic time of the next thing to do (a SystemInfoEvent overdue, a request due)."""
        due = self._schedule.due_at() if self._ready() else None
        return min(self._system_info_due, _NO_DEADLINE if due is None else due, self._replay_at)

    def tick(self, now: float) -> bool:
        """Do what is due at *now*: judge a missing SystemInfoEvent, ask for a resync (return whether)."""
        if now >= self._system_info_due:
            self._system_info_due = _NO_DEADLINE
            trigger = self._rules.system_info_overdue(self._config.system_info_timeout)
            if trigger is not None and self._config.resync_on_unknown_state:
                self._trigger(trigger, now)
            elif trigger is not None:
                log.warning(
                    "%s: no SystemInfoEvent within %g s of connecting (resync_on_unknown_state is off)",
                    self._config.client_id,
                    self._config.system_info_timeout,
                )
        if self._ready():
            due = self._schedule.take(now)
            if due is not None:
                self._ask(due)
                return True
        return False

    def settled(self, verdict: Settled, now: float) -> list[DataEvent]:
        """Apply the application's verdict; return the held events to hand to ``on_event`` now, in order."""
        if not self._schedule.settle(verdict.epoch) or self._request is None:
            log.debug("%s: resync #%d settled after it was replaced", self._config.client_id, verdict.epoch)
            return []
        request, self._request = self._request, None
        if not verdict.ok:
            # Retried, each time later (resync_min_interval doubling, up to resync_retry_max_delay): a
            # retrieval that keeps failing (the XML API down) is not hammered every few seconds for hours.
            self._failures += 1
            delay = min(
                self._config.resync_min_interval * 2 ** (self._failures - 1),
                self._config.resync_retry_max_delay,
            )
            log.error(
                "%s: resync #%d failed (%d in a row): %s; another follows in %.1f s",
                self._config.client_id,
                request.epoch,
                self._failures,
                verdict.why,
                delay,
            )
            self._trigger(
                Trigger(reason=request.reason, evidence={**request.evidence, "retry": verdict.why}), now
            )
            self._schedule.hold_off(now + delay)
            return []  # events keep being held until a resync completes
        self._failures = 0
        held = [_tagged(_unpack(event), request.epoch) for event in self._held]
        self._held, self._held_bytes, self._holding = [], 0, False
        self._completing = request.epoch  # complete once the held events are replayed: see replayed()
        self._owed_since_settle = []
        log.info(
            "%s: resync #%d complete; %d held events to replay",
            self._config.client_id,
            request.epoch,
            len(held),
        )
        return held

    def replayed(self) -> None:
        """Record the completion of the resync whose held events were all handed over (after :meth:`settled`).

        Written only now: a process that dies during the replay has acknowledged held events the application
        did not get, and the next one must resync again.
        """
        epoch, self._completing = self._completing, None
        later, self._owed_since_settle = self._owed_since_settle, []
        if epoch is None:
            return
        self._rules.completed(epoch)
        for trigger in later:  # came during the replay: not covered by this resync, still owed
            self._rules.owe(trigger)
        self._persist()

    def undeliverable(self, evidence: dict[str, str], now: float) -> None:
        """Resync: an event was given up after the handler kept raising on it (the copy lacks it)."""
        self._trigger(Trigger(reason=ResyncReason.UNDELIVERABLE, evidence=evidence), now)

    def replay_failed(self, remaining: list[DataEvent], now: float, delay: float) -> None:
        """Hold *remaining*, the rest of a replay whose first event the handler raised on, again, in order.

        They were acknowledged when they were held, so the broker cannot deliver them again: they are held
        here, ahead of what arrives meanwhile, and handed over again *delay* seconds later
        (:meth:`replay_due`), as the stream retries a failing message. The resync completes once all are.
        """
        # Counted against hold_limit (their bytes no longer are).
        self._held = [*(_pack(event) for event in remaining), *self._held]
        self._holding = True
        self._replay_at = now + delay

    def replay_due(self, now: float) -> list[DataEvent] | None:
        """Return the held events of a failed replay to hand over again once its delay is over, else None."""
        if now < self._replay_at:
            return None
        self._replay_at = _NO_DEADLINE
        if self._completing is None:  # a newer request took over: its completion replays them
            return None
        held = [_tagged(_unpack(event), self._completing) for event in self._held]
        self._held, self._held_bytes, self._holding = [], 0, False
        return held

    def close(self) -> None:
        """Persist the baseline one last time, with the time of the last event, and let the state file go."""
        self._schedule.abandon()  # an application still retrieving sees request.aborted and can give up
        try:
            self._persist(force=self._last_event_at is not None)
        finally:
            if self._lock is not None:
                self._lock.release()

    # ------------------------------------------------------------------------------------------ inside

    def _ready(self) -> bool:
        # Ask only while subscribed and once the server's identity was judged: Nokia's procedure subscribes
        # first (so nothing falls between the retrieval and the stream), and the identity may add a reason
        # (see docs/background.rst, 'The resync rules').
        return self._connected and not self._rules.awaiting_system_info

    def _heard(self, now: float) -> None:
        # A message after a silence longer than a keep-alive period: the stream resumed (through a bridge, its
        # link to the server may have been down). A resync asked before that covers no gap the silence hides.
        period = self._rules.keepalive_period
        if self._heard_at is not None and period is not None and now - self._heard_at > period:
            self._gap_covered = self._schedule.pending
        self._heard_at = now

    def _rules_for(self, baseline: Baseline | None) -> ResyncRules:
        config = self._config
        return ResyncRules(
            self._subscription,
            baseline,
            expect_system_info=not config.via_bridge,
            continuity=config.continuity_check,
            gap_factor=config.keepalive_gap_factor,
            keepalive_period=config.keepalive_period,
        )

    def _trigger(self, trigger: Trigger | None, now: float) -> None:
        if trigger is None:
            return
        if self._connected:
            self._gap_covered = True  # asked on this connection: its retrieval comes after any gap before it
        log.info(
            "%s: resync needed: %s %s",
            self._config.client_id,
            trigger.reason.value,
            dict(trigger.evidence) if trigger.evidence else "",
        )
        # From the trigger on, the application's copy is out of date: no data event is handed over as if it
        # belonged to it (with its epoch). They are held, and replayed with the new epoch once the resync
        # completes. Before the very first resync there is no copy to mistake them for: they flow, with
        # epoch 0, until the first request.
        if self._config.resync_mode is ResyncMode.HOLD_AND_REPLAY and self._rules.baseline.in_sync:
            self._holding = True
        # What is held so far came before this trigger, and events may be missing after it (a JmsMissedEvents
        # comes after the loss, a restart's SystemInfoEvent after the backlog): replayed over a retrieval made
        # after this trigger, it would undo what the retrieval shows (a cleared alarm whose clearing was lost
        # would come back). That retrieval covers it: it is dropped, as Nokia's procedure clears its buffer
        # when a retrieval is aborted. So is a failed replay's rest, whose resync is then not complete.
        if self._held or self._replay_at != _NO_DEADLINE:
            log.info(
                "%s: %d held events dropped: they came before this trigger (the next retrieval covers them)",
                self._config.client_id,
                len(self._held),
            )
            self._held, self._held_bytes = [], 0
            if self._replay_at != _NO_DEADLINE:
                self._replay_at, self._completing = _NO_DEADLINE, None
        # Owed from now on, and on disk before the message that caused it is acknowledged (the trigger comes
        # from judging a message, which is acknowledged after): a process that dies before the request
        # leaves the obligation to the next one, which the server would not tell again.
        self._rules.owe(trigger)
        if self._completing is not None:
            self._owed_since_settle.append(trigger)
        self._persist()
        self._schedule.add(trigger, now)

    def _ask(self, due: Due) -> None:
        # Held from the trigger until the resync completes, and replayed then, in order (Nokia's procedure:
        # buffer from the subscription on, retrieve, apply the buffer). What was held for an earlier request
        # that failed or was replaced went at the trigger that followed it (see _trigger).
        self._holding = self._config.resync_mode is ResyncMode.HOLD_AND_REPLAY
        if due.aborts is not None:
            log.warning("%s: resync #%d replaced by #%d", self._config.client_id, due.aborts, due.epoch)
        self._rules.requested(due.epoch)
        self._by_reason[due.reason.value] = self._by_reason.get(due.reason.value, 0) + 1
        self._persist()
        request = ResyncRequest(
            due,
            at=utc_now(),
            settle=lambda epoch, ok, why: self._settle(Settled(epoch, ok, why)),
            current=lambda: self._schedule.outstanding,
        )
        self._request = request
        log.warning(
            "%s: resync #%d requested: %s (%s)",
            self._config.client_id,
            due.epoch,
            due.reason.value,
            ", ".join(sorted(r.value for r in due.reasons)),
        )
        self._ask_handler(request)

    def _persist(self, *, force: bool = False) -> None:
        # Only a changed baseline is written: every write is an fsync on the supervisor thread. The time of
        # the last event rides along (informational: it is no reason to write). A write for the last
        # keep-alive alone (one per keep-alive period) is not synced: replaced atomically, it survives a crash
        # of the process; a crash of the machine may leave an older keep-alive, which can only make a gap
        # look longer (a resync too many, never one too few).
        baseline = self._rules.baseline
        if baseline == self._saved and not force:
            return
        saved = self._saved
        sync = (
            force
            or saved is None
            or attrs.evolve(
                saved, last_keepalive=baseline.last_keepalive, keepalive_period=baseline.keepalive_period
            )
            != baseline
        )
        last = self._last_event_at
        stamped = baseline if last is None else attrs.evolve(baseline, last_event_at=last)
        try:
            self._store.save(stamped, now=utc_now(), sync=sync)
            self._saved, self._last_event_at = baseline, None
        except StateError as exc:
            log.error("%s: the resync baseline could not be saved: %s", self._config.client_id, exc)


def answer(callback: Callable[[ResyncRequest], None], request: ResyncRequest, client_id: str) -> None:
    """Run the application's *callback* for *request* and settle it by how the callback ended.

    Returning completes the request (unless the callback deferred it); raising an ``Exception`` fails it
    (another follows). Anything else the callback raises goes up to the caller.
    """
    try:
        callback(request)
    except Exception as exc:
        log.exception("%s: on_resync_required raised", client_id)
        request.fail(f"{type(exc).__name__}: {exc}")
        return
    if not request.deferred:
        request.complete()
