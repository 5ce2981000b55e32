"""The application of the chaos soak (``benchmarks/soak.py``): the alarm mirror, in a process of its own.

It is ``examples/alarm_mirror.py``'s ``AlarmMirror`` unchanged, plus a journal and the application-side faults
the soak plays. The soak kills this process with SIGKILL and starts it again with the same state directory and
database, as an operator's supervisor (systemd) would, so everything it must know afterwards is in the SQLite
database, committed in the same transaction as the change it describes:

* ``soak_applied``: the sequence number (the ``soakSeq`` property the soak puts on each event it publishes)
  of every event applied, with the resync epoch it came with; an event applied twice appears twice.
* ``soak_requests``: every resync request as it arrives, with all its reasons (its own transaction, before the
  retrieval).
* ``soak_completions``: every retrieval, in the transaction that rebuilds the table, with the time the
  retrieval started (the alarm list read then includes every event the server had applied before).
* ``soak_losses`` / ``soak_restored``: the connection's losses (reason, time) and restorations.
* ``soak_undeliverable``: the events given up by the client (``on_undeliverable``).

Application-side faults: an event whose ``soakFail`` property is a number makes the handler raise that many
times before it succeeds; ``always`` makes it raise every time (a poison event). The control file (JSON,
re-read when it changes) makes the handler slow until a time (``slow_handler_until``, ``slow_handler_s`` per
event). A slow retrieval is the XML API's doing (the soak's snapshot server answers late).

Usage: python benchmarks/soak_mirror.py SETTINGS.json   (written by the soak; see ``Settings`` there)
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from alarm_mirror import ALARM_OBJECT_TYPE, AlarmMirror  # the example, unchanged

from nfmp_client import (
    ClientConfig,
    ConnectionLost,
    ConnectionRestored,
    DataEvent,
    Event,
    NfmpClient,
    ResyncRequest,
    RetryPolicy,
    TerminatePolicy,
    XmlApiClient,
)

JOURNAL = """
CREATE TABLE IF NOT EXISTS soak_applied (seq INTEGER NOT NULL, epoch INTEGER NOT NULL, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS soak_requests (
    epoch INTEGER NOT NULL, reason TEXT NOT NULL, t REAL NOT NULL, pid INTEGER NOT NULL, reasons TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS soak_completions (
    epoch INTEGER NOT NULL, t_start REAL NOT NULL, t_done REAL NOT NULL, alarms INTEGER NOT NULL,
    aborted INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS soak_losses (t REAL NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS soak_restored (t REAL NOT NULL, server TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS soak_undeliverable (seq INTEGER, t REAL NOT NULL, error TEXT NOT NULL);
"""


class HandlerFault(Exception):
    """The failure the soak asked for (``soakFail``)."""


class Control:
    """The soak's switches for this process, re-read from their file when it changes (at most every 50 ms)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp = 0.0
        self._checked = 0.0
        self._values: dict[str, float] = {}

    def get(self, name: str) -> float:
        now = time.monotonic()
        if now - self._checked > 0.05:
            self._checked = now
            try:
                stamp = self._path.stat().st_mtime
                if stamp != self._stamp:
                    self._values, self._stamp = json.loads(self._path.read_text()), stamp
            except (OSError, ValueError):
                pass  # absent or half written: keep the last values
        return float(self._values.get(name, 0.0))


class SoakMirror(AlarmMirror):
    """The alarm mirror with the soak's journal and faults."""

    def __init__(self, db: sqlite3.Connection, api: XmlApiClient, control: Control) -> None:
        super().__init__(db, api, verbose=False)
        db.executescript(JOURNAL)
        self.control = control
        self.failures: dict[str, int] = {}

    def on_event(self, event: DataEvent) -> None:
        extra = event.header.extra
        seq = extra.get("soakSeq", "")
        fail = extra.get("soakFail")
        if fail is not None:
            count = self.failures.get(seq, 0) + 1
            self.failures[seq] = count
            if fail == "always" or count <= int(fail):
                raise HandlerFault(f"soak: event {seq} fails ({fail}), delivery {count}")
        if time.time() < self.control.get("slow_handler_until"):
            time.sleep(self.control.get("slow_handler_s"))
        with self.db:
            self.apply(event)
            self.db.execute(
                "INSERT INTO soak_applied VALUES (?, ?, ?)",
                (int(seq or -1), event.header.resync_epoch, time.time()),
            )

    def on_resync_required(self, request: ResyncRequest) -> None:
        with self.db:
            # Every reason, the coalesced ones and those owed from an earlier run (an INCOMPLETE request's).
            reasons = {r.value for r in request.reasons} | set(request.evidence.get("owed", "").split(","))
            self.db.execute(
                "INSERT INTO soak_requests VALUES (?, ?, ?, ?, ?)",
                (
                    request.epoch,
                    request.reason.value,
                    time.time(),
                    os.getpid(),
                    ",".join(sorted(reasons - {""})),
                ),
            )
        started = time.time()
        alarms = self.api.find_faults()
        with self.db:
            self.rebuild(alarms)
            self.db.execute(
                "INSERT INTO soak_completions VALUES (?, ?, ?, ?, ?)",
                (request.epoch, started, time.time(), len(alarms), int(request.aborted)),
            )

    def on_undeliverable(self, event: Event, error: BaseException) -> None:
        seq = event.header.extra.get("soakSeq")
        with self.db:
            self.db.execute(
                "INSERT INTO soak_undeliverable VALUES (?, ?, ?)",
                (int(seq) if seq else None, time.time(), str(error)),
            )

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO soak_losses VALUES (?, ?, ?)", (time.time(), cause.reason.value, cause.detail)
            )

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        with self.db:
            self.db.execute("INSERT INTO soak_restored VALUES (?, ?)", (time.time(), info.server))


def build(settings: dict[str, Any]) -> tuple[NfmpClient, sqlite3.Connection]:
    """The client and the database, as the settings say."""
    db = sqlite3.connect(settings["db"], check_same_thread=False)  # the client's handler thread uses it
    db.execute("PRAGMA journal_mode=WAL")  # the soak reads while this process writes
    db.execute(
        "PRAGMA synchronous=NORMAL"
    )  # durable through a killed process (not a lost machine), no fsync per event
    api = XmlApiClient(settings["xmlapi"], credentials=None, timeout=30.0)
    mirror = SoakMirror(db, api, Control(Path(settings["control"])))
    heartbeat = settings["heartbeat_ms"]
    config = ClientConfig(
        servers=settings["servers"],
        client_id=settings["client_id"],
        filter=f"MTOSI_objectType = '{ALARM_OBJECT_TYPE}'",
        heartbeats=(heartbeat, heartbeat),
        heartbeat_grace=settings["heartbeat_grace"],
        keepalive_timeout=settings["keepalive_timeout"],
        retry=RetryPolicy(
            initial_delay=settings["retry_initial_delay"],
            max_delay=settings["retry_max_delay"],
            jitter=0.1,
            connect_timeout=settings["connect_timeout"],
        ),
        on_terminate=TerminatePolicy.RECONNECT_AFTER_DELAY,
        terminate_reconnect_delay=settings["terminate_reconnect_delay"],
        state_dir=Path(settings["state_dir"]),
        resync_coalesce_window=settings["resync_coalesce_window"],
        resync_min_interval=settings["resync_min_interval"],
        resync_retry_max_delay=settings["resync_min_interval"] * 4,
        system_info_timeout=settings["system_info_timeout"],
        max_handler_failures=settings["max_handler_failures"],
    )
    return NfmpClient(config, mirror), db


def main() -> int:
    settings = json.loads(Path(sys.argv[1]).read_text())
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(process)d %(threadName)s %(name)s %(levelname)s %(message)s"
    )
    logging.getLogger("stomp.py").setLevel(logging.WARNING)
    client, db = build(settings)
    signal.signal(signal.SIGTERM, lambda *_: client.stop())
    try:
        client.run_forever()
    except Exception:
        logging.getLogger("soak_mirror").exception("the client stopped by itself")
        return 1
    finally:
        db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
