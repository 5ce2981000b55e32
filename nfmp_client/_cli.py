"""``nfmp-client``: watch an NFM-P event stream from a terminal; remove a subscription; inspect the state.

``nfmp-client watch`` connects with the library (the same reconnection, watchdog and resync decisions an
application gets) and prints one line per event, connection change and resync request; ``--json`` prints one
JSON object per line instead. A watcher leaves nothing behind: its subscription is non-durable
(``--durable`` asks for a durable one, which the broker keeps, collecting events, until
``nfmp-client unsubscribe`` removes it), and its resync baseline goes to a temporary directory, deleted when
it ends (``--state-dir`` keeps it). It refuses a client id that has a resync baseline, in the default state
directory or the one given: that is an application's, and a watcher with it would take the application's
place on the broker, or with ``--durable`` drain and acknowledge the backlog the broker keeps for the
application (``--force`` does it anyway).

``nfmp-client unsubscribe`` deletes a durable subscription and the events the broker stores for it.
``nfmp-client state show`` prints the resync baseline kept for a client id; ``state reset`` deletes it (the
next start resyncs as a first one).

The password of ``--username`` comes from ``--password-file`` or the ``NFMP_PASSWORD`` environment variable,
never from the command line, and is never printed.

Exit codes:

===  ==============================================================================================
0    done: Ctrl-C, SIGTERM or ``--seconds`` ended a watch that had connected; a command did its work
1    an error: a state file that cannot be used, the broker refused to remove a subscription, an
     internal error
2    a usage error (an unknown option, a missing argument, an unreadable password file)
3    nothing to show: no state file for that client id
4    no connection: the watch ended (``--seconds``, Ctrl-C, SIGTERM) before it ever connected, or
     gave up (a refused login, ``--max-attempts``); ``unsubscribe`` reached no server
5    the server terminated the session (TerminateClientSession): an administrator ended it
6    refused: the client id has a resync baseline (an application's); ``--force`` overrides
130  interrupted (Ctrl-C) while a command other than ``watch`` was at work
141  standard output was closed (``nfmp-client watch | head``): 128 + SIGPIPE, as a shell reports a
     program that SIGPIPE ended; the watcher stops quietly
===  ==============================================================================================
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, TextIO

import attrs

from ._client import Handler, NfmpClient
from ._clock import Clock, utc_now
from ._config import DEFAULT_STOMP_PORT, DEFAULT_TOPIC, ClientConfig, RetryPolicy, TlsConfig
from ._coordinator import default_state_dir
from ._engine import Runner, TransportFactory
from ._events import (
    AttributeValueChange,
    DataEvent,
    EventVessel,
    ObjectCreation,
    ObjectDeletion,
    SystemEvent,
    TerminateClientSession,
)
from ._exceptions import (
    ClientFailed,
    ClientStopped,
    MalformedMessage,
    NfmpError,
    SessionTerminated,
    SubscriptionRemovalFailed,
)
from ._resync import ResyncRequest
from ._state import StateStore
from ._status import ConnectionLost, ConnectionRestored, LossReason
from ._supervisor import GIVING_UP
from ._version import __version__

__all__ = ["main"]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOTHING: Final = 3
EXIT_UNREACHABLE: Final = 4
EXIT_TERMINATED: Final = 5
EXIT_REFUSED: Final = 6
EXIT_INTERRUPTED: Final = 130  # 128 + SIGINT
EXIT_BROKEN_PIPE: Final = 141  # 128 + SIGPIPE

_EXIT_CODES: Final = (
    (EXIT_OK, "done: Ctrl-C, SIGTERM or --seconds ended a watch that had connected; a command did its work"),
    (EXIT_FAILED, "an error: an unusable state file, the broker refused a removal, an internal error"),
    (EXIT_USAGE, "a usage error (an unknown option, a missing argument, an unreadable password file)"),
    (EXIT_NOTHING, "nothing to show: no state file for that client id"),
    (
        EXIT_UNREACHABLE,
        "no connection: the watch ended before it ever connected, or gave up (a refused login,\n"
        "       --max-attempts); unsubscribe reached no server",
    ),
    (EXIT_TERMINATED, "the server terminated the session (TerminateClientSession)"),
    (EXIT_REFUSED, "refused: the client id has a resync baseline (an application's); --force overrides"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C) while a command other than watch was at work"),
    (EXIT_BROKEN_PIPE, "standard output was closed (nfmp-client watch | head): 128 + SIGPIPE"),
)

_DESCRIPTION: Final = (
    """\
