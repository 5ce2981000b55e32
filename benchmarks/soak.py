"""The chaos soak: the alarm mirror against a simulated NFM-P server while mixed faults hit it, with a ledger.

Every guarantee of nfmp_client is tested one scenario at a time elsewhere; here the faults come together, at
random moments drawn from a seed, and the promise is measured as figures:

* Two real ActiveMQ brokers, a redundant pair's primary and standby (``--no-standby``: one), each behind a
  fault proxy, each with a simulated NFM-P server; they share one network model, the truth. The standby's
  proxy refuses connections, as a standby's JMS server does, until an activity switch makes it the primary.
* A steady stream of alarm and inventory events (``--rate``) with bursts, each carrying a sequence number.
* The application, in a process of its own so that it can be killed with SIGKILL and started again with its
  state directory: ``benchmarks/soak_mirror.py``, the alarm mirror of ``examples/alarm_mirror.py`` (SQLite)
  plus a journal kept in the same transactions as its changes.

The faults, every kind at least once when the run is long enough (the first draws are a shuffle of all kinds):

* broker SIGKILL and restart (the NFM-P JMS server crashed: a new jmsStartTime); connection reset;
* half-open blackhole both ways, toward the client only, toward the broker only;
* mirror SIGKILL and restart (sometimes with another fault while it is down); durable subscription removed
  while the mirror is away;
* server restart (a new sysStartTime); activity switch (a new sysPrimaryIp, failover to the standby broker);
  overflow (JmsMissedEvents); TerminateClientSession (the mirror reconnects after a delay; sometimes with
  "Remove");
* a handler that fails a few times, then succeeds; a poison event the handler always rejects; a handler 100
  times slower than the stream, for a while; a slow retrieval (the XML API answers late) during a resync.

After a fault the soak either waits for things to settle and checks the mirror against the truth, or goes
straight on to the next one (a fault during a resync, a fault while the mirror is down).

The soak knows for each fault whether the subscription lost events, so whether a resync is needed (Nokia's
rules: a restart, an activity switch, missed events, a removed subscription; and the client's own: an event it
gave up). From the mirror's journal it counts:

* ``lost``: events published for this subscription, never applied, and not covered by a resync whose retrieval
  started after them;
* ``missed_resyncs``: needs not followed by a request that names their reason (or that of a later need, whose
  retrieval covers both) and a retrieval by the time things settle (a settle waits for that, up to 45 s);
* ``spurious_resyncs``: requests made while no need was outstanding; a need is outstanding until a retrieval
  that started once the client could see it (when its fault had played out; a poison event, when the client
  gave it up). A request the client repeats after a crash, because the mirror was killed between its
  retrieval and the end of the replay, is counted apart as ``crash_window_resyncs``: the client cannot know;
* ``mirror_equals_truth``: the mirror's table equals the model at every settle point and at the end;
* ``detection_s``: per dead-path kind, from the fault to the mirror's ``on_connection_lost``, against the
  configured timeout (+ 1 s); a fault that struck while the mirror was not connected, while its handler was in
  a slow call (callbacks run on the client's one thread, which hears of the loss when the call returns), or
  just before the client closed the connection itself (a handler failure), is counted as ``skipped``.

The goal: ``lost``, ``missed_resyncs`` and ``spurious_resyncs`` 0, ``mirror_equals_truth`` true, every
detection within its bound, over at least 50 faults (``--faults``, default 50). The last line is one JSON
object; the exit code is 0 when the goal is met, 1 when not. ``--seed`` replays a run's draw (the faults,
their order and the pauses between them; the seed is printed either way), not the exact interleaving with the
client's own timing.

Needs Debian's ActiveMQ (``scripts/broker install``); the brokers run in a temporary directory on free ports.
Usage: python benchmarks/soak.py [--faults N] [--seed S] [--rate R] [--no-standby] [--keep]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import logging
import os
import random
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import attrs

from nfmp_client import DataEvent, ResyncReason
from nfmp_client.testing import (
    ActiveMQAdmin,
    EventGenerator,
    FaultProxy,
    NetworkModel,
    SimulatedServer,
    SimulatorError,
    SnapshotServer,
)
from nfmp_client.xmlapi import XMLAPI_PATH

REPO = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = REPO / "scripts" / "broker"
MIRROR_SCRIPT = Path(__file__).resolve().parent / "soak_mirror.py"
ALARM_OBJECT_TYPE = "fm.AlarmObject"
log = logging.getLogger("soak")

# The fault kinds.
BROKER_KILL = "broker-kill"
RESET = "connection-reset"
BLACKHOLE = "blackhole"
BLACKHOLE_TO_CLIENT = "blackhole-to-client"
BLACKHOLE_TO_BROKER = "blackhole-to-broker"
MIRROR_KILL = "mirror-kill"
SERVER_RESTART = "server-restart"
SWITCHOVER = "switchover"
OVERFLOW = "overflow"
SUBSCRIPTION_REMOVED = "subscription-removed"
TERMINATE = "terminate"
FLAKY_HANDLER = "flaky-handler"
POISON = "poison-event"
SLOW_HANDLER = "slow-handler"
SLOW_RETRIEVAL = "slow-retrieval"
KINDS = (
    BROKER_KILL,
    RESET,
    BLACKHOLE,
    BLACKHOLE_TO_CLIENT,
    BLACKHOLE_TO_BROKER,
    MIRROR_KILL,
    SERVER_RESTART,
    SWITCHOVER,
    OVERFLOW,
    SUBSCRIPTION_REMOVED,
    TERMINATE,
    FLAKY_HANDLER,
    POISON,
    SLOW_HANDLER,
    SLOW_RETRIEVAL,
)
DEAD_PATHS = (BLACKHOLE, BLACKHOLE_TO_CLIENT, BLACKHOLE_TO_BROKER, RESET, BROKER_KILL)
AWAY_FAULTS = (SERVER_RESTART, SWITCHOVER, BROKER_KILL, OVERFLOW)  # played while the mirror is down
CONNECTION_LOSSES = {"socket-error", "heartbeat-timeout", "watchdog-expired", "broker-error"}
# The resync reasons that answer each need: the client must have said why (a request for another reason that
# happens to come later does not count, unless a later need of that kind explains it: a switchover deletes the
# subscription with the JmsMissedEvents stored in it, and its own resync covers both).
ANSWERS = {
    "initial": {"initial"},
    # A fault during which the server's keep-alives were not kept for the client may be named after the gap
    # they leave (keepalive-gap: the continuity check) when that trigger comes first.
    BROKER_KILL: {"server-restarted", "subscription-changed", "server-state-unknown", "keepalive-gap"},
    SERVER_RESTART: {"server-restarted", "server-state-unknown", "keepalive-gap"},
    SWITCHOVER: {"switchover", "subscription-changed", "keepalive-gap"},
    OVERFLOW: {"missed-events"},
    SUBSCRIPTION_REMOVED: {"missed-events", "subscription-changed", "keepalive-gap"},
    TERMINATE: {"missed-events", "keepalive-gap"},
    # The event given up, or never handed over (held, then dropped for a retrieval that covers it): any
    # retrieval after it brings what it says; one that never came shows as a mirror unequal to the truth.
    POISON: {"undeliverable", *(reason.value for reason in ResyncReason)},
}

# The mirror's client settings: short intervals, so that a fault plays in seconds.
HEARTBEAT_MS = 500
HEARTBEAT_GRACE = 2.5
KEEPALIVE_INTERVAL = 0.5  # the simulated servers' KeepAliveEvents
KEEPALIVE_TIMEOUT = 4.0
BROKER_HEARTBEAT_GRACE = 1.5  # nfmp_client/testing/activemq: transport.hbGracePeriodMultiplier
SETTLE_TIMEOUT = 45.0


@dataclass(frozen=True)
class Need:
    """A moment from which the subscription's events may be lost: a resync must retrieve after it."""

    t: float
    kind: str
    seq: int | None = None  # the poison event's


