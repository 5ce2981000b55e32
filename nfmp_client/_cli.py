"""``nfmp-client``: watch an NFM-P event stream from a terminal, and inspect or reset the persisted state.

``nfmp-client watch`` connects with the library (the same reconnection, watchdog and resync decisions an
application gets) and prints one line per event, connection change and resync request; ``--json`` prints one
JSON object per line instead. ``nfmp-client state show`` prints the resync baseline kept for a client id;
``state reset`` deletes it (the next start resyncs as a first one).

Exit codes: 0 done (Ctrl-C or ``--seconds`` ended a watch), 1 an error (the client gave up reconnecting, a
state file that cannot be used), 2 a usage error, 3 nothing to show (no state file for that client id).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final, TextIO

import attrs

from ._client import Handler, NfmpClient
from ._clock import utc_now
from ._config import ClientConfig
from ._coordinator import default_state_dir
from ._events import (
    AttributeValueChange,
    DataEvent,
    EventVessel,
    ObjectCreation,
    ObjectDeletion,
    SystemEvent,
    TerminateClientSession,
)
from ._exceptions import MalformedMessage, NfmpError
from ._resync import ResyncRequest
from ._state import StateStore
from ._status import ConnectionLost, ConnectionRestored

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOTHING: Final = 3

_COLOURS: Final = {
    "ObjectCreation": "32",  # green
    "ObjectDeletion": "31",  # red
    "AttributeValueChange": "33",  # yellow
    "system": "36",  # cyan
    "connection": "1;34",  # bold blue
    "resync": "1;35",  # bold magenta
    "malformed": "1;31",  # bold red
}


def _summary(event: DataEvent) -> str:
    if isinstance(event, ObjectCreation):
        severity = event.attributes.get("severity")
        return f"{event.object_class} {event.object_full_name}" + (
            f" [{severity}]" if isinstance(severity, str) else ""
        )
    if isinstance(event, ObjectDeletion):
        return event.object_full_name
    if isinstance(event, AttributeValueChange):
        changes = ", ".join(f"{c.name}: {c.old_value} -> {c.new_value}" for c in event.changes)
        return f"{event.object_full_name} {changes}"
    if isinstance(event, EventVessel):
        return f"{len(event.events)} events"
    return event.header.object_type


class _Printer(Handler):
    """Prints every callback as one line (text, coloured on a terminal, or JSON)."""

    def __init__(self, out: TextIO, *, as_json: bool, colour: bool) -> None:
        self._out = out
        self._json = as_json
        self._colour = colour
        self._lock = threading.Lock()

    def _emit(self, kind: str, colour_key: str, text: str, fields: dict[str, Any]) -> None:
        now = utc_now()
        if self._json:
            line = json.dumps({"at": now.isoformat(), "kind": kind, **fields}, default=str, sort_keys=True)
        else:
            stamp = now.astimezone().strftime("%H:%M:%S.%f")[:-3]
            line = f"{stamp} {text}"
            if self._colour and colour_key in _COLOURS:
                line = f"\x1b[{_COLOURS[colour_key]}m{line}\x1b[0m"
        with self._lock:
            print(line, file=self._out, flush=True)

    def on_event(self, event: DataEvent) -> None:
        name = type(event).__name__
        summary = _summary(event)
        self._emit(
            "event",
            name,
            f"{name:<22} {summary}  (epoch {event.header.resync_epoch})",
            {
                "event": name,
                "object_type": event.header.object_type,
                "summary": summary,
                "epoch": event.header.resync_epoch,
                "message_id": event.header.stomp_headers.get("message-id", ""),
            },
        )

    def on_system_event(self, event: SystemEvent) -> None:
        name = type(event).__name__
        self._emit("system", "system", name, {"event": name})

    def on_session_terminated(self, notice: TerminateClientSession) -> None:
        self._emit(
            "terminated",
            "connection",
            f"session terminated by the server ({notice.client_id})",
            {"client_id": notice.client_id},
        )

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        self._emit(
            "connection-lost",
            "connection",
            f"connection to {cause.server} lost: {cause.reason.value}: {cause.detail}",
            {
                "server": cause.server,
                "reason": cause.reason.value,
                "detail": cause.detail,
                "attempt": cause.attempt,
            },
        )

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        self._emit(
            "connection-restored",
            "connection",
            f"connected to {info.server} (attempts {info.attempts}, down {info.downtime:.1f} s)",
            {"server": info.server, "attempts": info.attempts, "downtime": round(info.downtime, 3)},
        )

    def on_resync_required(self, request: ResyncRequest) -> None:
        # A watcher keeps no copy: the request completes when this returns.
        reasons = sorted(r.value for r in request.reasons)
        self._emit(
            "resync",
            "resync",
            f"resync #{request.epoch} needed: {request.reason.value} {dict(request.evidence) or ''}",
            {"epoch": request.epoch, "reason": request.reason.value, "reasons": reasons, **request.evidence},
        )

    def on_malformed_message(self, error: MalformedMessage) -> None:
        self._emit(
            "malformed",
            "malformed",
            f"malformed message ({len(error.payload)} bytes): {error.reason}",
            {"reason": error.reason, "bytes": len(error.payload)},
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nfmp-client", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)

    watch = commands.add_parser("watch", help="print the event stream, connection changes and resyncs")
    watch.add_argument("--server", action="append", required=True, help="HOST:PORT, primary first (repeat)")
    watch.add_argument("--client-id", required=True, help="the OSS client id, name@ID")
    watch.add_argument("--topic", default=None, help="the topic (default 5620-SAM-topic-xml)")
    watch.add_argument("--filter", default="", help="a JMS selector for data events (system events always)")
    watch.add_argument("--username", default=os.environ.get("NFMP_USERNAME"), help="STOMP login")
    watch.add_argument(
        "--non-durable", action="store_true", help="a non-durable subscription (nothing kept while away)"
    )
    watch.add_argument("--json", action="store_true", help="one JSON object per line")
    watch.add_argument("--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)")
    watch.add_argument("--state-dir", type=Path, default=None, help="where the resync baseline is kept")
    watch.add_argument("--verbose", action="store_true", help="the library's log lines on stderr")

    state = commands.add_parser("state", help="the persisted resync baseline of a client id")
    state_commands = state.add_subparsers(dest="action", required=True)
    for action, help_text in (("show", "print it"), ("reset", "delete it (the next start resyncs)")):
        sub = state_commands.add_parser(action, help=help_text)
        sub.add_argument("--client-id", required=True, help="the OSS client id, name@ID")
        sub.add_argument("--state-dir", type=Path, default=None, help="default: $XDG_STATE_HOME/nfmp_client")
        if action == "show":
            sub.add_argument("--json", action="store_true", help="as JSON")
    return parser


def _watch(args: argparse.Namespace, out: TextIO) -> int:
    password = os.environ.get("NFMP_PASSWORD") if args.username else None
    settings: dict[str, Any] = {
        "servers": args.server,
        "client_id": args.client_id,
        "filter": args.filter,
        "durable": not args.non_durable,
        "username": args.username,
        "password": password,
        "state_dir": args.state_dir,
    }
    if args.topic:
        settings["topic"] = args.topic
    try:
        config = ClientConfig(**settings)
    except (ValueError, TypeError) as exc:
        print(f"nfmp-client: {exc}", file=sys.stderr)
        return EXIT_USAGE
    colour = not args.json and out.isatty() and "NO_COLOR" not in os.environ
    client = NfmpClient(config, _Printer(out, as_json=args.json, colour=colour))
    try:
        client.run_forever(args.seconds)  # until Ctrl-C, or for --seconds
    except NfmpError as exc:  # ClientStopped (gave up), StateError (an unusable state file)
        print(f"nfmp-client: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _state(args: argparse.Namespace, out: TextIO) -> int:
    store = StateStore(args.state_dir or default_state_dir())
    if args.action == "reset":
        removed = store.remove(args.client_id)
        print(
            f"{store.path_for(args.client_id)}: " + ("removed" if removed else "there was none"),
            file=out,
        )
        return EXIT_OK
    baseline = store.load(args.client_id)
    if baseline is None:
        print(f"no state for {args.client_id} in {store.directory}", file=sys.stderr)
        return EXIT_NOTHING
    values = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in attrs.asdict(baseline).items()}
    if args.json:
        print(json.dumps(values, sort_keys=True), file=out)
    else:
        print(f"{store.path_for(args.client_id)}", file=out)
        width = max(len(name) for name in values)
        for name, value in values.items():
            print(f"  {name:<{width}}  {value}", file=out)
    return EXIT_OK


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run ``nfmp-client`` with *argv* (default: the command line); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
        return int(exc.code or 0)
    stream = out or sys.stdout
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    else:
        logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    try:
        if args.command == "watch":
            return _watch(args, stream)
        return _state(args, stream)
    except NfmpError as exc:
        print(f"nfmp-client: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
