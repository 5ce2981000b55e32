"""nfmp_client.aio against the in-memory broker: the threaded client's guarantees through asyncio.

The asyncio facade runs the real supervisor on its own thread (it cannot be stepped on the test's thread: that
thread runs the event loop the supervisor waits for), so these tests use real time with short waits for what
must happen, never for what must not. The same behaviour on ActiveMQ: tests/integration/test_aio.py.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from nfmp_client import (
    ClientConfig,
    ClientStopped,
    ConnectionRestored,
    ConnectionState,
    DataEvent,
    LifecycleError,
    LossReason,
    ObjectCreation,
    ResyncReason,
    ResyncRequest,
    RetryPolicy,
    SessionTerminated,
    SystemInfoEvent,
    TerminateClientSession,
    TerminatePolicy,
)
from nfmp_client.aio import AsyncNfmpClient, Notification, Undeliverable
from nfmp_client.codec import encode_event
from nfmp_client.testing import MemoryBroker, MemoryServer

from .strategies import named_alarm

A = "a.example:61613"
WAIT = 10.0  # seconds for what must happen (a failing test waits this long, a passing one milliseconds)
T = TypeVar("T")


def name_of(event: DataEvent) -> str:
    assert isinstance(event, ObjectCreation)
    return str(event.attributes["alarmName"])


class Rig:
    """An in-memory broker with one server, and the configuration of a client of it."""

    def __init__(self, state_dir: Path, **overrides: Any) -> None:
        self.broker = MemoryBroker()
        self.server: MemoryServer = self.broker.server(A)
        settings: dict[str, Any] = {
            "servers": [A],
            "client_id": f"oss-{uuid.uuid4().hex[:8]}@1",
            "keepalive_timeout": 60.0,
            "retry": RetryPolicy(initial_delay=0.01, max_delay=0.05, jitter=0.0, connect_timeout=2.0),
            "state_dir": state_dir,
            "resync_coalesce_window": 0.0,
            "resync_min_interval": 0.0,
            # No SystemInfoEvent comes after a reconnection here (the simulator sends one on ActiveMQ): a
            # pending resync is asked once this passes, without one of its own.
            "system_info_timeout": 0.2,
            "resync_on_unknown_state": False,
        }
        settings.update(overrides)
        self.config = ClientConfig(**settings)

    def client(self, **options: Any) -> AsyncNfmpClient:
        return AsyncNfmpClient(self.config, transport=self.broker, **options)

    def publish(self, *names: str) -> None:
        for name in names:
            message = encode_event(named_alarm(name))
            self.server.publish(message.body, message.headers)

    def system_info(self, start: str = "1000") -> None:
        message = encode_event(SystemInfoEvent(sys_start_time=start, jms_start_time=start))
        self.server.publish(message.body, message.headers)

    def terminate(self) -> None:
        message = encode_event(TerminateClientSession(client_id=self.config.client_id))
        self.server.publish(message.body, message.headers)

    def stored(self) -> int:
        """Messages the broker keeps for the client's durable subscription (undelivered + unacknowledged)."""
        return self.server.subscriptions()[(self.config.client_id, str(self.config.durable_name))]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def run(coroutine: Awaitable[T]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(coroutine, 3 * WAIT)

    return asyncio.run(bounded())


async def until(condition: Callable[[], bool], what: str, extra: Callable[[], object] = lambda: "") -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}: {extra()}"
        await asyncio.sleep(0.005)


async def next_of(stream: AsyncIterator[T]) -> T:
    return await asyncio.wait_for(stream.__anext__(), WAIT)


async def started(client: AsyncNfmpClient, rig: Rig) -> None:
    await client.start()
    assert await client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
    rig.system_info()
    await until(lambda: client.in_sync, "the first resync")


async def notices_until(
    client: AsyncNfmpClient, wanted: Callable[[Notification], bool]
) -> list[Notification]:
    seen: list[Notification] = []
    notices = client.notifications()
    while not seen or not wanted(seen[-1]):
        seen.append(await next_of(notices))
    return seen


async def fail_on_first(client: AsyncNfmpClient, kind: type[Exception]) -> None:
    """Read with ``async with client.events()`` and raise *kind* on the first event."""
    async with client.events() as events:
        async for event in events:
            raise kind(f"cannot apply {name_of(event)}")


