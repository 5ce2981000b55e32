"""An asyncio application on ``nfmp_client.aio``: NFM-P's active alarms, kept in memory, served to async code.

The board of active alarms is the application's copy. Its resync is a coroutine: it reads the alarm list
over the XML API (``findFaults``, in a thread: the XML API client blocks) and replaces the board; meanwhile
the client holds the events that arrive and replays them afterwards. Between resyncs, the ``async for`` loop
applies each event; an event is acknowledged only once the loop asks for the next one, so a crash or a stop
loses nothing, and a slow loop slows the stream instead of filling memory. A second task reads the
notifications (connection lost and restored, resync requests) and reports the client's health::

    python examples/asyncio_bridge.py --server 127.0.0.1:61613 --client-id async@1 \\
        [--xmlapi http://127.0.0.1:8080] [--seconds 30]

Without ``--xmlapi`` the resync has nothing to read and starts an empty board. Against the simulated server:
start the broker and ``nfmp-sim serve --rate 2`` (it prints its XML API address), then this.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

from nfmp_client import (
    AttributeValueChange,
    ClientConfig,
    ClientStopped,
    ConnectionLost,
    ConnectionRestored,
    DataEvent,
    EventVessel,
    ObjectCreation,
    ObjectDeletion,
    ResyncRequest,
    XmlApiClient,
    XmlApiCredentials,
)
from nfmp_client.aio import AsyncNfmpClient


class AlarmBoard:
    """Active alarms by full name -> severity: rebuilt at each resync, changed by each event."""

    def __init__(self, api: XmlApiClient | None) -> None:
        self.api = api
        self.alarms: dict[str, str] = {}

    async def resync(self, request: ResyncRequest) -> None:
        """Rebuild from the server's current alarms (the client completes *request* when this returns)."""
        alarms = await asyncio.to_thread(self.api.find_faults) if self.api is not None else []
        self.alarms = {alarm.full_name: str(alarm.attributes.get("severity", "")) for alarm in alarms}
        print(f"resync #{request.epoch} ({request.reason.value}) done: {len(self.alarms)} active alarms")

    def apply(self, event: DataEvent) -> None:
        """Change the board as *event* says."""
        if isinstance(event, EventVessel):
            for member in event.events:
                if isinstance(member, (ObjectCreation, AttributeValueChange, ObjectDeletion)):
                    self.apply(member)
        elif isinstance(event, ObjectCreation) and event.is_alarm:
            self.alarms[event.object_full_name] = str(event.attributes.get("severity", ""))
        elif isinstance(event, AttributeValueChange) and event.object_full_name in self.alarms:
            for change in event.changes:
                if change.name == "severity" and change.new_value is not None:
                    self.alarms[event.object_full_name] = str(change.new_value)
        elif isinstance(event, ObjectDeletion):
            self.alarms.pop(event.object_full_name, None)


async def consume(client: AsyncNfmpClient, board: AlarmBoard) -> None:
    """Apply every event, in order; each is acknowledged when the loop comes back for the next."""
    async with client.events() as events:  # an exception here: the event comes again (the client retries)
        async for event in events:
            board.apply(event)
            await asyncio.sleep(0)  # stands for the application's own async work (a database, a webhook)
            print(
                f"event    {type(event).__name__:<22} epoch {event.header.resync_epoch}  "
                f"({len(board.alarms)} active)",
                flush=True,
            )


async def report(client: AsyncNfmpClient) -> None:
    """Tell the operator what happens to the connection."""
    async for notice in client.notifications():
        if isinstance(notice, ConnectionLost):
            print(f"lost     {notice.server}: {notice.reason.value}: {notice.detail}", flush=True)
        elif isinstance(notice, ConnectionRestored):
            print(f"up       {notice.server}: {client.health().reason}", flush=True)
        elif isinstance(notice, ResyncRequest):
            print(f"resync   #{notice.epoch} needed: {notice.reason.value}", flush=True)


async def main_async(config: ClientConfig, api: XmlApiClient | None, seconds: float | None) -> int:
    board = AlarmBoard(api)
    async with AsyncNfmpClient(config, resync=board.resync) as client:
        reporter = asyncio.create_task(report(client))
        try:
            await asyncio.wait_for(consume(client, board), seconds)
        except asyncio.TimeoutError:
            pass  # --seconds ended: leaving ``async with`` stops the client (the subscription stays)
        except ClientStopped as exc:
            print(f"gave up: {exc}", file=sys.stderr)
            return 1
        finally:
            reporter.cancel()
    print(f"stopped: {len(board.alarms)} active alarms on the board", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", action="append", help="HOST:PORT, primary first (repeatable)")
    parser.add_argument("--client-id", default="async@1", help="the OSS client id, name@ID")
    parser.add_argument("--xmlapi", default=None, help="the XML API base URL, e.g. https://nfmp-a:8443")
    parser.add_argument("--state-dir", default=None, help="where the resync baseline is kept")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    username = os.environ.get("NFMP_USERNAME")
    config = ClientConfig(
        servers=args.server or ["127.0.0.1:61613"],
        client_id=args.client_id,
        username=username,
        password=os.environ.get("NFMP_PASSWORD") if username else None,
        state_dir=args.state_dir,
    )
    credentials = XmlApiCredentials(user=username, password=config.password or "") if username else None
    api = XmlApiClient(args.xmlapi, credentials=credentials) if args.xmlapi else None
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(main_async(config, api, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