Watch a Nokia NFM-P event stream from a terminal, remove a durable subscription, and inspect or reset
the resync baseline the library keeps for a client id.

  nfmp-client watch --server nfmp-a:61613 --client-id look@1         # Ctrl-C ends it
  nfmp-client unsubscribe --server nfmp-a:61613 --client-id look@1   # what watch --durable left
  nfmp-client state show --client-id oss1@1                          # the persisted resync baseline
  nfmp-client state reset --client-id oss1@1                         # delete it: the next start resyncs

A watcher leaves nothing behind: a non-durable subscription (--durable for a durable one) and its resync
baseline in a temporary directory (--state-dir to keep it). It refuses a client id that has a baseline,
an application's (--force to watch with it anyway). The password of --username comes from
--password-file or $NFMP_PASSWORD, never from the command line.

exit codes:
"""
    + "\n".join(f"  {code:<4} {meaning}" for code, meaning in _EXIT_CODES)
    + "\n"
)

_COLOURS: Final = {
    "ObjectCreation": "32",  # green
    "ObjectDeletion": "31",  # red
    "AttributeValueChange": "33",  # yellow
    "system": "36",  # cyan
    "connection": "1;34",  # bold blue
    "problem": "1;33",  # bold yellow
    "resync": "1;35",  # bold magenta
    "malformed": "1;31",  # bold red
}
_CONNECTION_FAILURES: Final = frozenset({LossReason.SOCKET_ERROR, LossReason.CONNECT_TIMEOUT})
_NO_SOCKET: Final = "cannot open a connection: "  # the transport's detail before the socket's error
_STOMP_LOGGER: Final = "stomp.py"


class _Usage(Exception):
    """A usage error found after parsing (exit 2), with its message."""


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


def _explain(cause: ConnectionLost) -> str:
    """Return why *cause* happened: the socket's own error for a connection that could not be opened."""
    if cause.reason in _CONNECTION_FAILURES:
        return cause.detail.removeprefix(_NO_SOCKET)
    return f"{cause.reason.value}: {cause.detail}"


class _Printer(Handler):
    """Prints every callback as one line (text, coloured on a terminal, or JSON); stops on a closed output.

    Connection problems are said once: a failed attempt is printed when its reason differs from the last
    one printed for that server (every attempt with *verbose*). Once the output is closed (the reader of a
    pipe went away) nothing more is written and the client is asked to stop.
    """

    def __init__(
        self,
        out: TextIO,
        *,
        as_json: bool,
        colour: bool,
        verbose: bool,
        durable: bool,
    ) -> None:
        self._out = out
        self._json = as_json
        self._colour = colour
        self._verbose = verbose
        self._durable = durable
        self._lock = threading.Lock()
        self._said: dict[str, tuple[str, str]] = {}  # server -> the failure last printed for it
        self.on_broken: Callable[[], None] = lambda: None
        """Called once when the output is closed (the command stops the client)."""
        self.broken = False
        """Whether the output was closed."""
        self.connected = False
        """Whether the client ever connected."""
        self.failed_attempts = 0
        """Failed connection attempts so far."""
        self.last_failure: str | None = None
        """The last failed attempt or loss, as ``server: why``."""

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
            if self.broken:
                return
            try:
                print(line, file=self._out, flush=True)
            except BrokenPipeError:
                self.broken = True
            else:
                return
        self.on_broken()

    def on_event(self, event: DataEvent) -> None:
        """Print a data event."""
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
        """Print a system event (in text, a TerminateClientSession is said by the closing message)."""
        if isinstance(event, TerminateClientSession) and not self._json:
            return
        name = type(event).__name__
        self._emit("system", "system", name, {"event": name})

    def on_session_terminated(self, notice: TerminateClientSession) -> None:
        """Record it in JSON; in text the command's closing message says it."""
        if self._json:
            self._emit("terminated", "connection", "", {"client_id": notice.client_id})

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        """Print a lost connection; a failed attempt only when its reason is new (or with --verbose)."""
        why = _explain(cause)
        self.last_failure = f"{cause.server}: {why}"
        fields = {
            "server": cause.server,
            "reason": cause.reason.value,
            "detail": why,
            "attempt": cause.attempt,
        }
        if cause.attempt == 0:  # an established connection ended
            self._said.clear()
            if self._json:
                self._emit("connection-lost", "connection", "", fields)
            elif cause.reason is not LossReason.SESSION_TERMINATED:  # the closing message says that one
                self._emit("", "connection", f"connection to {cause.server} lost: {why}; reconnecting", {})
            return
        self.failed_attempts += 1
        said = (cause.reason.value, why)
        if self._said.get(cause.server) == said and not self._verbose:
            return
        self._said[cause.server] = said
        if self._json:
            self._emit("connect-failed", "problem", "", {**fields, "retrying": cause.retryable})
        elif cause.retryable:  # one that is not retried ends the command, whose message says it
            verb = "connect" if not self.connected else "reconnect"
            self._emit("", "problem", f"cannot {verb} to {cause.server}: {why} (retrying; Ctrl-C stops)", {})

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        """Print a connection (the first one, or one after a loss)."""
        first = not self.connected
        self.connected = True
        self._said.clear()
        if first:
            kind = "durable" if self._durable else "non-durable"
            text = f"connected to {info.server} ({kind} subscription)"
        else:
            text = f"reconnected to {info.server} after {info.downtime:.1f} s ({info.attempts} attempts)"
        self._emit(
            "connection-restored",
            "connection",
            text,
            {"server": info.server, "attempts": info.attempts, "downtime": round(info.downtime, 3)},
        )

    def on_resync_required(self, request: ResyncRequest) -> None:
        """Print a resync request; a watcher keeps no copy, so the request completes when this returns."""
        reasons = sorted(r.value for r in request.reasons)
        self._emit(
            "resync",
            "resync",
            f"resync #{request.epoch} needed: {request.reason.value} {dict(request.evidence) or ''}",
            {"epoch": request.epoch, "reason": request.reason.value, "reasons": reasons, **request.evidence},
        )

    def on_malformed_message(self, error: MalformedMessage) -> None:
        """Print an undecodable message."""
        self._emit(
            "malformed",
            "malformed",
            f"malformed message ({len(error.payload)} bytes): {error.reason}",
            {"reason": error.reason, "bytes": len(error.payload)},
        )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"seconds > 0, not {text!r}")
    return value