class TestEvents:
    def test_in_order_each_acknowledged_when_the_next_is_asked_for(self, tmp_path: Path) -> None:
        """The event in hand stays on the broker until the loop asks for the next one (acks one by one)."""
        rig = Rig(tmp_path, ack_batch=1)

        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                rig.publish("one", "two", "three")
                events = client.events()

                assert name_of(await next_of(events)) == "one"
                assert rig.stored() == 3  # "one" is in hand: not acknowledged yet
                assert name_of(await next_of(events)) == "two"
                await until(lambda: rig.stored() == 2, "'one' acknowledged")
                assert name_of(await next_of(events)) == "three"
                events.ack()
                await until(lambda: rig.stored() == 0, "all acknowledged")
                assert client.statistics.events == 3

        run(main())

    def test_acknowledged_together_once_nothing_more_waits(self, rig: Rig) -> None:
        """With batched acks (the default), the events handled are acknowledged once the stream is idle; the
        event in hand never is."""

        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                rig.publish("one", "two", "three")
                events = client.events()
                assert name_of(await next_of(events)) == "one"
                assert name_of(await next_of(events)) == "two"
                assert name_of(await next_of(events)) == "three"
                assert rig.stored() >= 1  # "three" is in hand
                events.ack()
                await until(lambda: rig.stored() == 0, "all acknowledged")

        run(main())

    def test_a_slow_consumer_holds_back_the_stream_within_the_prefetch(self, tmp_path: Path) -> None:
        """While the application works on an event, no more than the prefetch window waits in the client."""
        rig = Rig(tmp_path, prefetch=5, dedup_window=5)

        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                rig.publish(*(f"a{i}" for i in range(50)))
                events = client.events()
                first = await next_of(events)
                await asyncio.sleep(0.05)  # the consumer is slow: the broker must hold the rest

                assert name_of(first) == "a0"
                assert client.statistics.queue_depth <= 5
                assert rig.stored() == 50
                names = [name_of(first)] + [name_of(await next_of(events)) for _ in range(49)]
                assert names == [f"a{i}" for i in range(50)]

        run(main())

    def test_a_stop_gives_the_event_in_hand_back_and_the_next_run_gets_it_first(self, rig: Rig) -> None:
        """Leaving ``async with`` with an event unfinished: not acknowledged, delivered again next time."""

        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                rig.publish("one", "two")
                events = client.events()
                assert name_of(await next_of(events)) == "one"
            assert client.state is ConnectionState.STOPPED
            assert rig.stored() == 2
            assert client.statistics.handler_errors == 0  # given back, not failed
            with pytest.raises(StopAsyncIteration):
                await events.__anext__()

            async with rig.client() as again:
                await again.start()
                stream = again.events()
                assert [name_of(await next_of(stream)) for _ in range(2)] == ["one", "two"]

        run(main())

    def test_an_exception_in_the_loop_is_a_handler_failure_and_the_event_comes_again(self, rig: Rig) -> None:
        """``async with client.events()``: the event the body raised on is delivered again by the broker (a
        HANDLER_FAILED reconnection), before the ones after it; nothing lost."""

        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                rig.publish("one", "two")
                with pytest.raises(ValueError, match="cannot apply"):
                    await fail_on_first(client, ValueError)

                stream = client.events()
                assert [name_of(await next_of(stream)) for _ in range(2)] == ["one", "two"]
                assert client.statistics.handler_errors == 1
                assert client.statistics.losses_by_reason == {LossReason.HANDLER_FAILED.value: 1}

        run(main())

    def test_a_plain_loop_left_unfinished_hands_the_event_to_the_next_iteration(self, rig: Rig) -> None:
        """A plain ``async for`` cannot say whether it broke off or raised: its event comes again, first, to
        the next iteration, without a reconnection; a stream that finished it does not get it again."""

        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                rig.publish("one", "two")
                async for event in client.events():
                    assert name_of(event) == "one"
                    break
                async for event in client.events():
                    assert name_of(event) == "one"
                    break
                async with client.events() as events:  # finished by the normal exit
                    async for event in events:
                        assert name_of(event) == "one"
                        break
                assert name_of(await next_of(client.events())) == "two"
                assert client.statistics.losses == 0

        run(main())

    def test_an_event_the_loop_always_fails_on_is_given_up_with_a_resync(self, tmp_path: Path) -> None:
        """After max_handler_failures, the event is reported Undeliverable (with the application's own
        error), acknowledged, and an UNDELIVERABLE resync runs; the stream goes on."""
        rig = Rig(tmp_path, max_handler_failures=2)
        resyncs: list[ResyncRequest] = []

        async def rebuild(request: ResyncRequest) -> None:
            resyncs.append(request)

        async def main() -> None:
            async with rig.client(resync=rebuild) as client:
                await started(client, rig)
                rig.publish("poison", "good")
                notices = client.notifications()
                for _ in range(2):
                    with pytest.raises(KeyError, match="poison"):
                        await fail_on_first(client, KeyError)

                events = client.events()
                assert name_of(await next_of(events)) == "good"  # replayed after the resync
                events.ack()
                given_up = [n async for n in _take_until(notices, Undeliverable)][-1]
                assert isinstance(given_up, Undeliverable)
                assert isinstance(given_up.error, KeyError)
                assert name_of(given_up.event) == "poison"  # type: ignore[arg-type]
                await until(
                    lambda: len(resyncs) == 2 and client.in_sync,
                    "the UNDELIVERABLE resync",
                    lambda: (resyncs, client.health(), client.resync),
                )
                assert ResyncReason.UNDELIVERABLE in resyncs[-1].reasons
                assert rig.stored() == 0

        run(main())

    def test_cancelling_the_reader_keeps_the_event_for_the_next_one(self, rig: Rig) -> None:
        """A task cancelled while it holds an event (inside ``async with``) is nobody's failure: the event
        goes to the next reader, first; a reader cancelled while waiting leaves nothing behind."""

        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                got: list[str] = []

                async def reader() -> None:
                    async with client.events() as events:
                        async for event in events:
                            got.append(name_of(event))
                            await asyncio.sleep(WAIT)

                task = asyncio.create_task(reader())
                rig.publish("one")
                await until(lambda: got == ["one"], "the first event")
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task

                events = client.events()
                assert name_of(await next_of(events)) == "one"  # again, first
                events.ack()
                idle = asyncio.create_task(client.events().__anext__())
                await asyncio.sleep(0.01)
                assert not idle.done()
                idle.cancel()  # a reader cancelled while waiting: the next one waits in its place
                with pytest.raises(asyncio.CancelledError):
                    await idle
                rig.publish("two")
                assert name_of(await next_of(client.events())) == "two"
                assert client.statistics.losses == 0

        run(main())

    def test_one_reader_at_a_time(self, rig: Rig) -> None:
        """Two streams waiting at once would race for events: the second is refused."""

        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                first = asyncio.create_task(client.events().__anext__())
                await asyncio.sleep(0.01)
                with pytest.raises(LifecycleError, match="being read elsewhere"):
                    await client.events().__anext__()
                rig.publish("one")
                assert name_of(await first) == "one"

        run(main())

    def test_reading_before_start_is_an_error(self, rig: Rig) -> None:
        async def main() -> None:
            with pytest.raises(LifecycleError, match="before the client was started"):
                await rig.client().events().__anext__()

        run(main())


