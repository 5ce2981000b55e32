"""Write every NFM-P event as one JSON line, the shape a log shipper (Fluent Bit, Vector, Filebeat) expects.

Connection changes and resync requests are lines of their own (``"kind": "connection-lost"``, ``"resync"``,
...), so a dashboard sees the stream's health next to its content::

    python examples/event_logger.py --server 127.0.0.1:61613 --client-id logger@1 [--output events.jsonl]

A logger keeps no copy of the network, so it completes each resync request at once; the request is logged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from datetime import datetime, timezone
from typing import Any, TextIO

from nfmp_client import (
    ClientConfig,
    ClientStopped,
    ConnectionLost,
    ConnectionRestored,
    DataEvent,
    EventVessel,
    Handler,
    MalformedMessage,
    NfmpClient,
    ResyncRequest,
    SystemEvent,
)


def _plain(value: Any) -> Any:
    # AttributeValue: text, or (name, value) pairs of a structure: as JSON objects.
    if isinstance(value, tuple):
        return {name: _plain(inner) for name, inner in value}
    return value


class JsonLines(Handler):
    """One JSON object per line per callback."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()

    def write(self, kind: str, **fields: Any) -> None:
        line = json.dumps({"ts": datetime.now(timezone.utc).isoformat(), "kind": kind, **fields}, default=str)
        with self.lock:
            self.out.write(line + "\n")
            self.out.flush()

    def on_event(self, event: DataEvent) -> None:
        header = event.header
        fields: dict[str, Any] = {
            "event": type(event).__name__,
            "object_type": header.object_type,
            "category": header.category,
            "os_time": header.os_time,
            "epoch": header.resync_epoch,
            "message_id": header.stomp_headers.get("message-id", ""),
        }
        if isinstance(event, EventVessel):
            fields["events"] = [type(member).__name__ for member in event.events]
        else:
            fields["full_name"] = getattr(event, "object_full_name", "")
            attributes = getattr(event, "attributes", {})
            fields["attributes"] = {name: _plain(value) for name, value in attributes.items()}
        self.write("event", **fields)

    def on_system_event(self, event: SystemEvent) -> None:
        self.write("system", event=type(event).__name__)

    def on_resync_required(self, request: ResyncRequest) -> None:
        self.write(
            "resync", epoch=request.epoch, reason=request.reason.value, evidence=dict(request.evidence)
        )

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        self.write("connection-lost", server=cause.server, reason=cause.reason.value, detail=cause.detail)

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        self.write("connection-restored", server=info.server, downtime=round(info.downtime, 3))

    def on_malformed_message(self, error: MalformedMessage) -> None:
        self.write("malformed", reason=error.reason, bytes=len(error.payload))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", action="append", help="HOST:PORT, primary first (repeatable)")
    parser.add_argument("--client-id", default="logger@1", help="the OSS client id, name@ID")
    parser.add_argument("--output", default="-", help="the file to append to (default: standard output)")
    parser.add_argument("--username", default=os.environ.get("NFMP_USERNAME"))
    parser.add_argument("--state-dir", default=None, help="where the resync baseline is kept")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    args = parser.parse_args()

    out = sys.stdout if args.output == "-" else open(args.output, "a", encoding="utf-8")  # noqa: SIM115
    config = ClientConfig(
        servers=args.server or ["127.0.0.1:61613"],
        client_id=args.client_id,
        username=args.username,
        password=os.environ.get("NFMP_PASSWORD") if args.username else None,
        state_dir=args.state_dir,
    )
    client = NfmpClient(config, JsonLines(out))
    try:
        client.run_forever(args.seconds)  # until Ctrl-C, or for --seconds
    except ClientStopped as exc:
        print(f"gave up: {exc}", file=sys.stderr)
        return 1
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