def _count(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise argparse.ArgumentTypeError(f"a whole number of at least 1, not {text!r}")
    return int(text)


def _connection_options() -> argparse.ArgumentParser:
    """Return the options every connecting command shares: servers, client id, login, TLS, timeouts."""
    options = argparse.ArgumentParser(add_help=False)
    where = options.add_argument_group("connection")
    where.add_argument(
        "--server",
        action="append",
        required=True,
        metavar="HOST[:PORT]",
        help=f"a STOMP server of the broker; the port is {DEFAULT_STOMP_PORT} when not given; repeat for "
        "the standby, the primary first ([v6addr]:PORT for IPv6)",
    )
    where.add_argument("--client-id", required=True, metavar="NAME@ID", help="the OSS client id")
    where.add_argument(
        "--username",
        default=os.environ.get("NFMP_USERNAME") or None,
        help="the STOMP login (default: $NFMP_USERNAME); its password comes from --password-file or "
        "$NFMP_PASSWORD",
    )
    where.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="read the password of --username from the first line of FILE (else from $NFMP_PASSWORD); "
        "never given on the command line, never printed",
    )
    where.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=RetryPolicy().connect_timeout,
        metavar="SECONDS",
        help="the longest one connection attempt may take (default %(default)g)",
    )
    tls = options.add_argument_group("TLS (STOMP over TLS: give the broker's TLS port in --server)")
    tls.add_argument(
        "--tls", action="store_true", help="connect over TLS, verifying the broker's certificate and name"
    )
    tls.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="the CA(s) to trust (default: the system's); implies --tls",
    )
    tls.add_argument(
        "--cert-file",
        type=Path,
        metavar="PEM",
        help="a client certificate, for brokers that ask; implies --tls",
    )
    tls.add_argument(
        "--key-file", type=Path, metavar="PEM", help="the client certificate's key; implies --tls"
    )
    options.add_argument("--verbose", action="store_true", help="the library's log lines on stderr")
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nfmp-client", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"nfmp-client {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    connection = _connection_options()

    watch = commands.add_parser(
        "watch",
        parents=[connection],
        help="print the event stream, connection changes and resync requests",
        description="Print the event stream, connection changes and resync requests, one line each, until "
        "Ctrl-C or --seconds. Resync requests complete at once (a watcher keeps no copy). The subscription "
        "is non-durable and the resync baseline temporary, unless told otherwise.",
    )
    stream = watch.add_argument_group("the stream")
    stream.add_argument(
        "--topic",
        default=DEFAULT_TOPIC,
        help="the topic (default %(default)s); on a JMS bridge's broker its virtual topic, "
        "VirtualTopic.5620-SAM-topic-xml (never an application's queue: a watch would take its events)",
    )
    stream.add_argument(
        "--upstream-client-id",
        default=None,
        metavar="NAME@ID",
        help="through a JMS bridge: NFM-P's client id, which the bridge holds (the selector and the notices "
        "are for it)",
    )
    stream.add_argument(
        "--filter",
        default="",
        metavar="SELECTOR",
        help="a JMS selector for data events (system events always)",
    )
    durability = stream.add_mutually_exclusive_group()
    durability.add_argument(
        "--durable",
        action="store_true",
        help="a durable subscription: the broker keeps collecting events for it after the watch, until "
        "`nfmp-client unsubscribe` removes it",
    )
    durability.add_argument(
        "--non-durable",
        action="store_true",
        help="deprecated and ignored: non-durable is the default",
    )
    stream.add_argument("--json", action="store_true", help="one JSON object per line")
    stream.add_argument(
        "--seconds", type=_seconds, default=None, help="stop after this long (default: at Ctrl-C)"
    )
    stream.add_argument(
        "--max-attempts",
        type=_count,
        default=None,
        metavar="N",
        help="give up after N failed rounds of connection attempts in a row (default: keep trying)",
    )
    safety = watch.add_argument_group("state")
    safety.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the resync baseline in DIR (default: a temporary directory, deleted at the end)",
    )
    safety.add_argument(
        "--force",
        action="store_true",
        help="watch with a client id that has a resync baseline (an application's) all the same",
    )

    unsubscribe = commands.add_parser(
        "unsubscribe",
        parents=[connection],
        help="delete a durable subscription and the events the broker keeps for it",
        description="Delete the durable subscription of a client id (`watch --durable` leaves one) and the "
        "events the broker stores for it; the first server that confirms is enough. The client id must not "
        "be connected meanwhile. Deleting one that does not exist succeeds.",
    )
    unsubscribe.add_argument(
        "--subscription-name", default=None, help="the subscription's name (default: the client id)"
    )
    unsubscribe.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="a state directory where an application keeps its baseline, checked besides the default",
    )
    unsubscribe.add_argument(
        "--force",
        action="store_true",
        help="remove the subscription of a client id that has a resync baseline (an application's)",
    )

    state = commands.add_parser("state", help="show or reset the persisted resync baseline of a client id")
    state_commands = state.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text in (("show", "print it"), ("reset", "delete it (the next start resyncs)")):
        sub = state_commands.add_parser(action, help=help_text, description=help_text)
        sub.add_argument("--client-id", required=True, metavar="NAME@ID", help="the OSS client id")
        sub.add_argument("--state-dir", type=Path, default=None, help="default: $XDG_STATE_HOME/nfmp_client")
        if action == "show":
            sub.add_argument("--json", action="store_true", help="as JSON")
    return parser