class TestResync:
    def test_the_resync_coroutine_runs_while_events_are_held_then_replayed(self, rig: Rig) -> None:
        """HOLD_AND_REPLAY: events that arrive while the application's coroutine rebuilds come after it, in
        order; the request completes when the coroutine returns."""
        release = asyncio.Event()
        requests: list[ResyncRequest] = []

        async def rebuild(request: ResyncRequest) -> None:
            requests.append(request)
            await release.wait()

        async def main() -> None:
            async with rig.client(resync=rebuild) as client:
                await client.start()
                assert await client.wait_for_state(ConnectionState.CONNECTED, timeout=WAIT)
                rig.system_info()
                await until(lambda: len(requests) == 1, "the first resync")
                rig.publish("one", "two")
                await until(lambda: client.statistics.messages >= 3, "the events, held")
                assert not client.in_sync
                assert client.health().status.value == "syncing"

                release.set()
                events = client.events()
                assert [name_of(await next_of(events)) for _ in range(2)] == ["one", "two"]
                assert not client.in_sync  # until the last held event is finished
                events.ack()
                await until(lambda: client.in_sync, "in sync")
                assert requests[0].reason is ResyncReason.INITIAL

        run(main())

    def test_a_failing_coroutine_fails_the_request_and_another_follows(self, rig: Rig) -> None:
        calls: list[int] = []

        async def rebuild(request: ResyncRequest) -> None:
            calls.append(request.epoch)
            if len(calls) == 1:
                raise ConnectionError("the XML API is down")

        async def main() -> None:
            async with rig.client(resync=rebuild) as client:
                await client.start()
                rig.system_info()
                await until(lambda: len(calls) == 2 and client.in_sync, "a second, successful resync")
                assert calls == [1, 2]

        run(main())

    def test_a_stop_cancels_the_resync_and_the_next_run_owes_it(self, rig: Rig) -> None:
        began, cancelled = asyncio.Event(), asyncio.Event()

        async def rebuild(request: ResyncRequest) -> None:
            began.set()
            try:
                await asyncio.sleep(WAIT)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        async def main() -> None:
            async with rig.client(resync=rebuild) as client:
                await client.start()
                rig.system_info()
                await asyncio.wait_for(began.wait(), WAIT)
            assert cancelled.is_set()
            assert not client.in_sync

        run(main())
        requests: list[ResyncRequest] = []

        async def again() -> None:
            async def record(request: ResyncRequest) -> None:
                requests.append(request)

            async with rig.client(resync=record) as client:
                await client.start()
                rig.system_info()
                await until(lambda: client.in_sync, "the owed resync")

        run(again())
        assert [r.reason for r in requests] == [ResyncReason.INCOMPLETE]


