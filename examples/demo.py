"""The nfmp_client demo: an alarm mirror kept in sync through everything that goes wrong quietly.

It starts a simulated NFM-P server on the local broker (``scripts/broker``), a fault proxy between the client
and the broker, and the alarm mirror of ``examples/alarm_mirror.py``; then it plays the story of the public
documents (Spacewalk's Jabber clients, ejabberd, NFM-P's developer guide), in about a minute, with no input:

1. normal operation: events flow, the mirror follows;
2. a firewall silently drops the idle TCP session (half-open: the socket still says ESTABLISHED);
3. the NFM-P server restarts;
4. the server's queue for this client overflows (events lost while connected);
5. an administrator terminates the session.

After each act it checks the mirror against the server's truth, and says so. Exit code 0 when the mirror
held through the whole story, 1 otherwise.

Usage: python examples/demo.py [--host HOST] [--port PORT] [--jmx-port PORT]   (``scripts/demo`` runs it)
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from alarm_mirror import AlarmMirror  # the example this demo runs

from nfmp_client import (
    ClientConfig,
    ConnectionLost,
    ConnectionState,
    NfmpClient,
    RetryPolicy,
    TerminateClientSession,
    XmlApiClient,
)
from nfmp_client.testing import ActiveMQAdmin, FaultProxy, SimulatedServer, SnapshotServer
from nfmp_client.xmlapi import XMLAPI_PATH

BOLD, GREEN, RED, DIM, RESET = (
    ("\x1b[1m", "\x1b[32m", "\x1b[31m", "\x1b[2m", "\x1b[0m")
    if sys.stdout.isatty() and "NO_COLOR" not in os.environ
    else ("", "", "", "", "")
)
WAIT = 30.0


class DemoMirror(AlarmMirror):
    """The alarm mirror, plus what the demo narrates: losses and the session's end."""

    def __init__(self, db: sqlite3.Connection, api: XmlApiClient) -> None:
        super().__init__(db, api, verbose=False)
        self.losses: list[ConnectionLost] = []
        self.terminated = False
        self.events = 0

    def on_event(self, event: object) -> None:
        self.events += 1
        super().on_event(event)  # type: ignore[arg-type]

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        self.losses.append(cause)

    def on_session_terminated(self, notice: TerminateClientSession) -> None:
        self.terminated = True


class Story:
    """Narrates the acts and checks the mirror after each."""

    def __init__(
        self, client: NfmpClient, mirror: DemoMirror, server: SimulatedServer, *, pace: float
    ) -> None:
        self.client = client
        self.mirror = mirror
        self.server = server
        self.pace = pace
        self.started = time.monotonic()
        self.failures = 0

    def act(self, number: int, title: str) -> None:
        print(f"\n{BOLD}{number}. {title}{RESET}", flush=True)

    def say(self, text: str) -> None:
        print(f"   {DIM}{time.monotonic() - self.started:5.1f}s{RESET}  {text}", flush=True)

    def wait(self, what: str, done: Callable[[], bool], timeout: float = WAIT) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                self.say(f"{RED}did not happen within {timeout:g} s: {what}{RESET}")
                self.failures += 1
                return False
            time.sleep(0.05)
        return True

    def check(self) -> None:
        truth = {alarm.full_name: dict(alarm.attributes) for alarm in self.server.model.alarms()}
        if self.wait(
            "the mirror equals the server", lambda: self.mirror.alarms() == truth and self.client.in_sync
        ):
            self.say(f"{GREEN}the mirror equals the server's truth: {len(truth)} active alarms{RESET}")
        time.sleep(self.pace)

    def resync_after(self, count: int) -> str:
        self.wait("a resync", lambda: len(self.mirror.resyncs) > count)
        return self.mirror.resyncs[-1].reason.value if len(self.mirror.resyncs) > count else "none"

    # The acts.

    def normal_operation(self) -> None:
        self.act(1, "Normal operation: the first start resyncs, then events flow")
        self.wait("connected", lambda: self.client.state is ConnectionState.CONNECTED)
        self.server.wait_for_subscriber(self.client.config.client_id)
        self.say(f"resync #1 ({self.resync_after(0)}): the alarm list read over the XML API")
        self.server.generate(15)
        self.check()
        self.say(f"{self.mirror.events} alarm events applied")

    def half_open(self, proxy: FaultProxy) -> None:
        self.act(2, "A firewall drops the idle session: the socket stays ESTABLISHED, nothing flows")
        losses, resyncs = len(self.mirror.losses), len(self.mirror.resyncs)
        proxy.blackhole()
        cut = time.monotonic()
        self.server.generate(5)  # published while the path is dead: kept by the durable subscription
        if self.wait("the dead path noticed", lambda: len(self.mirror.losses) > losses):
            loss = self.mirror.losses[-1]
            self.say(f"noticed after {time.monotonic() - cut:.1f} s: {loss.reason.value} ({loss.detail})")
        proxy.passthrough()
        self.wait("reconnected", lambda: self.client.state is ConnectionState.CONNECTED)
        self.say("reconnected; the events of the gap were kept for the durable subscription")
        self.check()
        extra = len(self.mirror.resyncs) - resyncs
        self.say(f"resyncs requested: {extra} (same server, nothing lost: keep going)")

    def server_restart(self) -> None:
        self.act(3, "The NFM-P server restarts")
        resyncs = len(self.mirror.resyncs)
        old = self.server.identity.sys_start_time
        new = self.server.restart().sys_start_time
        self.say(f"sysStartTime {old} -> {new}: resync ({self.resync_after(resyncs)})")
        self.server.generate(5)
        self.check()

    def overflow(self) -> None:
        self.act(4, "The server's queue for this client overflows: events are lost while connected")
        resyncs = len(self.mirror.resyncs)
        self.server.overflow(self.client.config.client_id, 6)
        self.say(f"JmsMissedEvents: resync ({self.resync_after(resyncs)}); 6 events never arrived")
        self.server.generate(4)
        self.check()

    def terminate(self) -> None:
        self.act(5, "An administrator terminates the session")
        self.server.terminate(self.client.config.client_id)
        if self.wait("the session's end", lambda: self.client.state is ConnectionState.TERMINATED):
            self.say("TerminateClientSession: the client stops and says so (no blind reconnect by default)")