@dataclass
class Published:
    """One event of the stream, as the server produced it."""

    seq: int
    t: float  # after the model changed
    alarm: bool  # for this subscription (the mirror subscribes to alarms only)
    sent: bool  # handed to the broker (False: the JMS server was down, lost for every client)


@dataclass
class Fault:
    """One fault played."""

    kind: str
    t: float
    detail: str = ""
    connected: bool = False  # the mirror was connected when it started (a detection is measured)


@dataclass
class Site:
    """One main server of the redundant pair: its broker, the fault proxy in front, its simulated server."""

    name: str
    data: Path
    port: int
    jmx_port: int
    proxy: FaultProxy | None = None
    server: SimulatedServer | None = None
    up: bool = True

    def broker(self, command: str, *options: str) -> str:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NFMP_BROKER_")}
        result = subprocess.run(
            [sys.executable, str(BROKER_SCRIPT), command, "--data", str(self.data), *options],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"scripts/broker {command} ({self.name}): {result.stdout}{result.stderr}")
        return result.stdout

    def start_broker(self) -> None:
        self.broker("start", "--port", str(self.port), "--jmx-port", str(self.jmx_port))

    def kill_broker(self) -> None:
        pid = int(json.loads((self.data / "broker.json").read_text())["pid"])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)

    @property
    def jmx_url(self) -> str:
        return f"service:jmx:rmi:///jndi/rmi://127.0.0.1:{self.jmx_port}/jmxrmi"

    @property
    def sim(self) -> SimulatedServer:
        assert self.server is not None
        return self.server

    @property
    def front(self) -> FaultProxy:
        assert self.proxy is not None
        return self.proxy


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _normal(attributes: Any) -> Any:
    return json.loads(json.dumps(attributes))


