"""Keep a local SQLite table of NFM-P's active alarms in sync: the OSS pattern in one file.

On every resync request (the first start, a server restart, a switchover, missed events, ...) it reads the
current alarm list over the XML API (``findFaults``) and replaces the table in one transaction; between
resyncs it applies each alarm event (raised, changed, cleared). One line per change::

    python examples/alarm_mirror.py --server 127.0.0.1:61613 --xmlapi http://127.0.0.1:8080 \\
        --client-id mirror@1 --db alarms.sqlite [--seconds 60]

Against the simulated server: ``scripts/broker start``, then ``.venv/bin/nfmp-sim serve --rate 2`` (its XML
API endpoint is printed when it starts), then this. Try ``nfmp-sim restart`` or ``nfmp-sim overflow
mirror@1 5`` meanwhile: the mirror resyncs and stays equal to the server's truth.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from typing import Any

from nfmp_client import (
    AttributeValueChange,
    ClientConfig,
    ClientStopped,
    ConnectionLost,
    ConnectionRestored,
    DataEvent,
    EventVessel,
    Handler,
    NfmpClient,
    ObjectCreation,
    ObjectDeletion,
    ResyncRequest,
    XmlApiClient,
    XmlApiCredentials,
    XmlApiObject,
)

ALARM_OBJECT_TYPE = "fm.AlarmObject"  # the MTOSI_objectType of alarm events

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    full_name TEXT PRIMARY KEY,
    severity TEXT,
    attributes TEXT NOT NULL
)
"""


class AlarmMirror(Handler):
    """The alarm table, rebuilt on each resync and updated from the events."""

    def __init__(self, db: sqlite3.Connection, api: XmlApiClient, *, verbose: bool = True) -> None:
        self.db = db
        self.api = api
        self.verbose = verbose
        self.resyncs: list[ResyncRequest] = []
        db.execute(SCHEMA)
        db.commit()

    # -- resync: the whole truth from the XML API

    def on_resync_required(self, request: ResyncRequest) -> None:
        alarms = self.api.find_faults()
        with self.db:  # one transaction: the table is never seen half rebuilt
            self.rebuild(alarms)
        self.resyncs.append(request)
        self.say(f"resync #{request.epoch} ({request.reason.value}): {len(alarms)} active alarms")

    def rebuild(self, alarms: list[XmlApiObject]) -> None:
        """Replace the table with *alarms* (inside the caller's transaction)."""
        self.db.execute("DELETE FROM alarms")
        self.db.executemany(
            "INSERT INTO alarms VALUES (?, ?, ?)",
            [(a.full_name, _text(a.attributes.get("severity")), json.dumps(a.attributes)) for a in alarms],
        )

    def say(self, line: str) -> None:
        """Print one line (unless quiet)."""
        if self.verbose:
            print(line, flush=True)

    def alarms(self) -> dict[str, dict[str, Any]]:
        """The table: full name -> attributes."""
        rows = self.db.execute("SELECT full_name, attributes FROM alarms").fetchall()
        return {name: json.loads(attributes) for name, attributes in rows}

    # -- events: one change each

    def on_event(self, event: DataEvent) -> None:
        with self.db:
            self.apply(event)

    def apply(self, event: DataEvent) -> None:
        """Change the table as *event* says (inside the caller's transaction)."""
        if isinstance(event, EventVessel):
            for member in event.events:
                self.apply(member)  # type: ignore[arg-type]
        elif isinstance(event, ObjectCreation) and event.is_alarm:
            self.db.execute(
                "INSERT OR REPLACE INTO alarms VALUES (?, ?, ?)",
                (
                    event.object_full_name,
                    _text(event.attributes.get("severity")),
                    json.dumps(event.attributes),
                ),
            )
            severity = _text(event.attributes.get("severity"))
            self.say(f"raised   {severity:<9} {event.object_full_name}")
        elif isinstance(event, AttributeValueChange):  # of an alarm in the table (others are not there)
            row = self.db.execute(
                "SELECT attributes FROM alarms WHERE full_name = ?", (event.object_full_name,)
            ).fetchone()
            if row is None:
                return  # an alarm this mirror never saw: the next resync brings it
            attributes = json.loads(row[0])
            for change in event.changes:
                if change.new_value is not None:
                    attributes[change.name] = change.new_value
            self.db.execute(
                "UPDATE alarms SET severity = ?, attributes = ? WHERE full_name = ?",
                (_text(attributes.get("severity")), json.dumps(attributes), event.object_full_name),
            )
            changes = ", ".join(f"{c.name}={c.new_value}" for c in event.changes)
            self.say(f"changed  {changes} on {event.object_full_name}")
        elif isinstance(event, ObjectDeletion):
            deleted = self.db.execute("DELETE FROM alarms WHERE full_name = ?", (event.object_full_name,))
            if deleted.rowcount:
                self.say(f"cleared  {event.object_full_name}")

    # -- the connection, for the operator

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        self.say(f"lost     {cause.server}: {cause.reason.value}: {cause.detail}")

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        self.say(f"up       {info.server} (down {info.downtime:.1f} s)")


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", action="append", help="STOMP HOST:PORT, primary first (repeatable)")
    parser.add_argument("--xmlapi", required=True, help="the XML API base URL, e.g. https://nfmp-a:8443")
    parser.add_argument("--client-id", default="mirror@1", help="the OSS client id, name@ID")
    parser.add_argument("--db", default="alarms.sqlite", help="the SQLite file")
    parser.add_argument(
        "--username", default=os.environ.get("NFMP_USERNAME"), help="login (both JMS and XML API)"
    )
    parser.add_argument("--state-dir", default=None, help="where the resync baseline is kept")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    parser.add_argument(
        "--resync-min-interval", type=float, default=10.0, help="seconds between two resyncs (default 10)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    password = os.environ.get("NFMP_PASSWORD") if args.username else None  # never on the command line
    credentials = XmlApiCredentials(user=args.username, password=password or "") if args.username else None
    api = XmlApiClient(args.xmlapi, credentials=credentials, timeout=60.0)
    db = sqlite3.connect(args.db, check_same_thread=False)  # used by the client's one handler thread
    config = ClientConfig(
        servers=args.server or ["127.0.0.1:61613"],
        client_id=args.client_id,
        username=args.username,
        password=password,
        filter=f"MTOSI_objectType = '{ALARM_OBJECT_TYPE}'",  # alarms only (system events always pass)
        state_dir=args.state_dir,
        resync_min_interval=args.resync_min_interval,
    )
    client = NfmpClient(config, AlarmMirror(db, api))
    try:
        client.run_forever(args.seconds)  # until Ctrl-C, or for --seconds
    except ClientStopped as exc:
        print(f"gave up: {exc}", file=sys.stderr)
        return 1
    finally:
        count = db.execute("SELECT COUNT(*) FROM alarms").fetchone()[0]
        db.close()
    print(f"stopped: {count} active alarms in {args.db}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