class TestEndings:
    def test_a_client_that_gives_up_ends_the_stream_with_why(self, tmp_path: Path) -> None:
        rig = Rig(
            tmp_path,
            retry=RetryPolicy(
                initial_delay=0.01, max_delay=0.02, jitter=0.0, connect_timeout=1.0, max_attempts=2
            ),
        )
        rig.server.refuse()

        async def main() -> None:
            async with rig.client() as client:
                with pytest.raises(ClientStopped):
                    await next_of(client.events())
                assert isinstance(client.failure, ClientStopped)

        run(main())

    def test_terminate_with_stop_ends_the_stream_with_session_terminated(self, tmp_path: Path) -> None:
        rig = Rig(tmp_path, on_terminate=TerminatePolicy.STOP)

        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                rig.terminate()
                with pytest.raises(SessionTerminated):
                    await next_of(client.events())

        run(main())

    def test_notifications_report_connections_and_end_with_the_client(self, rig: Rig) -> None:
        async def main() -> None:
            async with rig.client() as client:
                await started(client, rig)
                seen = await notices_until(client, lambda n: isinstance(n, ConnectionRestored))
                assert any(isinstance(n, ResyncRequest) for n in seen) or client.in_sync
                rig.server.drop()
                seen = await notices_until(client, lambda n: isinstance(n, ConnectionRestored))
                kinds = [type(n).__name__ for n in seen]
                assert "ConnectionLost" in kinds
                assert kinds.index("ConnectionLost") < kinds.index("ConnectionRestored")
            assert isinstance([n async for n in client.notifications()], list)  # ends, does not wait

        run(main())

    def test_unread_notifications_are_bounded(self, rig: Rig) -> None:
        async def main() -> None:
            async with rig.client(max_notifications=2) as client:
                await started(client, rig)
                for _ in range(5):
                    rig.system_info()
                await until(lambda: client.notifications_dropped >= 3, "dropped notifications")

        run(main())

    def test_a_loop_closed_under_a_running_client_stops_it(self, rig: Rig) -> None:
        """An application that forgets to stop: the supervisor does not wait for a loop that is gone."""
        holder: list[AsyncNfmpClient] = []

        async def main() -> None:
            client = rig.client()
            holder.append(client)
            await started(client, rig)
            rig.publish("one")
            await until(lambda: client.statistics.messages >= 2, "the event, offered")

        asyncio.run(main())
        client = holder[0]
        deadline = time.monotonic() + WAIT
        while client.state is not ConnectionState.STOPPED:
            assert time.monotonic() < deadline, "the client did not stop"
            time.sleep(0.01)
        assert rig.stored() == 1  # given back, not acknowledged


async def _take_until(notices: AsyncIterator[Notification], kind: type) -> AsyncIterator[Notification]:
    while True:
        notice = await next_of(notices)
        yield notice
        if isinstance(notice, kind):
            return


def test_the_public_names_are_pinned() -> None:
    """nfmp_client.aio exports exactly these (a new public name is a decision, made here)."""
    import nfmp_client.aio

    assert set(nfmp_client.aio.__all__) == {
        "DEFAULT_MAX_NOTIFICATIONS",
        "AsyncNfmpClient",
        "EventStream",
        "Notification",
        "ResyncCallable",
        "Undeliverable",
        "UnfinishedEvent",
    }
