"""ActiveMQAdmin against the real broker: list, close and remove, as NFM-P's administrator would."""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stomp

from nfmp_client.testing import ActiveMQAdmin, BrokerAdminError

from ..conftest import BrokerInfo

pytestmark = pytest.mark.integration


class Client(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self, broker: BrokerInfo, *, durable: bool = True, client_id: str | None = None) -> None:
        self.client_id = client_id or f"adm-{uuid.uuid4().hex[:8]}@1"
        self.subscription = f"{self.client_id}-sub" if durable else None
        self.disconnected = threading.Event()
        self.receipts: queue.Queue[str] = queue.Queue()
        self.conn: Any = stomp.Connection12(broker.hosts, heartbeats=(0, 0))
        self.conn.set_listener("client", self)
        self.conn.connect(wait=True, headers={"client-id": self.client_id})
        headers = {"receipt": "subscribed"}
        if self.subscription:
            headers["activemq.subscriptionName"] = self.subscription
        self.conn.subscribe("/topic/nfmp.admin-test", id="1", ack="auto", headers=headers)
        assert self.receipts.get(timeout=5) == "subscribed"

    def on_receipt(self, frame: Any) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_disconnected(self) -> None:
        self.disconnected.set()

    def close(self) -> None:
        if self.conn.is_connected():
            self.conn.disconnect()


@pytest.fixture
def client(broker: BrokerInfo) -> Iterator[Client]:
    made = Client(broker)
    yield made
    made.close()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


class TestActiveMQAdmin:
    def test_lists_connection_and_durable_subscription(self, admin: ActiveMQAdmin, client: Client) -> None:
        """A connected client and its durable subscription (active, with its selector) are listed."""
        connections = [c for c in admin.connections() if c.client_id == client.client_id]
        (sub,) = [s for s in admin.durable_subscriptions() if s.client_id == client.client_id]

        assert len(connections) == 1
        assert connections[0].connector == "stomp"
        assert connections[0].remote_address.startswith("tcp://127.0.0.1:")
        assert sub.subscription_name == client.subscription
        assert sub.topic == "nfmp.admin-test"
        assert sub.active
        assert sub.selector == ""

    def test_close_keeps_the_durable_subscription(self, admin: ActiveMQAdmin, client: Client) -> None:
        """close_connection drops the client (it sees the drop); its durable subscription stays, inactive."""
        assert admin.close_connection(client.client_id) == 1

        assert client.disconnected.wait(10)
        eventually(
            lambda: (
                [s.active for s in admin.durable_subscriptions() if s.client_id == client.client_id]
                == [False]
            )
        )

    def test_close_unknown_client(self, admin: ActiveMQAdmin) -> None:
        """Closing a client that is not connected closes nothing."""
        assert admin.close_connection("nobody@0") == 0

    def test_remove_in_use_names_the_cause(self, admin: ActiveMQAdmin, client: Client) -> None:
        """Removing an attached subscription fails with the broker's reason."""
        assert client.subscription is not None
        with pytest.raises(BrokerAdminError, match="in use"):
            admin.remove_durable_subscription(client.client_id, client.subscription)

    def test_close_then_remove(self, admin: ActiveMQAdmin, client: Client) -> None:
        """After its connection is closed, the subscription can be removed."""
        assert client.subscription is not None
        admin.close_connection(client.client_id)
        client.disconnected.wait(10)

        deadline = time.monotonic() + 10
        while True:
            try:
                admin.remove_durable_subscription(client.client_id, client.subscription)
                break
            except BrokerAdminError:
                assert time.monotonic() < deadline
                time.sleep(0.1)

        assert not [s for s in admin.durable_subscriptions() if s.client_id == client.client_id]

    def test_forced_removal_wins_against_a_client_that_comes_back_at_once(
        self, admin: ActiveMQAdmin, broker: BrokerInfo
    ) -> None:
        """force=True closes and removes in one call, closing again while the client re-attaches: a client
        that reconnects within milliseconds of every drop does not keep its subscription."""
        first = Client(broker)
        assert first.subscription is not None
        stop, comebacks = threading.Event(), []

        def come_back() -> None:
            current = first
            while not stop.is_set():
                if current.disconnected.wait(0.02):
                    try:
                        current = Client(broker, client_id=first.client_id)
                    except Exception:  # noqa: BLE001, S112  # the id is still in use for a moment: again
                        continue
                    comebacks.append(current)

        thread = threading.Thread(target=come_back, daemon=True)
        thread.start()
        try:
            admin.remove_durable_subscription(first.client_id, first.subscription, force=True)
        finally:
            stop.set()
            thread.join(10)
            for client in [first, *comebacks]:
                client.close()

        assert comebacks, "the client never came back: nothing was raced"
        # Without force, the re-attached client makes the removal fail ("in use"): see the test above.

    def test_close_all_but_one(self, admin: ActiveMQAdmin, broker: BrokerInfo) -> None:
        """close_all_connections spares the client ids it is told to."""
        keep, drop = Client(broker, durable=False), Client(broker, durable=False)
        try:
            closed = admin.close_all_connections(except_client_ids=(keep.client_id,))

            assert closed >= 1
            assert drop.disconnected.wait(10)
            assert not keep.disconnected.is_set()
            assert keep.client_id in [c.client_id for c in admin.connections()]
        finally:
            keep.close()
            drop.close()

    def test_remove_all_inactive(self, admin: ActiveMQAdmin, broker: BrokerInfo) -> None:
        """remove_all_durable_subscriptions removes the detached ones and leaves attached ones."""
        attached, detached = Client(broker), Client(broker)
        try:
            detached.close()
            eventually(
                lambda: (
                    [s.active for s in admin.durable_subscriptions() if s.client_id == detached.client_id]
                    == [False]
                )
            )

            admin.remove_all_durable_subscriptions(except_client_ids=("nobody@0",))

            owners = {s.client_id for s in admin.durable_subscriptions()}
            assert detached.client_id not in owners
            assert attached.client_id in owners
        finally:
            attached.close()

    def test_unreachable_jmx(self) -> None:
        """A JMX URL nobody answers gives a BrokerAdminError that says so, quickly."""
        started = time.monotonic()
        with pytest.raises(BrokerAdminError, match="cannot connect to JMX") as error:
            ActiveMQAdmin("service:jmx:rmi:///jndi/rmi://127.0.0.1:1/jmxrmi").connections()

        assert error.value.unreachable
        assert time.monotonic() - started < 15
