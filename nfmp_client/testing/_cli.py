"""``nfmp-sim``: run a simulated NFM-P server, and play scenarios against it from another terminal.

``nfmp-sim serve`` runs the server (keep-alives, generated alarm and inventory events, the XML API snapshot
endpoint) and a small control endpoint on loopback. Every other sub-command is one scenario; it asks the
running ``serve`` to play it through that control endpoint (HTTP POST with a JSON body) and prints what the
server did.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final

from .._exceptions import NfmpError
from .._version import __version__
from ._activemq import ActiveMQAdmin
from ._simulator import SimulatedServer
from ._snapshot import SnapshotServer

__all__ = ["main"]

log = logging.getLogger("nfmp_client.testing")

DEFAULT_CONTROL_PORT: Final = 8089
EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NO_SERVER: Final = 3
EXIT_NO_BROKER: Final = 4
_MAX_CONTROL_BODY = 64 * 1024

_DESCRIPTION = """\
A simulated Nokia NFM-P server for testing OSS clients, on top of an ActiveMQ broker.

Start it once:
  nfmp-sim serve                          (broker on 127.0.0.1:61613, JMX on port 11099)

then, from another terminal, make things happen to the clients connected to it:
  nfmp-sim restart [--wipe]               the server restarts; clients must resync
  nfmp-sim switchover                     the standby server takes over; clients must resync
  nfmp-sim missed-events oss1@1           the server lost events for client oss1@1
  nfmp-sim overflow oss1@1 50             50 events never reach oss1@1, then JmsMissedEvents
  nfmp-sim terminate oss1@1 [--remove]    an administrator ends oss1@1's session
  nfmp-sim silence / nfmp-sim resume      the server hangs (connections stay open) / recovers
  nfmp-sim status                         identity, subscribers, model size

