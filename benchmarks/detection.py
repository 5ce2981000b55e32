"""Dead-connection detection: time from a blackholed link (half-open TCP) to ``on_connection_lost``.

A FaultProxy sits between NfmpClient and the broker; after the client is connected the proxy blackholes the
link (both sockets stay open, nothing flows: the idle-dropping firewall of the Spacewalk wiki's "Jabber and
OSAD client connection issues"), and the time until the handler hears of the loss is measured, over several
trials, for the default settings (``ClientConfig``'s own: heart-beats 4 s, keep-alive timeout 120 s) and for
short settings (heart-beats 0.5 s, keep-alive timeout 2 s).

A simulated NFM-P server publishes keep-alives through the broker meanwhile, on a topic of their own (every
30 s, Nokia's figure, with the default settings; four per keep-alive timeout with the short ones), so the
link carries what a real one does and the keep-alive watchdog does not fire before the cut. The link is cut
once the connection is established (after the broker's first heart-beat, which ActiveMQ sends after two
intervals), at a random point of a heart-beat interval, so the trials sample the phase of the cut.
Heart-beats decide: the client declares the path dead ``heartbeat_grace`` (2.5) receive intervals after it
last heard the broker: at most that long after the cut (the configured timeout, ``*_timeout_s``), less by
the broker's silence just before it.

Needs the project's broker: ``scripts/broker start`` (this script starts it if it is not running).
Usage: python benchmarks/detection.py [--trials N] [--skip-default]   (the last line is one JSON object)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from nfmp_client import ClientConfig, ConnectionLost, ConnectionState, Handler, NfmpClient, RetryPolicy
from nfmp_client.testing import FaultProxy, SimulatedServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pinning import ensure_broker

PORT = int(os.environ.get("NFMP_BROKER_PORT", "61613"))
SETTINGS: dict[str, dict[str, Any]] = {
    "default": {},  # ClientConfig's defaults, whatever they are
    "short": {"heartbeats": (500, 500), "keepalive_timeout": 2.0},
}
DEFAULT_GOAL_S = 12.0  # the default settings notice a half-open link within this
SHORT_SLACK_S = 1.0  # short settings: within the configured timeout plus this
NOKIA_KEEPALIVE_S = 30.0
TOPIC = "5620-SAM-topic-xml-file"  # an NFM-P topic that the other benchmarks leave quiet


class Watch(Handler):
    def __init__(self) -> None:
        self.lost = threading.Event()
        self.cause: ConnectionLost | None = None

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        if not self.lost.is_set():
            self.cause = cause
            self.lost.set()


def config_for(settings: dict[str, Any], port: int) -> ClientConfig:
    return ClientConfig(
        servers=[f"127.0.0.1:{port}"],
        client_id=f"bench-detect-{uuid.uuid4().hex[:6]}@1",
        topic=TOPIC,
        durable=False,
        retry=RetryPolicy(initial_delay=60, max_delay=60),  # measure detection, not reconnection
        **settings,
    )


def timeout_s(config: ClientConfig) -> float:
    """The configured heart-beat timeout: the silence after which the client declares the path dead."""
    return config.heartbeats[1] / 1000 * config.heartbeat_grace


def trial(settings: dict[str, Any], rng: random.Random) -> tuple[float, str]:
    with FaultProxy("127.0.0.1", PORT) as proxy:
        watch = Watch()
        config = config_for(settings, proxy.port)
        client = NfmpClient(config, watch)
        client.start()
        try:
            if not client.wait_for_state(ConnectionState.CONNECTED, timeout=30):
                raise RuntimeError(f"not connected: {client.last_loss}")
            # An established connection (ActiveMQ's first heart-beat comes after two intervals), then a cut
            # at a random point of an interval.
            interval = config.heartbeats[1] / 1000
            time.sleep(2.2 * interval + rng.uniform(0, interval))
            proxy.blackhole()
            started = time.perf_counter()
            if not watch.lost.wait(300):
                raise RuntimeError("the loss was never reported")
            elapsed = time.perf_counter() - started
        finally:
            client.stop(timeout=2)
        assert watch.cause is not None
        return elapsed, watch.cause.reason.value


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=5, help="trials per setting (default 5)")
    parser.add_argument("--skip-default", action="store_true", help="only the short settings (fast)")
    args = parser.parse_args()
    ensure_broker()
    rng = random.Random(15)  # phases of the cut, not cryptography
    figures: dict[str, object] = {"trials": args.trials}
    maxima: dict[str, float] = {}
    timeouts: dict[str, float] = {}
    logging.basicConfig(level=logging.ERROR)  # the client's own warnings would interleave with the table
    print(
        f"{'settings':<9} {'heart-beats':>11} {'grace':>5} {'timeout':>8} {'keepalive':>9} "
        f"{'min s':>6} {'median s':>8} {'max s':>6}  reason"
    )
    for name, settings in SETTINGS.items():
        if name == "default" and args.skip_default:
            continue
        config = config_for(settings, PORT)
        keepalive_every = min(NOKIA_KEEPALIVE_S, config.keepalive_timeout / 4)
        with SimulatedServer(
            "127.0.0.1",
            PORT,
            keepalive_interval=keepalive_every,
            topics=[TOPIC],
            client_id=f"bench-detect-sim-{uuid.uuid4().hex[:6]}",
        ):
            results = [trial(settings, rng) for _ in range(args.trials)]
        times = [t for t, _ in results]
        reasons = sorted({r for _, r in results})
        timeout = timeouts[name] = timeout_s(config)
        maxima[name] = max(times)
        print(
            f"{name:<9} {config.heartbeats[1] / 1000:>9g} s {config.heartbeat_grace:>5g} {timeout:>6g} s "
            f"{config.keepalive_timeout:>7g} s {min(times):>6.2f} {statistics.median(times):>8.2f} "
            f"{max(times):>6.2f}  {', '.join(reasons)}"
        )
        figures[f"{name}_heartbeats_ms"] = list(config.heartbeats)
        figures[f"{name}_timeout_s"] = round(timeout, 3)
        figures[f"{name}_min_s"] = round(min(times), 2)
        figures[f"{name}_median_s"] = round(statistics.median(times), 2)
        figures[f"{name}_max_s"] = round(max(times), 2)
        figures[f"{name}_reasons"] = reasons
    for name, goal in (
        ("default", DEFAULT_GOAL_S),
        ("short", timeouts.get("short", 0) + SHORT_SLACK_S),
    ):
        if name in maxima:
            figures[f"{name}_goal_met"] = maxima[name] <= goal
            print(f"{name}: max {maxima[name]:.2f} s, goal <= {goal:g} s")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
