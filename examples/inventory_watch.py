"""Follow one class of inventory objects (physical ports by default) and show what changes on them.

A selector keeps everything else on the server (system events always pass): only the class asked for
crosses the network. Each creation, attribute change and deletion is one line; after a resync the current
objects are listed again from the XML API::

    python examples/inventory_watch.py --server 127.0.0.1:61613 --xmlapi http://127.0.0.1:8080 \\
        --client-id ports@1 [--class equipment.PhysicalPort] [--seconds 60]
"""

from __future__ import annotations

import argparse
import os
import sys

from nfmp_client import (
    AttributeValueChange,
    ClientConfig,
    ClientStopped,
    DataEvent,
    EventVessel,
    FindRequest,
    Handler,
    NfmpClient,
    ObjectCreation,
    ObjectDeletion,
    ResyncRequest,
    XmlApiClient,
)


class InventoryWatch(Handler):
    """Prints the objects of one class as they change."""

    def __init__(self, api: XmlApiClient, object_class: str) -> None:
        self.api = api
        self.object_class = object_class
        self.known: set[str] = set()

    def on_resync_required(self, request: ResyncRequest) -> None:
        objects = self.api.find(FindRequest(full_class_name=self.object_class))
        self.known = {obj.full_name for obj in objects}
        print(
            f"resync   #{request.epoch} ({request.reason.value}): {len(objects)} {self.object_class}",
            flush=True,
        )

    def on_event(self, event: DataEvent) -> None:
        if isinstance(event, EventVessel):
            for member in event.events:
                self.on_event(member)  # type: ignore[arg-type]
        elif isinstance(event, ObjectCreation) and event.object_class == self.object_class:
            self.known.add(event.object_full_name)
            print(f"created  {event.object_full_name}", flush=True)
        elif isinstance(event, AttributeValueChange) and event.object_full_name in self.known:
            name = event.object_full_name
            for change in event.changes:
                print(f"changed  {name}: {change.name} {change.old_value} -> {change.new_value}")
            sys.stdout.flush()
        elif isinstance(event, ObjectDeletion) and event.object_full_name in self.known:
            self.known.discard(event.object_full_name)
            print(f"deleted  {event.object_full_name}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", action="append", help="STOMP HOST:PORT, primary first (repeatable)")
    parser.add_argument("--xmlapi", required=True, help="the XML API base URL, e.g. https://nfmp-a:8443")
    parser.add_argument("--client-id", default="ports@1", help="the OSS client id, name@ID")
    parser.add_argument("--class", dest="object_class", default="equipment.PhysicalPort", help="the class")
    parser.add_argument("--state-dir", default=None, help="where the resync baseline is kept")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    args = parser.parse_args()

    config = ClientConfig(
        servers=args.server or ["127.0.0.1:61613"],
        client_id=args.client_id,
        username=os.environ.get("NFMP_USERNAME"),
        password=os.environ.get("NFMP_PASSWORD") if os.environ.get("NFMP_USERNAME") else None,
        filter=f"MTOSI_objectType = '{args.object_class}'",
        state_dir=args.state_dir,
        resync_min_interval=1.0,
    )
    client = NfmpClient(
        config, InventoryWatch(XmlApiClient(args.xmlapi, credentials=None), args.object_class)
    )
    try:
        client.run_forever(args.seconds)  # until Ctrl-C, or for --seconds
    except ClientStopped as exc:
        print(f"gave up: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