def run(args: argparse.Namespace) -> int:
    client_id = f"demo-{uuid.uuid4().hex[:6]}@1"
    admin = ActiveMQAdmin(f"service:jmx:rmi:///jndi/rmi://{args.host}:{args.jmx_port}/jmxrmi")
    with (
        tempfile.TemporaryDirectory(prefix="nfmp-demo-") as scratch,
        SimulatedServer(
            args.host, args.port, admin=admin, seed=2026, keepalive_interval=1.0, client_id=f"sim-{client_id}"
        ) as server,
        SnapshotServer(server.model) as snapshot,
        FaultProxy(args.host, args.port) as proxy,
    ):
        db = sqlite3.connect(":memory:", check_same_thread=False)
        mirror = DemoMirror(db, XmlApiClient(snapshot.url.removesuffix(XMLAPI_PATH), credentials=None))
        config = ClientConfig(
            servers=[f"127.0.0.1:{proxy.port}"],
            client_id=client_id,
            heartbeats=(1000, 1000),  # production: 10 s or less, below every firewall's idle timeout
            keepalive_timeout=6.0,  # Nokia's figure is 120 s; the demo has a minute
            retry=RetryPolicy(initial_delay=0.5, max_delay=2.0, jitter=0.2, connect_timeout=5.0),
            state_dir=Path(scratch),
            resync_coalesce_window=0.2,
            resync_min_interval=0.5,
            filter="MTOSI_objectType = 'fm.AlarmObject'",
        )
        client = NfmpClient(config, mirror)
        story = Story(client, mirror, server, pace=args.pace)
        print(f"{BOLD}nfmp_client demo{RESET}: alarm mirror {client_id}, via a fault proxy to the broker")
        client.start()
        try:
            story.normal_operation()
            story.half_open(proxy)
            story.server_restart()
            story.overflow()
            story.terminate()
        finally:
            client.stop()
            db.close()
    if story.failures:
        print(f"\n{RED}{BOLD}The mirror did not hold: {story.failures} check(s) failed.{RESET}")
        return 1
    print(f"\n{GREEN}{BOLD}The mirror held through the whole story: it equals the server's truth.{RESET}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pace", type=float, default=2.0, help="seconds to pause after each act (default 2)")
    parser.add_argument("--host", default="127.0.0.1", help="the broker's host")
    parser.add_argument("--port", type=int, default=int(os.environ.get("NFMP_BROKER_PORT", "61613")))
    parser.add_argument("--jmx-port", type=int, default=int(os.environ.get("NFMP_BROKER_JMX_PORT", "11099")))
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)  # the story says what happens; the library's log is for ops
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
