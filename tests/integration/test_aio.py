"""nfmp_client.aio on the real broker: the threaded client's guarantees through asyncio, on ActiveMQ.

The simulated server publishes; a fault proxy resets the connection; the application's ``async for`` raises,
stops, rebuilds. Nothing may be lost, the order must hold, and held events must come after the resync.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import attrs
import pytest

from nfmp_client import (
    ClientConfig,
    ConnectionState,
    JmsMissedEvents,
    LossReason,
    ResyncReason,
    ResyncRequest,
    RetryPolicy,
)
from nfmp_client.aio import AsyncNfmpClient
from nfmp_client.testing import FaultProxy, SimulatedServer

from ..conftest import BrokerInfo

pytestmark = pytest.mark.integration

WAIT = 15.0
T = TypeVar("T")


def bare(event: Any) -> Any:
    return attrs.evolve(event, header=attrs.evolve(event.header, stomp_headers={}, resync_epoch=0))


def config_for(server: str, **overrides: Any) -> ClientConfig:
    settings: dict[str, Any] = {
        "servers": [server],
        "client_id": f"aio-{uuid.uuid4().hex[:8]}@1",
        "heartbeats": (500, 500),
        "keepalive_timeout": 2.0,
        "retry": RetryPolicy(initial_delay=0.05, max_delay=0.5, jitter=0.05, connect_timeout=3.0),
    }
    settings.update(overrides)
    return ClientConfig(**settings)


@pytest.fixture
def proxy(broker: BrokerInfo) -> Iterator[FaultProxy]:
    with FaultProxy(broker.host, broker.port) as fault_proxy:
        yield fault_proxy


def run(coroutine: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coroutine(), 4 * WAIT)

    return asyncio.run(bounded())


async def connected(client: AsyncNfmpClient, server: SimulatedServer) -> None:
    await client.start()
    assert await client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT), client.last_loss
    await asyncio.to_thread(server.wait_for_subscriber, client.config.client_id)


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def test_nothing_lost_through_a_reset_and_a_consumer_that_raises(
    server: SimulatedServer, proxy: FaultProxy
) -> None:
    """60 events; the consumer raises on the 10th (once), the connection is reset while it holds the 30th
    (a small prefetch: most events are still on the broker): every event is applied, in order (an event in
    hand at the reset may come twice, never a gap)."""
    config = config_for(f"127.0.0.1:{proxy.port}", prefetch=5, dedup_window=5)
    applied: list[Any] = []

    async def main() -> None:
        async with AsyncNfmpClient(config) as client:
            await connected(client, server)
            sent = [bare(e) for e in await asyncio.to_thread(server.generate, 60)]
            failed_once = False
            while len(_first_seen(applied)) < 60:
                try:
                    async with client.events() as events:
                        async for event in events:
                            if len(applied) == 9 and not failed_once:
                                failed_once = True
                                raise RuntimeError("the database is away (on purpose)")
                            applied.append(bare(event))
                            if len(applied) == 30:
                                proxy.reset()
                                proxy.passthrough()
                            if len(_first_seen(applied)) == 60:
                                break
                except RuntimeError:
                    continue

            assert _first_seen(applied) == sent
            await until(lambda: client.statistics.losses >= 2, "the handler failure and the reset, counted")
            stats = client.statistics
            assert stats.handler_errors == 1
            assert stats.losses_by_reason.get(LossReason.HANDLER_FAILED.value) == 1
            assert (
                stats.losses_by_reason.get(LossReason.SOCKET_ERROR.value, 0)
                + stats.losses_by_reason.get(LossReason.HEARTBEAT_TIMEOUT.value, 0)
                >= 1
            )

    run(main)


def _first_seen(events: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for event in events:
        if event not in seen:
            seen.append(event)
    return seen


def test_events_during_the_resync_are_held_and_replayed_in_order(
    server: SimulatedServer, broker: BrokerInfo
) -> None:
    """A JmsMissedEvents while connected: the resync coroutine runs; events published meanwhile come only
    once it returned, in order; then the client is in sync."""
    config = config_for(f"{broker.host}:{broker.port}")
    gate = asyncio.Event()
    requests: list[ResyncRequest] = []
    received: list[tuple[int, Any]] = []

    async def rebuild(request: ResyncRequest) -> None:
        requests.append(request)
        if request.reason is ResyncReason.MISSED_EVENTS:
            await gate.wait()

    async def main() -> None:
        async with AsyncNfmpClient(config, resync=rebuild) as client:
            await connected(client, server)
            await until(lambda: client.in_sync, "the initial resync")

            async def consume() -> None:
                async for event in client.events():
                    received.append((len(requests), bare(event)))

            consumer = asyncio.create_task(consume())
            before = [bare(e) for e in await asyncio.to_thread(server.generate, 3)]
            await until(lambda: len(received) == 3, "the events before")
            notice = await asyncio.to_thread(server.missed_events, config.client_id)
            assert isinstance(notice, JmsMissedEvents)
            await until(lambda: len(requests) == 2, "the MISSED_EVENTS resync")
            during = [bare(e) for e in await asyncio.to_thread(server.generate, 5)]
            await asyncio.to_thread(server.sync)
            await until(lambda: client.statistics.messages >= 9, "the events, arrived and held")
            assert len(received) == 3  # held, not handed over
            assert not client.in_sync

            gate.set()
            await until(lambda: len(received) == 8, "the held events")
            assert [event for _, event in received] == before + during
            await until(lambda: client.in_sync, "in sync")
            consumer.cancel()

    run(main)


def test_a_stopped_consumer_loses_nothing_and_the_next_run_gets_the_backlog(
    server: SimulatedServer, broker: BrokerInfo
) -> None:
    """Leaving ``async with`` with an event in hand gives it back; events published while stopped are kept
    by the durable subscription; the next run gets all of them, in order."""
    config = config_for(f"{broker.host}:{broker.port}")

    async def first() -> list[Any]:
        async with AsyncNfmpClient(config) as client:
            await connected(client, server)
            sent = [bare(e) for e in await asyncio.to_thread(server.generate, 3)]
            events = client.events()
            assert bare(await asyncio.wait_for(events.__anext__(), WAIT)) == sent[0]
            assert bare(await asyncio.wait_for(events.__anext__(), WAIT)) == sent[1]  # sent[0] done
        later = [bare(e) for e in await asyncio.to_thread(server.generate, 2)]
        await asyncio.to_thread(server.sync)
        return sent[1:] + later

    expected = run(first)

    async def second() -> None:
        async with AsyncNfmpClient(config) as client:
            await client.start()
            got: list[Any] = []
            async for event in client.events():
                got.append(bare(event))
                if len(got) == len(expected):
                    break
            assert got == expected
            await client.decommission()

    run(second)


def test_cancelling_the_task_stops_the_client_cleanly(server: SimulatedServer, broker: BrokerInfo) -> None:
    """A timeout around the whole ``async with`` (asyncio.timeout): the client stops, no connection stays."""
    config = config_for(f"{broker.host}:{broker.port}")
    clients: list[AsyncNfmpClient] = []

    async def main() -> None:
        client = AsyncNfmpClient(config)
        clients.append(client)

        async def work() -> None:
            async with client:
                await connected(client, server)
                async for _event in client.events():
                    pass

        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(work(), 1.0)
        assert client.state is ConnectionState.STOPPED
        await client.decommission()

    run(main)
    assert clients[0].state is ConnectionState.STOPPED