class Stream:
    """The server's event stream: steady events with bursts, each with a sequence number (``soakSeq``)."""

    def __init__(self, soak: Soak, rate: float, seed: int) -> None:
        self._soak = soak
        self._rate = rate
        self._random = random.Random(seed)  # reproducible traffic
        self._generator = EventGenerator(soak.model, seed=seed)
        self.lock = threading.RLock()  # held while one event is produced; faults take it to change sites
        self.records: list[Published] = []
        self._seq = 0
        self._paused = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-stream", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(10)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._paused.set()
        with self.lock:  # an event being produced is finished
            pass
        try:
            yield
        finally:
            self._paused.clear()

    def _run(self) -> None:
        interval = 1 / self._rate
        due = time.monotonic()
        while not self._stopped.is_set():
            due += interval
            time.sleep(max(0.0, due - time.monotonic()))
            due = max(due, time.monotonic() - 1.0)
            if self._paused.is_set():
                continue
            burst = self._random.random() < 0.01  # about one burst every 5 s at 20 events/s
            for _ in range(self._random.randint(50, 200) if burst else 1):
                if self._paused.is_set() or self._stopped.is_set():
                    break
                try:
                    self.produce()
                except Exception:
                    log.exception("the stream failed to produce an event")

    def produce(self, *, fail: str | None = None) -> Published:
        """Produce one event (with *fail*: a new alarm that makes the mirror's handler fail)."""
        with self.lock:
            while True:
                event = self._generator.next_event()
                if fail is None or (event.header.event_name == "ObjectCreation" and _is_alarm(event)):
                    break
                self._publish(event, None)  # not the kind wanted: it is part of the stream anyway
            return self._publish(event, fail)

    def _publish(self, event: DataEvent, fail: str | None) -> Published:
        self._seq += 1
        extra = dict(event.header.extra, soakSeq=str(self._seq))
        if fail is not None:
            extra["soakFail"] = fail
        event = attrs.evolve(event, header=attrs.evolve(event.header, extra=extra))
        site = self._soak.active
        sent = site.up
        if sent:
            try:
                site.sim.publish(event)
            except SimulatorError as exc:
                sent = False
                log.warning("event %d not published: %s", self._seq, exc)
        else:
            self._soak.model.apply(event)  # the JMS server is down: the change happens, nobody hears of it
        record = Published(self._seq, time.time(), _is_alarm(event), sent)
        self.records.append(record)
        return record


def _is_alarm(event: DataEvent) -> bool:
    return event.header.object_type == ALARM_OBJECT_TYPE


Completion = tuple[int, float, float, int, int]  # epoch, retrieval started, done, alarms, aborted


