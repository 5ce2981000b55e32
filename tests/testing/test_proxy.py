"""FaultProxy: every mode on plain sockets, and the half-open connection a STOMP client must detect."""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stomp

from nfmp_client.testing import FaultProxy, ProxyMode

from ..conftest import BrokerInfo


class EchoServer:
    """A loopback TCP server that echoes every byte; it records how its connections end."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.endings: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    def _echo(self, conn: socket.socket) -> None:
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except ConnectionResetError:
                    self.endings.put("reset")
                    return
                if not data:
                    self.endings.put("closed")
                    return
                conn.sendall(data)

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    yield server
    server.close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo.port) as fault_proxy:
        yield fault_proxy


def dial(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection(proxy.address, timeout=5)
    sock.settimeout(2)
    return sock


def roundtrip(sock: socket.socket, data: bytes = b"ping") -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def ending(sock: socket.socket) -> str:
    """How the connection ends: "reset", "closed" (FIN), or "open" (nothing within 2 s)."""
    try:
        return "open" if sock.recv(1) else "closed"
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "open"


def silent(sock: socket.socket, seconds: float) -> bool:
    """True if nothing at all (no byte, no FIN, no reset) arrives within *seconds*."""
    sock.settimeout(seconds)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    except OSError:
        return False
    return False


class TestModes:
    def test_pass(self, proxy: FaultProxy) -> None:
        """Bytes flow both ways and are counted."""
        with dial(proxy) as sock:
            assert roundtrip(sock, b"hello") == b"hello"

        stats = proxy.stats()
        assert stats.mode is ProxyMode.PASS
        assert stats.bytes_to_target == stats.bytes_to_client == 5

    def test_blackhole_keeps_sockets_open_and_silent(self, proxy: FaultProxy, echo: EchoServer) -> None:
        """A blackholed connection delivers nothing and closes nothing, on either side."""
        with dial(proxy) as sock:
            assert roundtrip(sock) == b"ping"
            proxy.blackhole()
            sock.sendall(b"lost")

            assert silent(sock, 0.5)
            assert echo.endings.empty()
            assert proxy.stats().open_connections == 1
            assert proxy.stats().blackholed == 1

    def test_blackholed_connection_stays_dead_after_pass(self, proxy: FaultProxy) -> None:
        """Switching back to pass revives new connections only."""
        with dial(proxy) as old:
            proxy.wait_for_connections(1)
            proxy.blackhole()
            old.sendall(b"lost")
            proxy.passthrough()
            with dial(proxy) as new:
                assert roundtrip(new) == b"ping"
            assert silent(old, 0.3)

    def test_new_connections_during_blackhole_are_dead(self, proxy: FaultProxy) -> None:
        """A connection made while the mode holds is accepted (the TCP handshake works) but dead."""
        proxy.blackhole()

        with dial(proxy) as sock:
            sock.sendall(b"ping")
            assert silent(sock, 0.3)

    def test_reset_closes_both_sides(self, proxy: FaultProxy, echo: EchoServer) -> None:
        """reset() ends every open connection with a reset on the client side; the server sees it end."""
        with dial(proxy) as sock:
            assert roundtrip(sock) == b"ping"
            proxy.reset()

            assert ending(sock) == "reset"
            assert echo.endings.get(timeout=2) in ("reset", "closed")

    def test_new_connections_during_reset_are_refused(self, proxy: FaultProxy) -> None:
        """While reset holds, a new connection is reset at once."""
        proxy.reset()

        try:
            with dial(proxy) as sock:
                result = ending(sock)
        except ConnectionResetError:  # the reset can come before the connection is even returned
            result = "reset"

        assert result == "reset"

    def test_delay(self, proxy: FaultProxy) -> None:
        """delay() adds latency to each direction, keeping order."""
        with dial(proxy) as sock:
            proxy.delay(0.2)
            started = time.monotonic()
            assert roundtrip(sock, b"abc") == b"abc"
            elapsed = time.monotonic() - started

        assert elapsed >= 0.35  # 0.2 s each way

    def test_idle_timeout_blackholes_idle_connections_only(self, proxy: FaultProxy) -> None:
        """A connection idle beyond the timeout goes silent for good; a busy one keeps flowing."""
        proxy.idle_timeout(0.5)
        with dial(proxy) as idle, dial(proxy) as busy:
            proxy.wait_for_connections(2)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                assert roundtrip(busy) == b"ping"
                time.sleep(0.05)

            idle.sendall(b"late")
            assert silent(idle, 0.2)
            assert roundtrip(busy) == b"ping"
        assert proxy.stats().idled_out == 1

    def test_bad_arguments(self, proxy: FaultProxy) -> None:
        """Negative delays and non-positive idle timeouts are refused."""
        with pytest.raises(ValueError, match="delay"):
            proxy.delay(-1)
        with pytest.raises(ValueError, match="idle timeout"):
            proxy.idle_timeout(0)

    def test_stop_closes_everything(self, echo: EchoServer) -> None:
        """stop() closes every connection, blackholed ones too, and the listening socket."""
        proxy = FaultProxy("127.0.0.1", echo.port)
        proxy.start()
        sock = dial(proxy)
        proxy.wait_for_connections(1)
        proxy.blackhole()
        address = proxy.address

        proxy.stop()

        assert sock.recv(1) == b""
        sock.close()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=1).close()


class Watcher(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.messages: queue.Queue[Any] = queue.Queue()
        self.disconnected = threading.Event()
        self.receipts: queue.Queue[str] = queue.Queue()

    def on_message(self, frame: Any) -> None:
        self.messages.put(frame)

    def on_receipt(self, frame: Any) -> None:
        self.receipts.put(frame.headers["receipt-id"])

    def on_disconnected(self) -> None:
        self.disconnected.set()


def subscriber(proxy: FaultProxy, heartbeats: tuple[int, int]) -> tuple[Any, Watcher]:
    watcher = Watcher()
    conn = stomp.Connection12([proxy.address], heartbeats=heartbeats, reconnect_attempts_max=1)
    conn.set_listener("watcher", watcher)
    conn.connect(wait=True)
    conn.subscribe("/topic/nfmp.proxy-test", id="1", ack="auto", headers={"receipt": "ok"})
    assert watcher.receipts.get(timeout=5) == "ok"
    return conn, watcher


def publish(broker: BrokerInfo, body: str) -> None:
    conn = stomp.Connection12(broker.hosts)
    conn.connect(wait=True)
    conn.send("/topic/nfmp.proxy-test", body)
    conn.disconnect(receipt="flushed")


@pytest.mark.integration
class TestWithStomp:
    @pytest.fixture
    def broker_proxy(self, broker: BrokerInfo) -> Iterator[FaultProxy]:
        with FaultProxy(broker.host, broker.port) as fault_proxy:
            yield fault_proxy

    def test_blackhole_goes_unnoticed_without_heartbeats(
        self, broker: BrokerInfo, broker_proxy: FaultProxy
    ) -> None:
        """Without heart-beats a stomp.py client never notices a blackhole: connected, and deaf."""
        conn, watcher = subscriber(broker_proxy, (0, 0))
        publish(broker, "before")
        assert watcher.messages.get(timeout=5).body == "before"

        broker_proxy.blackhole()
        publish(broker, "during")

        assert not watcher.disconnected.wait(3.0)
        assert conn.is_connected()
        assert watcher.messages.empty()
        broker_proxy.stop()  # ends the dead connection for good

    def test_blackhole_is_detected_with_heartbeats(
        self, broker: BrokerInfo, broker_proxy: FaultProxy
    ) -> None:
        """With 500 ms heart-beats stomp.py notices the blackhole within a few seconds."""
        _, watcher = subscriber(broker_proxy, (500, 500))
        publish(broker, "before")
        assert watcher.messages.get(timeout=5).body == "before"

        broker_proxy.blackhole()
        started = time.monotonic()

        assert watcher.disconnected.wait(10.0)
        assert time.monotonic() - started < 5.0

    def test_reset_is_noticed_at_once(self, broker: BrokerInfo, broker_proxy: FaultProxy) -> None:
        """A reset ends the stomp.py connection immediately, heart-beats or not."""
        _, watcher = subscriber(broker_proxy, (0, 0))

        broker_proxy.reset()

        assert watcher.disconnected.wait(2.0)

    def test_idle_firewall_kills_a_quiet_connection(
        self, broker: BrokerInfo, broker_proxy: FaultProxy
    ) -> None:
        """The idle-timeout firewall blackholes a quiet client; heart-beats both keep it alive and notice."""
        broker_proxy.idle_timeout(0.5)
        _, quiet = subscriber(broker_proxy, (0, 0))
        _, chatty = subscriber(broker_proxy, (200, 200))
        broker_proxy.wait_for_connections(2)
        time.sleep(1.0)  # two idle timeouts: the quiet connection is blackholed, the chatty one is not

        publish(broker, "after")

        assert chatty.messages.get(timeout=5).body == "after"
        assert not chatty.disconnected.is_set()
        assert quiet.messages.empty()
        assert not quiet.disconnected.is_set()
        assert broker_proxy.stats().idled_out == 1