# --------------------------------------------------------------------------------------- connecting


def _password(args: argparse.Namespace) -> str | None:
    """Return the password of ``--username`` (``--password-file``, else ``$NFMP_PASSWORD``), or None."""
    if args.password_file is not None:
        if not args.username:
            raise _Usage("--password-file needs --username (or $NFMP_USERNAME)")
        try:
            text: str = args.password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            raise _Usage(f"cannot read the password file {args.password_file}: {why}") from None
        password = text.split("\n", 1)[0].rstrip("\r")
        if not password:
            raise _Usage(f"the password file {args.password_file} holds no password on its first line")
        return password
    if not args.username:
        return None
    from_environment = os.environ.get("NFMP_PASSWORD")
    if from_environment is None:
        raise _Usage(
            f"--username {args.username} needs its password: in a file (--password-file) or in $NFMP_PASSWORD"
        )
    return from_environment


def _tls(args: argparse.Namespace) -> TlsConfig | None:
    files = {"--ca-file": args.ca_file, "--cert-file": args.cert_file, "--key-file": args.key_file}
    if not args.tls and not any(files.values()):
        return None
    for option, path in files.items():
        if path is not None and not path.is_file():
            raise _Usage(f"{option} {path}: no such file")
    return TlsConfig(ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file)


def _config(args: argparse.Namespace, **settings: Any) -> ClientConfig:
    """Build the client configuration of a connecting command.

    Raises:
        _Usage: A setting cannot work (the configuration's message, which never holds the password).
    """
    try:
        return ClientConfig(
            servers=args.server,
            client_id=args.client_id,
            username=args.username,
            password=_password(args),
            tls=_tls(args),
            **settings,
        )
    except (ValueError, TypeError) as exc:  # ConfigError is a ValueError
        raise _Usage(str(exc)) from None


