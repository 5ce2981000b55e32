"""Dead-connection detection: time from a blackholed link (half-open TCP) to ``on_connection_lost``.

A FaultProxy sits between NfmpClient and the broker; after the client is connected the proxy blackholes the
link (both sockets stay open, nothing flows: the idle-dropping firewall of the Spacewalk wiki's "Jabber and
OSAD client connection issues"), and the time until the handler hears of the loss is measured, over several
trials, for the default settings (heart-beats 10 s, keep-alive timeout 120 s) and for short settings. The link
is cut once the connection is established (after the broker's first heart-beat). Heart-beats decide: expect
about ``heartbeat_grace`` (2.5) x the interval.

Needs the project's broker: ``scripts/broker start`` (this script starts it if it is not running).
Usage: python benchmarks/detection.py [--trials N] [--skip-default]   (the last line is one JSON object)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from nfmp_client import ClientConfig, ConnectionLost, ConnectionState, Handler, NfmpClient, RetryPolicy
from nfmp_client.testing import FaultProxy

REPO = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("NFMP_BROKER_PORT", "61613"))
SETTINGS = {
    "default": {"heartbeats": (10_000, 10_000), "keepalive_timeout": 120.0},
    "short": {"heartbeats": (500, 500), "keepalive_timeout": 2.0},
}


class Watch(Handler):
    def __init__(self) -> None:
        self.lost = threading.Event()
        self.cause: ConnectionLost | None = None

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        if not self.lost.is_set():
            self.cause = cause
            self.lost.set()


def trial(settings: dict[str, object]) -> tuple[float, str]:
    with FaultProxy("127.0.0.1", PORT) as proxy:
        watch = Watch()
        config = ClientConfig(
            servers=[f"127.0.0.1:{proxy.port}"],
            client_id=f"bench-detect-{uuid.uuid4().hex[:6]}@1",
            durable=False,
            retry=RetryPolicy(initial_delay=60, max_delay=60),  # measure detection, not reconnection
            **settings,  # type: ignore[arg-type]
        )
        client = NfmpClient(config, watch)
        client.start()
        if not client.wait_for_state(ConnectionState.CONNECTED, timeout=30):
            raise RuntimeError(f"not connected: {client.last_loss}")
        # An established connection: ActiveMQ's first heart-beat comes after two intervals.
        time.sleep(2.2 * config.heartbeats[1] / 1000)
        proxy.blackhole()
        started = time.perf_counter()
        if not watch.lost.wait(300):
            raise RuntimeError("the loss was never reported")
        elapsed = time.perf_counter() - started
        client.stop(timeout=2)
        assert watch.cause is not None
        return elapsed, watch.cause.reason.value


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=3, help="trials per setting (default 3)")
    parser.add_argument("--skip-default", action="store_true", help="only the short settings (fast)")
    args = parser.parse_args()
    subprocess.run(
        [sys.executable, str(REPO / "scripts" / "broker"), "start"], check=True, capture_output=True
    )
    figures: dict[str, object] = {}
    logging.basicConfig(level=logging.ERROR)  # the client's own warnings would interleave with the table
    header = (
        f"{'settings':<10} {'heart-beats':>12} {'keepalive':>10} {'min s':>7} {'median s':>9} {'max s':>7}"
    )
    print(header + "  reason")
    for name, settings in SETTINGS.items():
        if name == "default" and args.skip_default:
            continue
        results = [trial(settings) for _ in range(args.trials)]
        times = [t for t, _ in results]
        reasons = sorted({r for _, r in results})
        heartbeats = settings["heartbeats"]
        print(
            f"{name:<10} {heartbeats[0] / 1000:>10g} s {settings['keepalive_timeout']:>8g} s "  # type: ignore[index]
            f"{min(times):>7.2f} {statistics.median(times):>9.2f} {max(times):>7.2f}  {', '.join(reasons)}"
        )
        figures[f"{name}_median_s"] = round(statistics.median(times), 2)
        figures[f"{name}_max_s"] = round(max(times), 2)
        figures[f"{name}_reasons"] = reasons
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