Exit codes: 0 done, 1 the server could not do it, 2 usage error, 3 no `nfmp-sim serve` reachable,
4 `nfmp-sim serve` found no broker.
"""


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() else default


def _control_url() -> str:
    return os.environ.get("NFMP_SIM_CONTROL", f"http://127.0.0.1:{DEFAULT_CONTROL_PORT}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nfmp-sim", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"nfmp-sim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the simulated server until Ctrl-C",
        description="Run the simulated NFM-P server until interrupted: keep-alives on every NFM-P topic, "
        "a SystemInfoEvent to each new subscriber, generated alarm and inventory events, the XML API "
        "snapshot endpoint (POST /xmlapi/invoke: findFaults, find) and the control endpoint the other "
        "sub-commands use.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="the broker's STOMP host (default %(default)s)")
    serve.add_argument(
        "--port",
        type=int,
        default=_env_int("NFMP_BROKER_PORT", 61613),
        help="the broker's STOMP port (default %(default)s, or $NFMP_BROKER_PORT)",
    )
    serve.add_argument(
        "--jmx-url",
        default=f"service:jmx:rmi:///jndi/rmi://127.0.0.1:{_env_int('NFMP_BROKER_JMX_PORT', 11099)}/jmxrmi",
        help="the broker's JMX URL, for closing sessions and removing subscriptions (default %(default)s)",
    )
    serve.add_argument(
        "--keepalive-interval",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="seconds between KeepAliveEvents (default %(default)s; 0 = none)",
    )
    serve.add_argument(
        "--rate", type=float, default=1.0, help="generated events per second (default %(default)s; 0 = none)"
    )
    serve.add_argument(
        "--seed", type=int, default=0, help="seed of the event generator (default %(default)s)"
    )
    serve.add_argument(
        "--xmlapi-port",
        type=int,
        default=8080,
        help="port of the XML API snapshot endpoint on 127.0.0.1 (default %(default)s, as NFM-P)",
    )
    serve.add_argument(
        "--control-port",
        type=int,
        default=DEFAULT_CONTROL_PORT,
        help="port of the control endpoint on 127.0.0.1 (default %(default)s)",
    )
    serve.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the broker at the start and in each reconnection round (default "
        "%(default)g); nothing listening on its port fails at once",
    )
    serve.add_argument(
        "--verbose", "-v", action="store_true", help="log every published message, and stomp.py's lines"
    )

    def scenario(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--control",
            default=_control_url(),
            metavar="URL",
            help="the running `nfmp-sim serve` (default %(default)s, or $NFMP_SIM_CONTROL)",
        )
        return sub

    restart = scenario(
        "restart",
        "The server restarts: every client connection is dropped and sysStartTime/jmsStartTime change. "
        "Non-durable subscriptions are gone; durable ones are kept (with their stored events) unless --wipe.",
    )
    restart.add_argument("--wipe", action="store_true", help="delete the durable subscriptions too")
    switchover = scenario(
        "switchover",
        "Activity switch: the standby server becomes primary (SystemInfoEvent's sysPrimaryIp changes); every "
        "client is disconnected and its subscriptions removed.",
    )
    switchover.add_argument("--primary-ip", help="the new primary's address (default: the next one)")
    missed = scenario(
        "missed-events",
        "Send a JmsMissedEvents to CLIENT: the server says it lost events for that client.",
    )
    missed.add_argument("client", metavar="CLIENT", help="the client id, name@ID")
    overflow = scenario(
        "overflow",
        "The server's queue for CLIENT overflows: N events change the network but never reach CLIENT "
        "(other clients get them), then CLIENT gets a JmsMissedEvents.",
    )
    overflow.add_argument("client", metavar="CLIENT", help="the client id, name@ID")
    overflow.add_argument("count", metavar="N", type=int, help="how many events CLIENT misses")
    terminate = scenario(
        "terminate",
        "An administrator ends CLIENT's session: a TerminateClientSession is sent to it and the broker "
        "closes its connection. With --remove its durable subscription is deleted too, so its next "
        "connection gets a JmsMissedEvents.",
    )
    terminate.add_argument("client", metavar="CLIENT", help="the client id, name@ID")
    terminate.add_argument("--remove", action="store_true", help="delete the durable subscription as well")
    scenario("silence", "The server hangs: no keep-alives or events, while every connection stays open.")
    scenario("resume", "End `silence`: keep-alives and events flow again.")
    scenario("status", "Show the server identity, the subscribed clients and the size of the network model.")
    return parser


# ------------------------------------------------------------------------------------------------ serve


def _status(server: SimulatedServer) -> dict[str, Any]:
    identity = server.identity
    return {
        "sysStartTime": identity.sys_start_time,
        "jmsStartTime": identity.jms_start_time,
        "sysPrimaryIp": identity.primary_ip,
        "silent": server.silent,
        "published": server.published,
        "alarms": len(server.model.alarms()),
        "objects": len(server.model),
        "subscribers": [
            {"client": s.client_id, "topic": s.topic, "durable": s.subscription_name, "selector": s.selector}
            for s in server.subscribers()
        ],
    }


def _scenarios(server: SimulatedServer) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
    def identity(_: object) -> dict[str, Any]:
        return {"sysStartTime": server.identity.sys_start_time, "sysPrimaryIp": server.identity.primary_ip}

    def restart(body: dict[str, Any]) -> dict[str, Any]:
        server.restart(keep_durable_subscriptions=not body.get("wipe", False))
        return identity(body)

    def switchover(body: dict[str, Any]) -> dict[str, Any]:
        server.switchover(body.get("primary_ip"))
        return identity(body)

    def missed(body: dict[str, Any]) -> dict[str, Any]:
        server.missed_events(str(body["client"]))
        return {}

    def overflow(body: dict[str, Any]) -> dict[str, Any]:
        return {"dropped": len(server.overflow(str(body["client"]), int(body["count"])))}

    def terminate(body: dict[str, Any]) -> dict[str, Any]:
        server.terminate(str(body["client"]), remove=bool(body.get("remove", False)))
        return {}

    def silence(_: object) -> dict[str, Any]:
        server.silence()
        return {}

    def resume(_: object) -> dict[str, Any]:
        server.resume()
        return {}

    return {
        "restart": restart,
        "switchover": switchover,
        "missed-events": missed,
        "overflow": overflow,
        "terminate": terminate,
        "silence": silence,
        "resume": resume,
        "status": lambda _: _status(server),
    }


def _control_server(server: SimulatedServer, port: int) -> ThreadingHTTPServer:
    scenarios = _scenarios(server)

    class Control(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the name http.server dispatches to
            name = self.path.strip("/").removeprefix("scenario/")
            action = scenarios.get(name)
            if action is None:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no scenario {name!r}"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > _MAX_CONTROL_BODY:
                self._reply(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
                return
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                result = action(body)
            except (NfmpError, ValueError, KeyError, TypeError) as exc:
                self._reply(HTTPStatus.CONFLICT, {"error": f"{type(exc).__name__}: {exc}"})
                return
            self._reply(HTTPStatus.OK, result)

        def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # http.server's signature
            log.debug("control: " + format, *args)

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Control)
    httpd.daemon_threads = True
    return httpd


def _broker_problem(host: str, port: int, timeout: float) -> str | None:
    """Return why nothing answers on the broker's STOMP port (at once when refused), or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(message)s",
        datefmt="%H:%M:%S",
    )
    # stomp.py logs every failed attempt (several a second while the broker is away); the simulator says it
    # once.
    logging.getLogger("stomp.py").setLevel(logging.WARNING if args.verbose else logging.CRITICAL)
    if not args.connect_timeout > 0:
        print(f"nfmp-sim serve: --connect-timeout must be > 0, not {args.connect_timeout:g}", file=sys.stderr)
        return EXIT_USAGE
    problem = _broker_problem(args.host, args.port, args.connect_timeout)
    if problem is not None:
        print(
            f"nfmp-sim: no broker at {args.host}:{args.port}: {problem} (is it running? --host and --port "
            "say where it is)",
            file=sys.stderr,
        )
        return EXIT_NO_BROKER
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server = SimulatedServer(
        args.host,
        args.port,
        admin=ActiveMQAdmin(args.jmx_url),
        seed=args.seed,
        keepalive_interval=args.keepalive_interval,
        connect_timeout=args.connect_timeout,
    )
    try:
        server.start()
    except NfmpError as exc:
        print(f"nfmp-sim: {exc}", file=sys.stderr)
        return EXIT_NO_BROKER
    try:
        with SnapshotServer(server.model, port=args.xmlapi_port) as snapshot:
            control = _control_server(server, args.control_port)
            threading.Thread(
                target=control.serve_forever, args=(0.1,), name="nfmp-sim-control", daemon=True
            ).start()
            log.info(
                "nfmp-sim: XML API at %s; control at http://127.0.0.1:%d", snapshot.url, args.control_port
            )
            server.set_rate(args.rate)
            with contextlib.suppress(KeyboardInterrupt):
                stopping.wait()
            control.shutdown()
    finally:
        server.stop()
    return EXIT_OK