def _claims(client_id: str, state_dir: Path | None) -> list[Path]:
    """Return the state files of *client_id* in the default state directory and in *state_dir*."""
    directories = [default_state_dir()]
    if state_dir is not None and state_dir.resolve() != directories[0].resolve():
        directories.append(state_dir)
    return [path for d in directories if (path := StateStore(d).path_for(client_id)).exists()]


def _refusal(args: argparse.Namespace, what: str) -> str | None:
    """Return why *args* would harm an application that uses the client id, or None."""
    claims = _claims(args.client_id, args.state_dir)
    if not claims:
        return None
    return (
        f"client id {args.client_id} has a resync baseline ({claims[0]}): an application uses it. {what} "
        "Give --force to do it anyway."
    )


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Route log lines for the command: the library's errors (all with --verbose); stomp.py's only with it.

    stomp.py's logger stays enabled for WARNING: the transport reads why a socket could not be opened there.
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    else:
        logging.basicConfig(level=logging.ERROR, format="%(name)s: %(message)s")
    library = logging.getLogger("nfmp_client")
    stomp = logging.getLogger(_STOMP_LOGGER)
    saved = stomp.level, stomp.propagate
    quiet = logging.NullHandler()  # without a handler of its own, Python's last resort would print them

    def said_by_the_command(record: logging.LogRecord) -> bool:
        return verbose or record.msg != GIVING_UP

    stomp.setLevel(logging.WARNING if not verbose else min(logging.WARNING, stomp.getEffectiveLevel()))
    stomp.propagate = verbose
    stomp.addHandler(quiet)
    library.addFilter(said_by_the_command)
    try:
        yield
    finally:
        library.removeFilter(said_by_the_command)
        stomp.removeHandler(quiet)
        stomp.setLevel(saved[0])
        stomp.propagate = saved[1]


@attrs.frozen(kw_only=True)
class _Injected:
    """What tests give every client instead of the real broker, clock and thread (None: the real one)."""

    transport: TransportFactory | None = None
    clock: Clock | None = None
    runner: Runner | None = None


def _client(config: ClientConfig, handler: Handler, injected: _Injected) -> NfmpClient:
    return NfmpClient(
        config, handler, transport=injected.transport, clock=injected.clock, runner=injected.runner
    )


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM (``kill``, ``timeout``) end a watch as Ctrl-C does.

    The client stops, the temporary state directory is removed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signal: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _say(message: str) -> None:
    print(f"nfmp-client: {message}", file=sys.stderr)


# -------------------------------------------------------------------------------------------- watch


def _watch(args: argparse.Namespace, out: TextIO, injected: _Injected) -> int:
    if args.non_durable:
        _say("--non-durable is the default now and ignored (--durable asks for a durable subscription)")
    refusal = _refusal(
        args,
        "With --durable the watcher would take and acknowledge the events the broker keeps for the "
        "application's durable subscription: the application would never get them."
        if args.durable
        else "A watcher with its client id takes the application's place on the broker (one connection "
        "per client id) and gets the notices meant for the application. Watch with a client id of its own "
        "(look@1).",
    )
    if refusal is not None and not args.force:
        _say(refusal)
        return EXIT_REFUSED
    with contextlib.ExitStack() as stack:
        state_dir = args.state_dir or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="nfmp-client-watch-"))
        )
        config = _config(
            args,
            topic=args.topic,
            filter=args.filter,
            durable=args.durable,
            upstream_client_id=args.upstream_client_id,
            state_dir=state_dir,
            retry=_retry(args, max_attempts=args.max_attempts),
        )
        colour = not args.json and out.isatty() and "NO_COLOR" not in os.environ
        printer = _Printer(
            out,
            as_json=args.json,
            colour=colour,
            verbose=args.verbose,
            durable=args.durable,
        )
        client = _client(config, printer, injected)
        printer.on_broken = client.stop  # from a callback it only asks; the client stops when it returns
        stack.enter_context(_logging(args.verbose))
        stack.enter_context(_sigterm_as_interrupt())
        try:
            client.run_forever(args.seconds)  # until Ctrl-C (or SIGTERM), or for --seconds
        except SessionTerminated as exc:
            _say(f"{exc} (an administrator ended it, or a limit of the server); not reconnecting")
            return EXIT_TERMINATED
        except ClientFailed as exc:
            _say(str(exc))
            return EXIT_FAILED
        except ClientStopped as exc:  # gave up: a refused login, --max-attempts
            _say(_gave_up(exc.last_loss, printer))
            return EXIT_UNREACHABLE
        if printer.broken:
            return EXIT_BROKEN_PIPE
        if not printer.connected:
            tried = f"{printer.failed_attempts} failed attempt(s)"
            last = f"; the last: {printer.last_failure}" if printer.last_failure else ""
            _say(f"the watch ended without ever connecting ({tried}{last})")
            return EXIT_UNREACHABLE
    return EXIT_OK


