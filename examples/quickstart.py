"""The smallest useful nfmp_client program: one handler, one config, events printed as they come.

Run it against the simulated server (``scripts/broker start``, then ``.venv/bin/nfmp-sim serve --rate 2`` in
another terminal) or against a real STOMP endpoint in front of NFM-P::

    python examples/quickstart.py --server 127.0.0.1:61613 --client-id quickstart@1 [--seconds 30]

Try ``nfmp-sim restart``, ``nfmp-sim terminate quickstart@1`` or stopping the broker while it runs: every
change of the connection is one line. With ``--seconds`` it stops by itself (the durable subscription stays,
so events published meanwhile wait for the next run); Ctrl-C stops it too. ``--decommission`` removes the
durable subscription on the way out.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from nfmp_client import (
    ClientConfig,
    ClientStopped,
    ConnectionLost,
    ConnectionRestored,
    DataEvent,
    Handler,
    NfmpClient,
    ObjectCreation,
    SystemEvent,
    TerminateClientSession,
)


class PrintingHandler(Handler):
    """Prints one line per callback."""

    def __init__(self) -> None:
        self.events = 0

    def on_event(self, event: DataEvent) -> None:
        self.events += 1
        what = event.header.event_name or type(event).__name__
        subject = event.object_full_name if isinstance(event, ObjectCreation) else event.header.object_type
        print(f"event   {what:<22} {subject}", flush=True)

    def on_system_event(self, event: SystemEvent) -> None:
        print(f"system  {type(event).__name__}", flush=True)

    def on_session_terminated(self, notice: TerminateClientSession) -> None:
        print(f"ended   the server terminated the session of {notice.client_id}", flush=True)

    def on_connection_lost(self, cause: ConnectionLost) -> None:
        print(f"lost    {cause.server}: {cause.reason.value}: {cause.detail}", flush=True)

    def on_connection_restored(self, info: ConnectionRestored) -> None:
        print(
            f"up      {info.server} after {info.attempts} attempt(s), down {info.downtime:.1f} s", flush=True
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", action="append", help="HOST:PORT, primary first (repeatable)")
    parser.add_argument("--client-id", default="quickstart@1", help="the OSS client id, name@ID")
    parser.add_argument("--username", default=os.environ.get("NFMP_USERNAME"))
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    parser.add_argument(
        "--decommission", action="store_true", help="remove the durable subscription at the end"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    config = ClientConfig(
        servers=args.server or ["127.0.0.1:61613"],
        client_id=args.client_id,
        username=args.username,
        password=os.environ.get("NFMP_PASSWORD") if args.username else None,  # never on the command line
    )
    handler = PrintingHandler()
    client = NfmpClient(config, handler)
    try:
        client.run_forever(args.seconds)  # until Ctrl-C, or for --seconds
    except ClientStopped as exc:
        print(f"gave up: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.decommission:
            client.decommission()
        else:
            client.stop()
    print(f"stopped after {handler.events} events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
