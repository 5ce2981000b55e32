"""FaultProxy: a loopback TCP proxy whose faults (blackhole, reset, delay, idle timeout) switch at run time.

The connection failures an NFM-P client must survive happen between it and the broker, and most of them are
silent. Seed 000's firewall dropped idle TCP sessions without telling either side: both sockets stayed
ESTABLISHED and nothing flowed ever again. This proxy reproduces that and the other faults on loopback,
without root:

* ``PASS``: bytes flow both ways.
* ``BLACKHOLE``: nothing flows and nothing closes: both sides keep an open, ESTABLISHED socket. A connection
  that was blackholed is dead for good (like a firewall that forgot the session: whatever the peers send is
  lost, so their byte streams could never be resumed); switching back to ``PASS`` only lets *new*
  connections through. New connections made while the mode holds are accepted and blackholed at once.
* ``RESET``: every open connection is closed with a TCP reset on both sides; new ones are reset at once.
* ``DELAY``: bytes flow with an added latency per chunk, in order.
* ``IDLE_TIMEOUT``: bytes flow, but a connection idle (no byte either way) for longer than the configured
  seconds is silently blackholed, for good: the stateful firewall of the seed.

One selector thread does all the work; the public methods are thread-safe.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import selectors
import socket
import struct
import threading
import time
from collections import deque
from typing import Final, final

from attrs import frozen

__all__ = ["FaultProxy", "ProxyMode", "ProxyStats"]

log = logging.getLogger("nfmp_client.testing")

_CHUNK: Final = 65536
_TICK: Final = 0.02  # seconds: how often delayed chunks and idle timers are looked at


class ProxyMode(enum.Enum):
    """What a :class:`FaultProxy` does with the bytes of its connections."""

    PASS = "pass"  # noqa: S105  # a mode, not a password
    """Forward both ways."""
    BLACKHOLE = "blackhole"
    """Forward nothing, close nothing (a half-open path); blackholed connections stay dead."""
    RESET = "reset"
    """Reset every connection, and each new one."""
    DELAY = "delay"
    """Forward with added latency."""
    IDLE_TIMEOUT = "idle-timeout"
    """Forward, but silently blackhole a connection idle for too long."""


@frozen(kw_only=True)
class ProxyStats:
    """What a :class:`FaultProxy` has seen so far."""

    mode: ProxyMode
    """The current mode."""
    open_connections: int
    """Connections open now (blackholed ones included: their sockets are open)."""
    accepted: int
    """Connections accepted since start."""
    blackholed: int
    """Connections blackholed since start (by the mode or by the idle timeout)."""
    idled_out: int
    """Connections blackholed by the idle timeout."""
    bytes_to_target: int
    """Bytes forwarded from clients to the target."""
    bytes_to_client: int
    """Bytes forwarded from the target to clients."""


class _Pipe:
    """One proxied connection: the client's socket and the target's."""

    def __init__(self, client: socket.socket, target: socket.socket, number: int) -> None:
        self.client = client
        self.target = target
        self.number = number
        self.dead = False  # blackholed for good
        self.last_activity = time.monotonic()
        self.pending: deque[tuple[float, socket.socket, bytes]] = deque()  # (due, destination, data)

    def other(self, sock: socket.socket) -> socket.socket:
        return self.target if sock is self.client else self.client


@final
class FaultProxy:
    """A TCP proxy from ``listen_host:port`` to ``target_host:target_port`` with switchable faults.

    Example::

        with FaultProxy("127.0.0.1", broker_port) as proxy:
            conn = stomp.Connection12([("127.0.0.1", proxy.port)], heartbeats=(500, 500))
            ...
            proxy.blackhole()       # the path dies silently; heart-beats notice, nothing else does
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = 5.0,
    ) -> None:
        """Prepare the proxy; nothing listens before :meth:`start`.

        Args:
            target_host: Where connections are forwarded to.
            target_port: The target's port.
            listen_host: The address to listen on.
            listen_port: The port to listen on; 0 picks a free one (see :attr:`port`).
            connect_timeout: Seconds to wait for the target when a client connects.
        """
        if connect_timeout <= 0:
            raise ValueError(f"connect_timeout must be positive, got {connect_timeout!r}")
        self._target = (target_host, target_port)
        self._listen = (listen_host, listen_port)
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._mode = ProxyMode.PASS
        self._delay = 0.0
        self._idle = 0.0
        self._pipes: dict[socket.socket, _Pipe] = {}
        self._counts = {"accepted": 0, "blackholed": 0, "idled_out": 0, "to_target": 0, "to_client": 0}
        self._server: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._running = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._to_reset: list[_Pipe] = []  # the connections open when reset() was called

    # ------------------------------------------------------------------------------------------- life

    def start(self) -> None:
        """Listen and start forwarding (mode ``PASS``)."""
        if self._running:
            return
        server = socket.create_server(self._listen)
        server.setblocking(False)
        self._server = server
        self._selector = selectors.DefaultSelector()
        self._selector.register(server, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="nfmp-fault-proxy", daemon=True)
        self._thread.start()
        log.info("proxy: %s:%d -> %s:%d", *self.address, *self._target)

    def stop(self) -> None:
        """Close every connection and stop listening."""
        if not self._running:
            return
        self._running = False
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for pipe in {id(p): p for p in self._pipes.values()}.values():
            self._close(pipe, reset=False)
        if self._server is not None:
            self._server.close()
        if self._selector is not None:
            self._selector.close()
        self._wake_r.close()
        self._wake_w.close()
        log.info("proxy: stopped")

    def __enter__(self) -> FaultProxy:
        """Start the proxy."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop the proxy."""
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` clients connect to."""
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        host, port = self._server.getsockname()[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return self.address[1]

    # ------------------------------------------------------------------------------------------ modes

    @property
    def mode(self) -> ProxyMode:
        """The current mode."""
        return self._mode

    def passthrough(self) -> None:
        """Forward both ways (connections blackholed earlier stay dead)."""
        self._set(ProxyMode.PASS)

    def blackhole(self) -> None:
        """Forward nothing and close nothing, for every open and every new connection."""
        self._set(ProxyMode.BLACKHOLE)

    def reset(self) -> None:
        """Reset every open connection (both sides), and each new one while the mode holds."""
        self._set(ProxyMode.RESET)

    def delay(self, seconds: float) -> None:
        """Forward with *seconds* of added latency per chunk, in order."""
        if seconds < 0:
            raise ValueError(f"the delay must be 0 or more seconds, got {seconds!r}")
        with self._lock:
            self._delay = seconds
        self._set(ProxyMode.DELAY, f"{seconds:g} s")

    def idle_timeout(self, seconds: float) -> None:
        """Forward, but silently blackhole (for good) a connection idle for more than *seconds*."""
        if seconds <= 0:
            raise ValueError(f"the idle timeout must be positive, got {seconds!r}")
        with self._lock:
            self._idle = seconds
            now = time.monotonic()
            for pipe in self._pipes.values():
                pipe.last_activity = now
        self._set(ProxyMode.IDLE_TIMEOUT, f"{seconds:g} s")

    def stats(self) -> ProxyStats:
        """Return what the proxy has seen so far."""
        with self._lock:
            pipes = {id(p) for p in self._pipes.values()}
            return ProxyStats(
                mode=self._mode,
                open_connections=len(pipes),
                accepted=self._counts["accepted"],
                blackholed=self._counts["blackholed"],
                idled_out=self._counts["idled_out"],
                bytes_to_target=self._counts["to_target"],
                bytes_to_client=self._counts["to_client"],
            )

    def wait_for_connections(self, count: int, *, timeout: float = 10.0) -> None:
        """Wait until at least *count* connections are open.

        Raises:
            TimeoutError: Not within *timeout* seconds.
        """
        deadline = time.monotonic() + timeout
        while self.stats().open_connections < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} connections through the proxy after {timeout:g} s")
            time.sleep(_TICK)

    def _set(self, mode: ProxyMode, detail: str = "") -> None:
        with self._lock:
            self._mode = mode
            if mode is ProxyMode.BLACKHOLE:
                for pipe in {id(p): p for p in self._pipes.values()}.values():
                    self._kill(pipe)
            if mode is ProxyMode.RESET:  # those open now, even if the mode changes again at once
                self._to_reset.extend({id(p): p for p in self._pipes.values()}.values())
        log.info("proxy: mode %s%s", mode.value, f" ({detail})" if detail else "")
        self._wake()

    # ----------------------------------------------------------------------------------- the loop

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _loop(self) -> None:
        assert self._selector is not None  # noqa: S101  # set by start()
        while self._running:
            for key, _ in self._selector.select(timeout=_TICK):
                if key.data == "accept":
                    self._accept()
                elif key.data == "wake":
                    self._wake_r.recv(4096)
                else:
                    self._read(key.fileobj)  # type: ignore[arg-type]
            with self._lock:
                for pipe in self._to_reset:
                    if pipe.client in self._pipes:
                        self._close(pipe, reset=True)
                self._to_reset.clear()
                self._flush_and_expire()

    def _accept(self) -> None:
        assert self._server is not None  # noqa: S101
        try:
            client, peer = self._server.accept()
        except OSError:
            return
        with self._lock:
            mode = self._mode
        if mode is ProxyMode.RESET:
            _abort(client)
            log.info("proxy: connection from %s:%d reset at once", *peer[:2])
            return
        try:
            target = socket.create_connection(self._target, timeout=self._connect_timeout)
        except OSError as exc:
            log.warning("proxy: cannot reach %s:%d (%s); closing the client", *self._target, exc)
            client.close()
            return
        for sock in (client, target):
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._counts["accepted"] += 1
            pipe = _Pipe(client, target, self._counts["accepted"])
            self._pipes[client] = self._pipes[target] = pipe
            if mode is ProxyMode.BLACKHOLE:
                self._kill(pipe)
        assert self._selector is not None  # noqa: S101
        self._selector.register(client, selectors.EVENT_READ, "pipe")
        self._selector.register(target, selectors.EVENT_READ, "pipe")
        log.info("proxy: connection #%d from %s:%d", pipe.number, *peer[:2])

    def _read(self, sock: socket.socket) -> None:
        with self._lock:
            pipe = self._pipes.get(sock)
            if pipe is None:
                return
            if pipe.dead:
                self._bury(pipe)
                return
            try:
                data = sock.recv(_CHUNK)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self._close(pipe, reset=False)
                return
            pipe.last_activity = time.monotonic()
            destination = pipe.other(sock)
            self._counts["to_target" if sock is pipe.client else "to_client"] += len(data)
            due = time.monotonic() + (self._delay if self._mode is ProxyMode.DELAY else 0.0)
            pipe.pending.append((due, destination, data))
            self._flush(pipe)

    def _flush_and_expire(self) -> None:
        now = time.monotonic()
        for pipe in {id(p): p for p in self._pipes.values()}.values():
            if pipe.dead:
                self._bury(pipe)
                continue
            if self._mode is ProxyMode.IDLE_TIMEOUT and now - pipe.last_activity > self._idle:
                self._counts["idled_out"] += 1
                self._kill(pipe)
                log.info("proxy: connection #%d idle for %g s: silently blackholed", pipe.number, self._idle)
                continue
            self._flush(pipe)

    def _flush(self, pipe: _Pipe) -> None:
        now = time.monotonic()
        while pipe.pending and pipe.pending[0][0] <= now:
            _, destination, data = pipe.pending.popleft()
            try:
                destination.setblocking(True)
                destination.sendall(data)
                destination.setblocking(False)
            except OSError:
                self._close(pipe, reset=False)
                return

    def _kill(self, pipe: _Pipe) -> None:
        if not pipe.dead:
            pipe.dead = True
            pipe.pending.clear()
            self._counts["blackholed"] += 1

    def _bury(self, pipe: _Pipe) -> None:
        # A blackholed connection is never read again, and never closed before stop(): both peers keep an
        # ESTABLISHED socket, what they send piles up in the kernel buffers and then stalls, as on a path
        # where a firewall drops every packet.
        self._unregister(pipe.client)
        self._unregister(pipe.target)

    def _unregister(self, sock: socket.socket) -> None:
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)

    def _close(self, pipe: _Pipe, *, reset: bool) -> None:
        for sock in (pipe.client, pipe.target):
            self._unregister(sock)
            self._pipes.pop(sock, None)
            if reset:
                _abort(sock)
            else:
                sock.close()
        if reset:
            log.info("proxy: connection #%d reset", pipe.number)


def _abort(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