def _retry(args: argparse.Namespace, *, max_attempts: int | None = None) -> RetryPolicy:
    try:
        return RetryPolicy(connect_timeout=args.connect_timeout, max_attempts=max_attempts)
    except ValueError as exc:
        raise _Usage(str(exc)) from None


def _gave_up(loss: ConnectionLost | None, printer: _Printer) -> str:
    if loss is None:
        return "the client stopped"
    why = _explain(loss)
    if loss.reason is LossReason.AUTHENTICATION_FAILED:
        return f"the broker at {loss.server} refused the login: {loss.detail}"
    if not printer.connected:
        return f"gave up: cannot connect to {loss.server}: {why}"
    return f"gave up reconnecting: {loss.server}: {why}"


# -------------------------------------------------------------------------------------- unsubscribe


def _unsubscribe(args: argparse.Namespace, out: TextIO, injected: _Injected) -> int:
    refusal = _refusal(
        args,
        "Removing its durable subscription deletes the events the broker keeps for the application, which "
        "then misses them and must resync.",
    )
    if refusal is not None and not args.force:
        _say(refusal)
        return EXIT_REFUSED
    with tempfile.TemporaryDirectory(prefix="nfmp-client-unsubscribe-") as scratch:
        config = _config(
            args,
            durable=True,
            subscription_name=args.subscription_name,
            state_dir=Path(scratch),  # nothing is read or written there: a removal needs no baseline
            retry=_retry(args),
        )
        with _logging(args.verbose):
            try:
                _client(config, Handler(), injected).decommission()
            except SubscriptionRemovalFailed as exc:
                reasons = "; ".join(f"{f.server}: {_explain(f)}" for f in exc.failures) or "no server"
                if exc.failures and all(f.reason in _CONNECTION_FAILURES for f in exc.failures):
                    _say(f"cannot connect: {reasons}")
                    return EXIT_UNREACHABLE
                in_use = any(f.reason is LossReason.CLIENT_ID_IN_USE for f in exc.failures)
                hint = " (the client id is connected: stop that client first)" if in_use else ""
                _say(f"the durable subscription was not removed{hint}: {reasons}")
                return EXIT_FAILED
    name = config.durable_name
    print(f"durable subscription {name} of {config.client_id}: removed (if there was one)", file=out)
    return EXIT_OK


# -------------------------------------------------------------------------------------------- state


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


def _quiet_stdout(stream: TextIO) -> None:
    """After a closed pipe: point standard output at /dev/null, so that the exit flush raises nothing."""
    if stream is not sys.stdout:
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    *,
    transport: TransportFactory | None = None,
    clock: Clock | None = None,
    runner: Runner | None = None,
) -> int:
    """Run ``nfmp-client`` with *argv* (default: the command line); return the exit code.

    Args:
        argv: The arguments, without the program name.
        out: Where the output goes (default: standard output); messages about the command go to stderr.
        transport: Makes each connection (default: stomp.py; tests pass a ``MemoryBroker``).
        clock: The clients' clock (default: the real one; tests pass a ``FakeClock``).
        runner: Runs each client (default: a thread; tests pass a ``ManualRunner``).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors (2), --help and --version (0)
        return int(exc.code or 0)
    stream = out or sys.stdout
    injected = _Injected(transport=transport, clock=clock, runner=runner)
    try:
        if args.command == "watch":
            code = _watch(args, stream, injected)
            if code == EXIT_BROKEN_PIPE:
                _quiet_stdout(stream)
            return code
        if args.command == "unsubscribe":
            return _unsubscribe(args, stream, injected)
        return _state(args, stream)
    except _Usage as exc:
        print(f"nfmp-client {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NfmpError as exc:  # StateError (an unusable state file) and the like
        _say(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # a command's own output (state show | head)
        _quiet_stdout(stream)
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
