"""Embed the client in an asyncio application: the client stays thread-based; a small bridge hands over.

The client's handler runs on its own thread. It must not block the event loop, and the loop's code must not
run on that thread, so the bridge does two things, both thread-safe:

* events: ``loop.call_soon_threadsafe(queue.put_nowait, event)``; an ``async`` consumer reads the queue;
* resyncs: ``request.defer()``, then the async retrieval runs on the loop
  (``asyncio.run_coroutine_threadsafe``) and calls ``request.complete()`` or ``request.fail()`` when done.
  Events that arrive meanwhile are held by the client and come afterwards, in order.

Usage: python examples/asyncio_bridge.py --server 127.0.0.1:61613 --client-id async@1 [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

from nfmp_client import ClientConfig, DataEvent, Handler, NfmpClient, ResyncRequest


class Bridge(Handler):
    """Runs on the client's thread; forwards everything to the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, events: asyncio.Queue[DataEvent]) -> None:
        self.loop = loop
        self.events = events

    def on_event(self, event: DataEvent) -> None:
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)

    def on_resync_required(self, request: ResyncRequest) -> None:
        request.defer()
        asyncio.run_coroutine_threadsafe(resync(request), self.loop)


async def resync(request: ResyncRequest) -> None:
    """The application's retrieval (an async HTTP client, a database reload, ...), on the loop."""
    try:
        await asyncio.sleep(0.1)  # stands for the real work
    except Exception as exc:  # noqa: BLE001  # any failure: tell the client, it asks again later
        request.fail(exc)
    else:
        print(f"resync #{request.epoch} ({request.reason.value}) done", flush=True)
        request.complete()


async def consume(events: asyncio.Queue[DataEvent]) -> None:
    """The application's async event handling."""
    while True:
        event = await events.get()
        print(f"event    {type(event).__name__:<22} epoch {event.header.resync_epoch}", flush=True)


async def main_async(config: ClientConfig, seconds: float | None) -> None:
    events: asyncio.Queue[DataEvent] = asyncio.Queue()
    client = NfmpClient(config, Bridge(asyncio.get_running_loop(), events))
    consumer = asyncio.create_task(consume(events))
    client.start()  # returns at once: the client's threads do the rest
    try:
        await asyncio.sleep(seconds if seconds is not None else float("inf"))
    finally:
        await asyncio.to_thread(client.stop)  # stopping waits for threads: not on the loop
        consumer.cancel()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--server", action="append", help="HOST:PORT, primary first (repeatable)")
    parser.add_argument("--client-id", default="async@1", help="the OSS client id, name@ID")
    parser.add_argument("--state-dir", default=None, help="where the resync baseline is kept")
    parser.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    args = parser.parse_args()
    config = ClientConfig(
        servers=args.server or ["127.0.0.1:61613"],
        client_id=args.client_id,
        username=os.environ.get("NFMP_USERNAME"),
        password=os.environ.get("NFMP_PASSWORD") if os.environ.get("NFMP_USERNAME") else None,
        state_dir=args.state_dir,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(config, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