# --------------------------------------------------------------------------------------------- scenarios


def _play(args: argparse.Namespace) -> int:
    body = {
        key: value
        for key, value in vars(args).items()
        if key not in ("command", "control") and value is not None
    }
    request = urllib.request.Request(  # noqa: S310  # the URL is the operator's own control endpoint
        f"{args.control.rstrip('/')}/scenario/{args.command}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310  # see above
            result = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        error = json.loads(exc.read() or b"{}").get("error", exc.reason)
        print(f"nfmp-sim {args.command}: the server could not do it: {error}", file=sys.stderr)
        return EXIT_FAILED
    except (urllib.error.URLError, OSError) as exc:
        print(
            f"nfmp-sim {args.command}: no `nfmp-sim serve` at {args.control} ({exc}); start one first",
            file=sys.stderr,
        )
        return EXIT_NO_SERVER
    print(_describe(args, result))
    return EXIT_OK


def _describe(args: argparse.Namespace, result: dict[str, Any]) -> str:
    match args.command:
        case "restart":
            kept = "wiped" if args.wipe else "kept"
            return f"restarted: sysStartTime {result['sysStartTime']}, durable subscriptions {kept}"
        case "switchover":
            return f"activity switch: primary is now {result['sysPrimaryIp']}"
        case "missed-events":
            return f"JmsMissedEvents sent to {args.client}"
        case "overflow":
            return f"{result['dropped']} events dropped for {args.client}, then JmsMissedEvents sent"
        case "terminate":
            removed = " and its durable subscription removed" if args.remove else ""
            return f"session of {args.client} terminated{removed}"
        case "silence":
            return "the server is silent (hung); `nfmp-sim resume` ends it"
        case "resume":
            return "the server talks again"
        case _:
            return json.dumps(result, indent=2)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``nfmp-sim`` command line; return its exit code."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    return _play(args)


if __name__ == "__main__":
    sys.exit(main())