class Journal:
    """Reads the mirror's database (read-only, while it writes)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self._path.exists():
            return []
        db = sqlite3.connect(f"file:{self._path}?mode=ro", uri=True, timeout=5)
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            db.close()

    def alarms(self) -> dict[str, Any]:
        return {
            name: json.loads(attributes)
            for name, attributes in self.query("SELECT full_name, attributes FROM alarms")
        }

    def requests(self) -> list[tuple[int, str, float, int, str]]:
        return [
            tuple(r)
            for r in self.query("SELECT epoch, reason, t, pid, reasons FROM soak_requests ORDER BY t")
        ]

    def completions(self) -> list[Completion]:
        return [
            tuple(r)
            for r in self.query(
                "SELECT epoch, t_start, t_done, alarms, aborted FROM soak_completions ORDER BY t_done"
            )
        ]

    def losses(self) -> list[tuple[float, str, str]]:
        return [tuple(r) for r in self.query("SELECT t, reason, detail FROM soak_losses ORDER BY t")]

    def restored(self) -> list[float]:
        return [t for (t,) in self.query("SELECT t FROM soak_restored ORDER BY t")]

    def last_restored(self) -> float:
        rows = self.query("SELECT MAX(t) FROM soak_restored")
        return float(rows[0][0]) if rows and rows[0][0] is not None else 0.0

    def applied(self) -> collections.Counter[int]:
        return collections.Counter(seq for (seq,) in self.query("SELECT seq FROM soak_applied") if seq >= 0)

    def undeliverable(self) -> int:
        return len(self.query("SELECT seq FROM soak_undeliverable"))

    def given_up(self) -> dict[int, float]:
        return dict(self.query("SELECT seq, t FROM soak_undeliverable WHERE seq IS NOT NULL"))


class Mirror:
    """The mirror's process: started, killed (SIGKILL), started again; its RSS is sampled."""

    def __init__(self, work: Path, settings: dict[str, Any]) -> None:
        self._settings_file = work / "mirror-settings.json"
        self._settings_file.write_text(json.dumps(settings, indent=2))
        self._log = work / "mirror.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills: list[float] = []
        self.exits: list[int] = []  # exit codes of the mirror stopping by itself
        self.max_rss_kb = 0
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="soak-rss", daemon=True)

    def start(self) -> None:
        with self._log.open("ab") as out:
            self._process = subprocess.Popen(  # our own script, arguments as a list
                [sys.executable, str(MIRROR_SCRIPT), str(self._settings_file)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1
        if not self._sampler.is_alive():
            self._sampler.start()

    @property
    def alive(self) -> bool:
        process = self._process
        if process is None:
            return False
        code = process.poll()
        if code is not None and code not in self.exits:
            self.exits.append(code)
        return code is None

    def kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(10)
            self.kills.append(time.time())
            self._process = None  # its exit code is the soak's doing, not the mirror's

    def stop(self) -> None:
        self._sampling.set()
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def _sample(self) -> None:
        while not self._sampling.wait(0.25):
            process = self._process
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        self.max_rss_kb = max(self.max_rss_kb, int(line.split()[1]))


class Soak:
    """One run: set up, play the faults, settle, count."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.seed: int = args.seed
        self.random = random.Random(self.seed)  # a replayable draw, not secrets
        self.client_id = f"soak-{uuid.uuid4().hex[:6]}@1"
        self.model = NetworkModel()
        EventGenerator(self.model, seed=self.seed).populate(alarms=10)
        ports = _free_ports(4)
        self.sites = [Site("primary", work / "broker-a", ports[0], ports[1])]
        if args.standby:
            self.sites.append(Site("standby", work / "broker-b", ports[2], ports[3]))
        self.active = self.sites[0]
        self.journal = Journal(work / "mirror.sqlite")
        self.stream = Stream(self, args.rate, self.seed)
        self.needs: list[Need] = []
        self.missed: set[Need] = set()  # needs still unanswered after a settle
        self.visible: dict[Need, float] = {}  # when the client could first see each need (its fault's end)
        self.faults: list[Fault] = []
        self.checks: list[tuple[str, bool, str]] = []
        self.errors: list[str] = []  # faults the soak could not play (a bug of the soak or the simulator)
        self.slow_windows: list[tuple[float, float]] = []  # when the handler was slow (wall-clock times)
        self.snapshot: SnapshotServer | None = None
        self.mirror: Mirror | None = None
        self._slow_until = 0.0
        self.started = time.time()

    # ----------------------------------------------------------------------------------------- setup

    def setup(self, stack: contextlib.ExitStack) -> None:
        starting = [threading.Thread(target=site.start_broker) for site in self.sites]
        errors: list[BaseException] = []
        for thread in starting:
            thread.run = _catching(thread.run, errors)  # type: ignore[method-assign]
            thread.start()
        for thread in starting:
            thread.join()
        for site in self.sites:
            stack.callback(_quietly, site.broker, "stop")
        if errors:
            raise errors[0]
        for index, site in enumerate(self.sites):
            site.proxy = stack.enter_context(FaultProxy("127.0.0.1", site.port))
            site.server = SimulatedServer(
                "127.0.0.1",
                site.port,
                admin=ActiveMQAdmin(site.jmx_url),
                model=self.model,
                seed=self.seed + index,
                identity=self.sites[0].sim.identity if index else None,
                keepalive_interval=KEEPALIVE_INTERVAL,
                client_id=f"nfmp-{site.name}-{uuid.uuid4().hex[:6]}",
                terminate_grace=0.2,
            )
            stack.enter_context(site.server)
            if index:  # the standby: its JMS server does not serve until an activity switch
                site.server.silence()
                site.front.reset()
        self.snapshot = stack.enter_context(SnapshotServer(self.model))
        settings = {
            "servers": [f"127.0.0.1:{site.front.port}" for site in self.sites],
            "client_id": self.client_id,
            "xmlapi": self.snapshot.url.removesuffix(XMLAPI_PATH),
            "db": str(self.work / "mirror.sqlite"),
            "state_dir": str(self.work / "mirror-state"),
            "control": str(self.work / "mirror-control.json"),
            "heartbeat_ms": HEARTBEAT_MS,
            "heartbeat_grace": HEARTBEAT_GRACE,
            "keepalive_timeout": KEEPALIVE_TIMEOUT,
            "retry_initial_delay": 0.2,
            "retry_max_delay": 1.0,
            "connect_timeout": 3.0,
            "terminate_reconnect_delay": 1.0,
            "resync_coalesce_window": 0.2,
            "resync_min_interval": 0.5,
            "system_info_timeout": 8.0,
            "max_handler_failures": 5,
        }
        self.mirror = Mirror(self.work, settings)
        stack.callback(self.mirror.stop)
        self.stream.start()
        stack.callback(self.stream.stop)
        self.need("initial")
        self.mirror.start()
        self.settle("start")

    # ------------------------------------------------------------------------------------ the ledger

    def handler_slow(self, start: float, end: float | None = None) -> bool:
        """Whether the mirror's handler may be in a slow call between *start* and *end*."""
        end = start if end is None else end
        return any(begin <= end and start <= until for begin, until in self.slow_windows)

    def need(self, kind: str, seq: int | None = None) -> None:
        self.needs.append(Need(time.time(), kind, seq))

    def connected(self) -> bool:
        losses = self.journal.losses()
        return self.mirror_alive and self.journal.last_restored() > (losses[-1][0] if losses else 0.0)

    def steady(self) -> bool:
        """Connected, and for a second at least."""
        return self.connected() and time.time() - self.journal.last_restored() >= 1.0

    @property
    def mirror_alive(self) -> bool:
        return self.mirror is not None and self.mirror.alive

    def truth(self) -> dict[str, Any]:
        return {alarm.full_name: _normal(dict(alarm.attributes)) for alarm in self.model.alarms()}

    def settled(self) -> bool:
        if not self.connected():
            return False
        requests, completions = self.journal.requests(), self.journal.completions()
        if requests and not any(c[0] == requests[-1][0] and c[2] >= requests[-1][2] for c in completions):
            return False  # a resync is under way
        if self.unanswered(requests, completions):
            return False  # one is due: the client may not have noticed yet
        return self.journal.alarms() == self.truth()

    def unanswered(
        self,
        requests: list[tuple[int, str, float, int, str]],
        completions: list[Completion],
    ) -> list[Need]:
        return [n for n in self.needs if not answered(n, self.needs, requests, completions)]

    def settle(self, label: str) -> bool:
        """Pause the stream; wait until the mirror equals the truth, connected, with no resync under way."""
        with self.stream.paused():
            ok = _wait(self.settled, SETTLE_TIMEOUT)
            detail = ""
            if not ok:
                mirror, truth = self.journal.alarms(), self.truth()
                missing = sorted(set(truth) - set(mirror))
                extra = sorted(set(mirror) - set(truth))
                changed = sorted(n for n in set(truth) & set(mirror) if truth[n] != mirror[n])
                detail = (
                    f"connected {self.connected()}, alive {self.mirror_alive}; "
                    f"missing {len(missing)} {missing[:3]}, extra {len(extra)} {extra[:3]}, "
                    f"different {len(changed)} {changed[:3]}"
                )
            # A need still unanswered once things settled (or the wait gave up) was missed, even if a resync
            # for a later fault covers it afterwards.
            self.missed.update(self.unanswered(self.journal.requests(), self.journal.completions()))
            self.checks.append((label, ok, detail))
            self.say(f"settled: {'the mirror equals the truth' if ok else 'NOT EQUAL: ' + detail}")
        return ok

    def say(self, text: str) -> None:
        print(f"{time.time() - self.started:7.1f}s  {text}", flush=True)

    # ------------------------------------------------------------------------------------ the faults

    def play(self, kind: str) -> None:
        fault = Fault(kind, time.time(), connected=self.connected())
        self.faults.append(fault)
        before = len(self.needs)
        try:
            fault.detail = getattr(self, "fault_" + kind.replace("-", "_"))(fault) or ""
        except Exception as exc:  # the soak's own failure: reported, and the run goes on
            log.exception("fault %s could not be played", kind)
            self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            fault.detail = f"COULD NOT BE PLAYED: {exc}"
        for need in self.needs[before:]:  # the client can see it only once the fault has played out
            self.visible[need] = time.time()
        self.say(f"{kind}{': ' + fault.detail if fault.detail else ''}")

    def fault_broker_kill(self, fault: Fault) -> str:
        site = self.active
        with self.stream.lock:
            site.up = False  # the stream now only changes the model: nobody hears of those events
        self.need(BROKER_KILL)
        fault.t = time.time()
        # The JMS server comes back with a new jmsStartTime: set before it is back, so that no client can
        # subscribe and get the old one.
        self.adopt_everywhere(site.sim.identity.jms_restarted(_now()))
        site.kill_broker()
        down = self.random.uniform(0.2, 2.0)
        time.sleep(down)
        site.start_broker()
        with self.stream.lock:
            site.up = True
        return f"{site.name} broker down {down:.1f} s"

    def adopt_everywhere(self, identity: Any) -> None:
        for site in self.sites:
            site.sim.adopt(identity)

    def fault_connection_reset(self, fault: Fault) -> str:
        self.active.front.reset()
        self.active.front.passthrough()
        return ""

    def _blackhole(self, fault: Fault, toward: str) -> str:
        proxy = self.active.front
        before = len(self.journal.losses())
        fault.t = time.time()
        proxy.blackhole(toward)  # type: ignore[arg-type]
        bound = detection_bound(fault.kind)
        _wait(lambda: len(self.journal.losses()) > before, bound + 3.0)
        time.sleep(self.random.uniform(0.0, 1.5))  # the path stays dead a little longer: reconnects fail
        proxy.passthrough()
        return f"toward {toward}"

    def fault_blackhole(self, fault: Fault) -> str:
        return self._blackhole(fault, "both")

    def fault_blackhole_to_client(self, fault: Fault) -> str:
        return self._blackhole(fault, "client")

    def fault_blackhole_to_broker(self, fault: Fault) -> str:
        return self._blackhole(fault, "target")

    def fault_mirror_kill(self, fault: Fault) -> str:
        assert self.mirror is not None
        self.mirror.kill()
        down = self.random.uniform(0.3, 3.0)
        until = time.monotonic() + down
        meanwhile = ""
        if self.random.random() < 0.5:
            meanwhile = self.random.choice(AWAY_FAULTS)
            time.sleep(self.random.uniform(0.0, down / 2))
            self.play(meanwhile)
        time.sleep(max(0.0, until - time.monotonic()))
        self.mirror.start()
        return f"down {down:.1f} s" + (f", {meanwhile} meanwhile" if meanwhile else "")

    def fault_server_restart(self, fault: Fault) -> str:
        self.need(SERVER_RESTART)
        identity = self.active.sim.restart()
        self.adopt_everywhere(identity)
        return f"sysStartTime {identity.sys_start_time}"

    def fault_switchover(self, fault: Fault) -> str:
        self.need(SWITCHOVER)
        old = self.active
        new = next((site for site in self.sites if site is not old), old)
        if new is old:  # one broker: the activity switch happens behind it
            return f"primary {old.sim.switchover().primary_ip} (same broker)"
        identity = old.sim.identity.switched_over(_other_ip(old.sim.identity.primary_ip))
        new.sim.adopt(identity)
        new.sim.resume()
        new.front.passthrough()
        with self.stream.lock:
            self.active = new
        old.front.reset()  # the old primary's JMS server is gone: connections dropped, new ones refused
        old.sim.switchover(identity.primary_ip)  # its durable subscriptions are deleted
        old.sim.silence()
        return f"{old.name} -> {new.name}, primary {identity.primary_ip}"

    def fault_overflow(self, fault: Fault) -> str:
        count = self.random.randint(1, 20)
        self.need(OVERFLOW)
        self.active.sim.overflow(self.client_id, count)
        return f"{count} events dropped for the mirror"

    def fault_subscription_removed(self, fault: Fault) -> str:
        assert self.mirror is not None
        self.mirror.kill()
        time.sleep(self.random.uniform(0.2, 1.0))
        self.need(SUBSCRIPTION_REMOVED)
        removed = self.active.sim.remove_subscription(self.client_id)
        time.sleep(self.random.uniform(0.2, 1.5))
        self.mirror.start()
        return f"{removed} durable subscription(s) removed while the mirror was down"

    def fault_terminate(self, fault: Fault) -> str:
        remove = self.random.random() < 0.5
        if remove:
            self.need(TERMINATE)
        self.active.sim.terminate(self.client_id, remove=remove)
        return "Remove (JmsMissedEvents follows)" if remove else "Close"

    def fault_flaky_handler(self, fault: Fault) -> str:
        failures = self.random.randint(1, 4)  # under max_handler_failures (5)
        record = self.stream.produce(fail=str(failures))
        return f"event {record.seq} fails {failures} time(s), then succeeds"

    def fault_poison_event(self, fault: Fault) -> str:
        record = self.stream.produce(fail="always")
        self.need(POISON, record.seq)  # the event never reaches the mirror's table: a retrieval must bring it
        return f"event {record.seq} always fails"

    def fault_slow_handler(self, fault: Fault) -> str:
        seconds = self.random.uniform(3.0, 8.0)
        per_event = 100 / self.args.rate
        now = time.time()
        control = {"slow_handler_until": now + seconds, "slow_handler_s": per_event}
        (self.work / "mirror-control.json").write_text(json.dumps(control))
        self.slow_windows.append((now, now + seconds + per_event))  # the last slow call ends after it
        return f"{per_event:.1f} s per event for {seconds:.1f} s"

    def fault_slow_retrieval(self, fault: Fault) -> str:
        assert self.snapshot is not None
        latency = self.random.uniform(1.0, 4.0)
        self.snapshot.latency = latency
        trigger = self.random.choice((SERVER_RESTART, OVERFLOW))
        self.play(trigger)
        self._slow_until = time.monotonic() + latency + 6.0
        threading.Timer(latency + 6.0, self._fast_retrieval).start()
        return f"the XML API answers in {latency:.1f} s; resync by {trigger}"

    def _fast_retrieval(self) -> None:
        if self.snapshot is not None and time.monotonic() >= self._slow_until:
            self.snapshot.latency = 0.0

    # ------------------------------------------------------------------------------------ the run

    def run(self) -> None:
        kinds = list(KINDS)
        self.random.shuffle(kinds)
        while len(kinds) < self.args.faults:
            kinds.append(self.random.choice(KINDS))
        kinds = kinds[: self.args.faults]
        for number, kind in enumerate(kinds, 1):
            time.sleep(self.random.uniform(0.3, 1.5))  # events flow
            if kind in DEAD_PATHS or kind in (TERMINATE, FLAKY_HANDLER, POISON):
                # A detection is measured from a live connection (up for a second: not between the tries of a
                # failing handler), with the handler not in a slow call.
                _wait(lambda: self.steady() and not self.handler_slow(time.time()), 20.0)
            self.play(kind)
            if number == len(kinds) or self.random.random() < 0.5:
                self.settle(f"after fault {number}")
        self.stream.stop()  # what is counted next is everything published
        time.sleep(2.0)  # a late resync (missed or spurious) has its chance to show
        self.settle("end")


def _catching(run: Callable[[], None], errors: list[BaseException]) -> Callable[[], None]:
    def wrapped() -> None:
        try:
            run()
        except BaseException as exc:  # noqa: BLE001  # reported by the caller
            errors.append(exc)

    return wrapped


def _quietly(call: Callable[..., Any], *args: Any) -> None:
    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001  # tearing down: report and go on
        log.warning("teardown: %s", exc)


def _wait(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _other_ip(ip: str) -> str:
    head, _, last = ip.rpartition(".")
    return f"{head}.{int(last) % 254 + 1}"


def retrieved_after(completions: list[Completion], t: float, before: float = float("inf")) -> bool:
    """Whether a retrieval started at or after *t* (and was done by *before*)."""
    return any(c[1] >= t and c[2] <= before for c in completions)


def answered(
    need: Need,
    needs: list[Need],
    requests: list[tuple[int, str, float, int, str]],
    completions: list[Completion],
) -> bool:
    """Whether a request after *need* names its reason (or that of a need between them: its retrieval covers
    both) and a retrieval started after it."""
    for request in requests:
        if request[2] < need.t:
            continue
        kinds = {n.kind for n in needs if need.t <= n.t <= request[2]}
        if set(request[4].split(",")) & set().union(*(ANSWERS[k] for k in kinds)):
            return retrieved_after(completions, need.t)
    return False


def detection_bound(kind: str) -> float:
    """The configured time to notice a dead path of *kind*, in seconds (the goal allows 1 s more)."""
    if kind in (BLACKHOLE, BLACKHOLE_TO_CLIENT):  # the client's heart-beat timeout
        return min(HEARTBEAT_MS / 1000 * HEARTBEAT_GRACE, KEEPALIVE_TIMEOUT)
    if kind == BLACKHOLE_TO_BROKER:
        # The broker's: ActiveMQ closes a STOMP client silent for up to 3 x its grace x the heart-beat
        # interval the client promised (observed: 4.5 x with the grace of 1.5); the client hears it at once.
        return 3 * BROKER_HEARTBEAT_GRACE * HEARTBEAT_MS / 1000
    return 0.0  # a reset, a dead broker's closed sockets: at once


# ------------------------------------------------------------------------------------------ the count


Detection = tuple[str, float, float | None, str]  # kind, when (s into the run), seconds, why not measured


def detections(soak: Soak) -> tuple[dict[str, dict[str, Any]], list[Detection]]:
    """Per dead-path kind, the detection figures; and each detection."""
    journal = soak.journal
    losses = journal.losses()
    detection: dict[str, dict[str, Any]] = {}
    each: list[Detection] = []
    restored = journal.restored()

    def live_at(t: float) -> bool:
        # Connected at that moment, by the journal: restored after its last loss (of any reason: a handler
        # failure closes the connection too).
        up = max((r for r in restored if r <= t), default=0.0)
        return up > max((loss for loss, _, _ in losses if loss <= t), default=0.0)

    for kind in DEAD_PATHS:
        times, skipped = [], 0
        bound = detection_bound(kind)
        for fault in soak.faults:
            if fault.kind != kind:
                continue
            at = round(fault.t - soak.started, 1)
            connected = fault.connected and live_at(fault.t)
            if not connected or soak.handler_slow(fault.t, fault.t + bound + 1.0):
                # Not connected when it struck, or the handler was in a slow call: the client hears of the
                # loss only when the callback returns (callbacks run on its one thread).
                skipped += 1
                each.append((kind, at, None, "not connected" if not connected else "handler slow"))
                continue
            after = [(t, reason) for t, reason, _ in losses if t >= fault.t]
            if after and after[0][1] not in CONNECTION_LOSSES:
                # The client closed the connection itself first (a handler failure, a terminated session):
                # what it noticed next was a failed reconnect, not the dead path.
                skipped += 1
                each.append((kind, at, None, f"closed first: {after[0][1]}"))
            elif after:
                times.append(after[0][0] - fault.t)
                each.append((kind, at, round(after[0][0] - fault.t, 3), ""))
            else:
                each.append((kind, at, None, "never noticed"))
        detection[kind] = {
            "count": len(times),
            "skipped": skipped,
            "min": round(min(times), 2) if times else None,
            "median": round(statistics.median(times), 2) if times else None,
            "max": round(max(times), 2) if times else None,
            "timeout_s": round(bound, 2),
            "within": all(t <= bound + 1.0 for t in times)
            and not any(k == kind and why == "never noticed" for k, _, _, why in each),
        }
    return detection, each


def count(soak: Soak) -> dict[str, Any]:
    journal = soak.journal
    requests, completions = journal.requests(), journal.completions()
    needs = sorted(soak.needs, key=lambda n: n.t)
    applied = journal.applied()
    alarms = [r for r in soak.stream.records if r.alarm]

    lost = [r.seq for r in alarms if r.seq not in applied and not retrieved_after(completions, r.t)]

    missed = [n for n in needs if n in soak.missed or not answered(n, needs, requests, completions)]
    spurious: list[tuple[int, str, float]] = []
    crash_window: list[tuple[int, str, float]] = []
    given_up = journal.given_up()

    def seen(need: Need) -> float:
        # A retrieval the client made before it could see a need does not spare it the resync the need
        # calls for (a restart noticed just after an unrelated retrieval still means one): only a
        # retrieval after that moment makes a later request for it spurious. A poison event is seen once
        # the client gives it up.
        if need.seq is not None and need.seq in given_up:
            return given_up[need.seq]
        return soak.visible.get(need, need.t)

    previous: tuple[int, str, float, int, str] | None = None
    for request in requests:
        epoch, reason, t, _pid, _reasons = request
        outstanding = [n for n in needs if n.t <= t and not retrieved_after(completions, seen(n), before=t)]
        if not outstanding:
            done = [c[2] for c in completions if previous is not None and c[0] == previous[0]]
            kill = [
                k for k in (soak.mirror.kills if soak.mirror else []) if previous and previous[2] <= k <= t
            ]
            if reason == "incomplete" and kill and (not done or kill[-1] - max(done) < 2.0):
                crash_window.append((epoch, reason, t))
            else:
                spurious.append((epoch, reason, t))
        previous = request
    detection, each = detections(soak)
    faults = collections.Counter(f.kind for f in soak.faults)
    equal = bool(soak.checks) and all(ok for _, ok, _ in soak.checks)
    figures: dict[str, Any] = {
        "seed": soak.seed,
        "faults_total": len(soak.faults),
        "faults": dict(sorted(faults.items())),
        "kinds_missing": sorted(set(KINDS) - set(faults)),
        "standby": soak.args.standby,
        "events_published": len(alarms),
        "events_lost_by_server": sum(1 for r in alarms if not r.sent),
        "events_applied": len([r for r in alarms if r.seq in applied]),
        "lost": len(lost),
        "lost_seqs": lost[:20],
        "duplicates_applied": sum(n - 1 for n in applied.values() if n > 1),
        "undeliverable": journal.undeliverable(),
        "resyncs_needed": len(needs),
        "resyncs_requested": len(requests),
        "resyncs_by_reason": dict(sorted(collections.Counter(r[1] for r in requests).items())),
        "missed_resyncs": len(missed),
        "missed": [(n.kind, round(n.t - soak.started, 1)) for n in missed],
        "spurious_resyncs": len(spurious),
        "spurious": [(reason, round(t - soak.started, 1)) for _, reason, t in spurious],
        "crash_window_resyncs": len(crash_window),
        "mirror_equals_truth": equal,
        "equality_checks": len(soak.checks),
        "equality_failures": [(label, detail) for label, ok, detail in soak.checks if not ok],
        "mirror_starts": soak.mirror.starts if soak.mirror else 0,
        "mirror_exits": soak.mirror.exits if soak.mirror else [],
        "max_rss_mb": round((soak.mirror.max_rss_kb if soak.mirror else 0) / 1024, 1),
        "detection_s": detection,
        "detections": each,
        "soak_errors": soak.errors,
        "wall_s": round(time.time() - soak.started, 1),
    }
    figures["goal_met"] = (
        figures["lost"] == 0
        and figures["missed_resyncs"] == 0
        and figures["spurious_resyncs"] == 0
        and equal
        and not figures["mirror_exits"]
        and not soak.errors
        and all(d["within"] for d in detection.values())
    )
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = [
        f"nfmp_client chaos soak: seed {figures['seed']}, {figures['faults_total']} faults, "
        f"{'primary + standby brokers' if figures['standby'] else 'one broker'}",
        "",
        f"{'fault':<24} {'count':>5}",
        *(f"{kind:<24} {n:>5}" for kind, n in figures["faults"].items()),
        "",
        f"{'figure':<24} {'value':>8}   goal",
    ]
    rows = [
        ("events published", figures["events_published"], ""),
        ("  lost by the server", figures["events_lost_by_server"], "(JMS server down: a resync covers them)"),
        ("events applied", figures["events_applied"], ""),
        ("lost", figures["lost"], "0"),
        ("duplicates applied", figures["duplicates_applied"], "(after a crash before the ack)"),
        ("resyncs needed", figures["resyncs_needed"], ""),
        ("resyncs requested", figures["resyncs_requested"], "(several needs may share one)"),
        ("missed resyncs", figures["missed_resyncs"], "0"),
        ("spurious resyncs", figures["spurious_resyncs"], "0"),
        ("crash-window resyncs", figures["crash_window_resyncs"], "(killed between retrieval and replay)"),
        (
            "mirror equals truth",
            figures["mirror_equals_truth"],
            f"true ({figures['equality_checks']} checks)",
        ),
        ("max RSS of the mirror", f"{figures['max_rss_mb']} MB", ""),
        ("wall time", f"{figures['wall_s']} s", ""),
    ]
    lines += [f"{name:<24} {value!s:>8}   {goal}" for name, value, goal in rows]
    lines += ["", f"{'detection (s)':<24} {'n':>3} {'min':>6} {'median':>6} {'max':>6} {'timeout':>8}"]
    for kind, d in figures["detection_s"].items():
        cells = [f"{d[k]:.2f}" if d[k] is not None else "-" for k in ("min", "median", "max")]
        lines.append(
            f"{kind:<24} {d['count']:>3} {cells[0]:>6} {cells[1]:>6} {cells[2]:>6} {d['timeout_s']:>7.2f}s"
        )
    lines.append("")
    lines.append("GOAL MET" if figures["goal_met"] else "GOAL MISSED")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faults", type=int, default=50, help="faults to play (default 50)")
    parser.add_argument(
        "--seed", type=int, default=None, help="the draw's seed (default: a new one, printed)"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (default 20)")
    parser.add_argument(
        "--standby",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="a standby broker for activity switches (default: yes)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 10**6)
    work = Path(tempfile.mkdtemp(prefix="nfmp-soak-"))
    logging.basicConfig(
        filename=work / "soak.log",
        level=logging.INFO,
        format="%(asctime)s %(threadName)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("stomp.py").setLevel(logging.WARNING)
    print(f"soak: seed {args.seed}, {args.faults} faults, work directory {work}", flush=True)
    soak = Soak(args, work)
    # Stopped from outside (timeout, a CI job cancelled): end as after Ctrl-C, with the brokers stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with contextlib.ExitStack() as stack:
        soak.setup(stack)
        soak.run()
        figures = count(soak)
    print()
    print(table(figures))
    if figures["goal_met"] and not args.keep:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    else:
        print(f"logs and databases kept in {work}")
    print(json.dumps(figures))
    return 0 if figures["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
