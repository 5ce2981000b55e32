"""FaultProxy: a loopback TCP proxy whose faults (blackhole, reset, delay, idle timeout) switch at run time.

The connection failures an NFM-P client must survive happen between it and the broker, and most of them are
silent. In the Spacewalk wiki's "Jabber and OSAD client connection issues", a firewall dropped idle TCP
sessions without telling either side: both sockets stayed ESTABLISHED and nothing flowed ever again. This
proxy reproduces that and the other faults on loopback, without root, so that a test can break the path at the
moment it chooses and watch what the client does:

* ``PASS``: bytes flow both ways; a FIN from one peer is passed on to the other once the bytes before it are
  delivered (half-close works).
* ``BLACKHOLE``: nothing flows and nothing closes. The proxy stops reading and writing both sockets of every
  connection and never closes them (until :meth:`FaultProxy.reset` or :meth:`FaultProxy.stop`): each peer
  keeps an ESTABLISHED socket and gets no byte, no FIN and no reset, even when the other peer closes; what
  it sends piles up in kernel buffers. Bytes the proxy held at that moment are dropped. New connections made
  while the mode holds are accepted (the kernel completes the handshake) and blackholed at once; the target
  never hears of them.
* ``BLACKHOLE_TO_CLIENT`` and ``BLACKHOLE_TO_TARGET``: one way dies and the other flows, like a firewall that
  has lost the state of one half of a session. Toward the client, nothing the target sends (no byte, no FIN)
  reaches the client, while the client's bytes and FIN still reach the target; toward the target, the
  reverse. The proxy keeps reading the dead direction's source and discards what it reads, as a firewall
  drops the packets, so that sender never blocks (but the proxy's kernel acknowledges those bytes, see
  below); bytes held for the dead direction when the mode starts are dropped. Once the live direction has
  passed its FIN on and the dead direction's source has sent its FIN too, both peers have finished sending
  and the proxy closes both sockets, as for a FIN both ways (only then does the dead direction's sink get a
  FIN). New connections made while the mode holds are connected to the target (it hears of them) and get
  the dead direction at once. A reset by either peer still ends the connection with resets, as in ``PASS``.
  A connection whose other direction then dies too is blackholed both ways, as above.
* ``RESET``: every open connection, blackholed ones included, is closed with a TCP reset on both sides before
  :meth:`FaultProxy.reset` returns; new connections are reset as soon as they are accepted.
* ``DELAY``: bytes flow with an added latency per chunk, in order.
* ``IDLE_TIMEOUT``: bytes flow, but a connection idle (no byte either way) for longer than the configured
  seconds is silently blackholed, exactly as above: the stateful firewall of that story.

A blackholed connection is dead for good, and so is the dead direction of a one-way blackholed one. Switching
back to ``PASS`` lets *new* connections through and leaves the blackholed ones silent (and the one-way ones
one-way): that is what a firewall which has forgotten a session does, and the only honest choice, because the
bytes the peers sent meanwhile are lost, so their byte streams (STOMP frames) could not be resumed anyway.
A test ends them with :meth:`FaultProxy.reset` or lets the client give up on them.

Unlike a real firewall, the proxy's kernel still acknowledges what the peers send into a blackhole (two-way or
one-way), so there are no TCP retransmissions, only silence: the peers' own TCP stacks never time the
connection out. For heart-beat detection, which is what an application relies on, the effect is the same.

One selector thread does all the I/O, with non-blocking sockets: a peer that stops reading stalls only its own
connection (the proxy stops reading from the other side once ``buffer_limit`` bytes are held for it), never
the proxy. The public methods are thread-safe and return once the mode change is in force.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import functools
import logging
import math
import os
import selectors
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, Literal, final

from attrs import frozen

__all__ = ["FaultProxy", "ProxyMode", "ProxyStats"]

log = logging.getLogger("nfmp_client.testing")

_CHUNK: Final = 65536
_DEFAULT_CONNECT_TIMEOUT: Final = 5.0
_DEFAULT_BUFFER_LIMIT: Final = 1024 * 1024
_MAX_WAIT: Final = 0.5  # seconds: the loop looks at its timers at least this often, as a safety net
_ACCEPT: Final = "accept"
_WAKE: Final = "wake"
_READ: Final = selectors.EVENT_READ
_WRITE: Final = selectors.EVENT_WRITE


class ProxyMode(enum.Enum):
    """What a :class:`FaultProxy` does with the bytes of its connections."""

    PASS = "pass"  # noqa: S105  # a mode, not a password
    """Forward both ways."""
    BLACKHOLE = "blackhole"
    """Forward nothing, close nothing (a half-open path); blackholed connections stay dead."""
    BLACKHOLE_TO_CLIENT = "blackhole-to-client"
    """Drop what the target sends (bytes and FIN), forward what the client sends; for good, per connection."""
    BLACKHOLE_TO_TARGET = "blackhole-to-target"
    """Drop what the client sends (bytes and FIN), forward what the target sends; for good, per connection."""
    RESET = "reset"
    """Reset every connection, and each new one."""
    DELAY = "delay"
    """Forward with added latency."""
    IDLE_TIMEOUT = "idle-timeout"
    """Forward, but silently blackhole a connection idle for too long."""


_ONE_WAY: Final = (ProxyMode.BLACKHOLE_TO_CLIENT, ProxyMode.BLACKHOLE_TO_TARGET)


@frozen(kw_only=True)
class ProxyStats:
    """What a :class:`FaultProxy` has seen since it was created (a snapshot)."""

    mode: ProxyMode
    """The current mode."""
    open_connections: int
    """Connections accepted and not closed yet (blackholed ones included: their sockets are open)."""
    accepted: int
    """Connections accepted, those reset on arrival included."""
    blackholed: int
    """Connections blackholed both ways, by the mode or by the idle timeout."""
    one_way_blackholed: int
    """Connections one direction of which a one-way blackhole killed (``blackhole("client")`` or
    ``blackhole("target")``); one also blackholed both ways later is counted in :attr:`blackholed` too."""
    idled_out: int
    """Connections blackholed by the idle timeout (also counted in :attr:`blackholed`)."""
    resets: int
    """Connections ended with a TCP reset by the ``RESET`` mode, those reset on arrival included."""
    connect_failures: int
    """Connections whose target could not be reached (the client was reset)."""
    bytes_to_target: int
    """Bytes delivered from clients to the target (bytes dropped by a blackhole are not counted)."""
    bytes_to_client: int
    """Bytes delivered from the target to clients."""


class _Direction:
    """One direction of a connection: bytes read from one socket, held, then written to the other."""

    __slots__ = ("dead", "delayed", "eof", "held", "outbuf", "shut", "to_target")

    def __init__(self, *, to_target: bool) -> None:
        self.to_target = to_target
        self.delayed: deque[tuple[float, bytes]] = deque()  # (due, chunk), in arrival order
        self.outbuf = bytearray()  # due bytes the sink's kernel buffer has not taken yet
        self.held = 0  # bytes in delayed + outbuf
        self.eof = False  # the source sent FIN
        self.shut = False  # ... and it was passed on to the sink
        self.dead = False  # one-way blackholed for good: read and discard, never write, never pass a FIN on

    @property
    def finished(self) -> bool:
        """The source's FIN was passed on, or the source sent FIN into a dead direction."""
        return self.shut or (self.dead and self.eof)

    def drop(self) -> None:
        self.delayed.clear()
        self.outbuf.clear()
        self.held = 0


class _Pipe:
    """One proxied connection: the client's socket and, once connecting, the target's."""

    def __init__(self, number: int, client: socket.socket, peer: str, now: float) -> None:
        self.number = number
        self.client = client
        self.target: socket.socket | None = None
        self.peer = peer
        self.connecting = False
        self.connect_deadline = 0.0
        self.dead = False  # blackholed for good, both ways (see also up.dead and down.dead)
        self.closed = False
        self.last_activity = now
        self.up = _Direction(to_target=True)
        self.down = _Direction(to_target=False)
        self.masks: dict[socket.socket, int] = {}  # what each socket is registered for (absent: nothing)


@final
class FaultProxy:
    """A TCP proxy from ``listen_host:listen_port`` to ``target_host:target_port`` with switchable faults.

    Every mode applies at once to the open connections and to new ones; the proxy starts in ``PASS``. See the
    module documentation for exactly what each mode does on the wire.

    Example::

        with FaultProxy(broker.host, broker.port) as proxy:
            conn = stomp.Connection12([proxy.address], heartbeats=(500, 500))
            ...
            proxy.blackhole()   # the path dies silently: heart-beats notice, nothing else does
            ...
            proxy.passthrough()  # new connections flow again; the blackholed one stays dead

    Args:
        target_host: Where connections are forwarded to (resolved once, by :meth:`start`).
        target_port: The target's port.
        listen_host: The address to listen on.
        listen_port: The port to listen on; 0 picks a free one (see :attr:`port`).
        connect_timeout: Seconds to wait for the target when a client connects; a client whose target cannot
            be reached in time is reset.
        buffer_limit: Bytes the proxy holds per connection and direction (delayed or not yet written) before
            it stops reading from the sender.

    Raises:
        ValueError: A port out of range, or a timeout or limit that is not positive.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        connect_timeout: float = _DEFAULT_CONNECT_TIMEOUT,
        buffer_limit: int = _DEFAULT_BUFFER_LIMIT,
    ) -> None:
        if not 0 < target_port < 65536:
            raise ValueError(f"target_port must be 1 to 65535, got {target_port!r}")
        if not 0 <= listen_port < 65536:
            raise ValueError(f"listen_port must be 0 to 65535, got {listen_port!r}")
        if not (math.isfinite(connect_timeout) and connect_timeout > 0):
            raise ValueError(f"connect_timeout must be a positive number of seconds, got {connect_timeout!r}")
        if buffer_limit < 1:
            raise ValueError(f"buffer_limit must be a positive number of bytes, got {buffer_limit!r}")
        self._target = (target_host, target_port)
        self._listen = (listen_host, listen_port)
        self._connect_timeout = connect_timeout
        self._buffer_limit = buffer_limit
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 0  # bumped (and waiters woken) whenever something may have changed
        self._mode = ProxyMode.PASS
        self._delay = 0.0
        self._idle = 0.0
        self._pipes: dict[int, _Pipe] = {}
        self._numbered = 0
        self._accepted = self._blackholed = self._idled_out = self._resets = self._connect_failures = 0
        self._one_way = 0
        self._to_target = self._to_client = 0
        self._running = False
        self._address: tuple[str, int] | None = None
        self._name = f"fault proxy -> {target_host}:{target_port}"
        self._target_family = socket.AF_INET
        self._target_sockaddr: Any = None
        self._server: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = "not started" if self._address is None else "{}:{}".format(*self._address)
        return f"<FaultProxy {where} -> {self._target[0]}:{self._target[1]}, mode {self._mode.value}>"

    # ------------------------------------------------------------------------------------------- life

    def start(self) -> None:
        """Listen and start forwarding; does nothing if already started.

        After :meth:`stop`, ``start()`` listens again on the same port, in the mode the proxy was left in.

        Raises:
            OSError: The target's name cannot be resolved, or the listening address cannot be bound.
        """
        with self._lock:
            if self._running:
                return
            family, _, _, _, sockaddr = socket.getaddrinfo(*self._target, type=socket.SOCK_STREAM)[0]
            server = socket.create_server(self._listen)
            server.setblocking(False)
            host, port = server.getsockname()[:2]
            self._address = (str(host), int(port))
            self._listen = (self._listen[0], int(port))
            self._name = f"fault proxy :{port}"
            self._target_family, self._target_sockaddr = family, sockaddr
            selector = selectors.DefaultSelector()
            wake_r, wake_w = socket.socketpair()
            wake_r.setblocking(False)
            wake_w.setblocking(False)
            selector.register(server, _READ, _ACCEPT)
            selector.register(wake_r, _READ, _WAKE)
            self._server, self._selector, self._wake_r, self._wake_w = server, selector, wake_r, wake_w
            self._running = True
            self._thread = threading.Thread(
                target=self._loop, args=(selector,), name=f"nfmp-fault-proxy-{port}", daemon=True
            )
            self._thread.start()
            log.info(
                "%s: forwarding %s:%d -> %s:%d (mode %s)",
                self._name,
                *self._address,
                *self._target,
                self._mode.value,
            )

    def stop(self) -> None:
        """Close every connection (with a FIN, blackholed ones too), stop listening and join the thread.

        Does nothing if not started.
        """
        with self._lock:
            if not self._running:
                return
            self._running = False
            thread = self._thread
        self._wake()
        if thread is not None:
            thread.join(timeout=10.0)
            if thread.is_alive():  # pragma: no cover - the loop never blocks
                log.warning("%s: the proxy thread did not stop", self._name)
        with self._lock:
            for pipe in list(self._pipes.values()):
                self._close(pipe, reset=False, why="closed: the proxy stopped")
            for sock in (self._server, self._wake_r, self._wake_w):
                if sock is not None:
                    sock.close()
            if self._selector is not None:
                self._selector.close()
            self._server = self._selector = self._wake_r = self._wake_w = self._thread = None
            self._bump()
        log.info("%s: stopped", self._name)

    def __enter__(self) -> FaultProxy:
        """Start the proxy."""
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        """Stop the proxy."""
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` clients connect to (known once started; kept after :meth:`stop`).

        Raises:
            RuntimeError: The proxy was never started.
        """
        if self._address is None:
            raise RuntimeError("the proxy is not started")
        return self._address

    @property
    def port(self) -> int:
        """The port clients connect to.

        Raises:
            RuntimeError: The proxy was never started.
        """
        return self.address[1]

    # ------------------------------------------------------------------------------------------ modes

    @property
    def mode(self) -> ProxyMode:
        """The current mode."""
        return self._mode

    def passthrough(self) -> None:
        """Forward both ways; connections blackholed earlier stay dead, new ones flow."""
        self._set_mode(ProxyMode.PASS)

    def blackhole(self, toward: Literal["both", "client", "target"] = "both") -> None:
        """Forward nothing toward *toward*, for every open connection (for good) and every new one.

        ``"both"`` forwards nothing and closes nothing, either way (``ProxyMode.BLACKHOLE``). ``"client"``
        drops what the target sends, bytes and FIN, and still forwards what the client sends
        (``ProxyMode.BLACKHOLE_TO_CLIENT``); ``"target"`` drops what the client sends and forwards what the
        target sends (``ProxyMode.BLACKHOLE_TO_TARGET``). The dropped bytes are read and discarded, so their
        sender never blocks; new connections are connected to the target. A connection that already has the
        other direction dead is blackholed both ways. See the module documentation for the details.

        When this returns, no further byte is delivered toward *toward* on any open connection.

        Args:
            toward: The side that stops hearing from the other: ``"both"``, ``"client"`` or ``"target"``.

        Raises:
            ValueError: *toward* is none of these.
        """
        modes = {
            "both": ProxyMode.BLACKHOLE,
            "client": ProxyMode.BLACKHOLE_TO_CLIENT,
            "target": ProxyMode.BLACKHOLE_TO_TARGET,
        }
        mode = modes.get(toward) if isinstance(toward, str) else None
        if mode is None:
            raise ValueError(f"toward must be 'both', 'client' or 'target', got {toward!r}")
        self._set_mode(mode)

    def reset(self) -> None:
        """Reset both sides of every open connection (SO_LINGER 0: an RST), and each new one meanwhile.

        When this returns, every connection that was open has been reset, so ``reset(); passthrough()`` breaks
        the open connections and lets the client reconnect at once.
        """
        self._set_mode(ProxyMode.RESET)

    def delay(self, seconds: float) -> None:
        """Forward each chunk read from now on *seconds* later, in order (earlier chunks keep their time).

        Args:
            seconds: The added latency, each way; 0 forwards at once.

        Raises:
            ValueError: *seconds* is negative or not finite.
        """
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"the delay must be a finite number of seconds >= 0, got {seconds!r}")
        self._set_mode(ProxyMode.DELAY, seconds=seconds)

    def idle_timeout(self, seconds: float) -> None:
        """Forward, but silently blackhole (for good) a connection idle for more than *seconds*.

        Idle means no byte read from either peer. The idle clock of every open connection starts now.

        Args:
            seconds: How long a connection may stay idle.

        Raises:
            ValueError: *seconds* is not a positive finite number.
        """
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"the idle timeout must be a positive finite number of seconds, got {seconds!r}")
        self._set_mode(ProxyMode.IDLE_TIMEOUT, seconds=seconds)

    # ------------------------------------------------------------------------------------ observation

    def stats(self) -> ProxyStats:
        """Return a snapshot of what the proxy has seen so far."""
        with self._lock:
            return self._stats()

    def wait_until(self, predicate: Callable[[ProxyStats], bool], *, timeout: float = 10.0) -> ProxyStats:
        """Wait until *predicate* is true of the proxy's stats, e.g. ``lambda s: s.idled_out >= 1``.

        Args:
            predicate: Called with each new snapshot (on the calling thread); must not block.
            timeout: Seconds to wait at most.

        Returns:
            The snapshot *predicate* accepted.

        Raises:
            TimeoutError: *predicate* was still false after *timeout* seconds.
        """
        return self._wait(predicate, timeout, "the condition")

    def wait_for_connections(self, count: int, *, timeout: float = 10.0) -> ProxyStats:
        """Wait until at least *count* connections are open.

        Args:
            count: How many.
            timeout: Seconds to wait at most.

        Returns:
            The first snapshot with enough open connections.

        Raises:
            TimeoutError: Fewer after *timeout* seconds.
        """
        return self._wait(lambda s: s.open_connections >= count, timeout, f"{count} open connections")

    # -------------------------------------------------------------------------------------- internals

    def _stats(self) -> ProxyStats:
        return ProxyStats(
            mode=self._mode,
            open_connections=len(self._pipes),
            accepted=self._accepted,
            blackholed=self._blackholed,
            one_way_blackholed=self._one_way,
            idled_out=self._idled_out,
            resets=self._resets,
            connect_failures=self._connect_failures,
            bytes_to_target=self._to_target,
            bytes_to_client=self._to_client,
        )

    def _wait(self, predicate: Callable[[ProxyStats], bool], timeout: float, what: str) -> ProxyStats:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                stats, version = self._stats(), self._version
            if predicate(stats):
                return stats
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self._name}: no {what} within {timeout:g} s ({stats})")
            with self._changed:
                self._changed.wait_for(functools.partial(self._changed_since, version), timeout=remaining)

    def _changed_since(self, version: int) -> bool:
        return self._version != version

    def _bump(self) -> None:
        self._version += 1
        self._changed.notify_all()

    def _wake(self) -> None:
        wake = self._wake_w
        if wake is not None:
            with contextlib.suppress(OSError):  # closed, or already full of wake-ups: either way, fine
                wake.send(b"x")

    def _set_mode(self, mode: ProxyMode, *, seconds: float = 0.0) -> None:
        with self._lock:
            self._mode = mode
            detail = f" ({seconds:g} s)" if mode in (ProxyMode.DELAY, ProxyMode.IDLE_TIMEOUT) else ""
            log.info("%s: mode %s%s", self._name, mode.value, detail)
            if mode is ProxyMode.DELAY:
                self._delay = seconds
            elif mode is ProxyMode.IDLE_TIMEOUT:
                self._idle = seconds
                now = time.monotonic()
                for pipe in self._pipes.values():
                    pipe.last_activity = now
            elif mode is ProxyMode.BLACKHOLE:
                for pipe in list(self._pipes.values()):
                    self._kill(pipe, "blackholed")
            elif mode in _ONE_WAY:
                for pipe in list(self._pipes.values()):
                    self._kill_one_way(pipe, to_target=mode is ProxyMode.BLACKHOLE_TO_TARGET)
            elif mode is ProxyMode.RESET:
                for pipe in list(self._pipes.values()):
                    self._resets += 1
                    self._close(pipe, reset=True, why="reset (both sides)")
            self._bump()
        self._wake()

    # The loop: select outside the lock, act under it. Every handler first checks that its connection is
    # still alive, because a mode change on another thread may have blackholed or reset it in between.

    def _loop(self, selector: selectors.BaseSelector) -> None:
        timeout = 0.0
        while True:
            events = selector.select(timeout)  # a mode change meanwhile writes to the wake-up socket
            with self._lock:
                if not self._running:
                    return
                for key, mask in events:
                    self._dispatch(key, mask)
                now = time.monotonic()
                self._tick(now)
                self._bump()
                timeout = self._timeout(now)

    def _timeout(self, now: float) -> float:
        deadline = now + _MAX_WAIT
        for pipe in self._pipes.values():
            if pipe.dead:
                continue
            if pipe.connecting:
                deadline = min(deadline, pipe.connect_deadline)
                continue
            for direction in (pipe.up, pipe.down):
                if direction.delayed:
                    deadline = min(deadline, direction.delayed[0][0])
            if self._mode is ProxyMode.IDLE_TIMEOUT:
                deadline = min(deadline, pipe.last_activity + self._idle)
        return max(0.0, deadline - now)

    def _dispatch(self, key: selectors.SelectorKey, mask: int) -> None:
        data = key.data
        if isinstance(data, _Pipe):
            if data.closed or data.dead:
                return
            sock: socket.socket = key.fileobj  # type: ignore[assignment]  # we only register sockets
            if data.connecting:
                if sock is data.target and mask & _WRITE:
                    self._connected(data)
            elif mask & _READ:
                self._read(data, sock)
            # Writes happen in _tick, which runs after every batch of events.
        elif data == _ACCEPT:
            self._accept()
        elif data == _WAKE and self._wake_r is not None:
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)

    def _accept(self) -> None:
        assert self._server is not None  # noqa: S101  # set while running
        while True:
            try:
                client, addr = self._server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: say so and let the peer wait
                log.warning("%s: accept failed: %s", self._name, exc)
                return
            self._accepted += 1
            self._numbered += 1
            number, peer = self._numbered, f"{addr[0]}:{addr[1]}"
            if self._mode is ProxyMode.RESET:
                self._resets += 1
                _abort(client)
                log.info("%s: connection #%d from %s reset at once (mode reset)", self._name, number, peer)
                continue
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            now = time.monotonic()
            pipe = _Pipe(number, client, peer, now)
            self._pipes[number] = pipe
            if self._mode is ProxyMode.BLACKHOLE:
                pipe.dead = True
                self._blackholed += 1
                log.info(
                    "%s: connection #%d from %s accepted and blackholed (the target never hears of it)",
                    self._name,
                    number,
                    peer,
                )
                continue
            log.info("%s: connection #%d from %s", self._name, number, peer)
            self._connect(pipe, now)
            if self._mode in _ONE_WAY and not pipe.closed:
                self._kill_one_way(pipe, to_target=self._mode is ProxyMode.BLACKHOLE_TO_TARGET)

    def _connect(self, pipe: _Pipe, now: float) -> None:
        target = socket.socket(self._target_family, socket.SOCK_STREAM)
        target.setblocking(False)
        target.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pipe.target = target
        code = target.connect_ex(self._target_sockaddr)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._unreachable(pipe, os.strerror(code))
            return
        pipe.connecting = True  # even if already connected (code 0): _connected runs once it is writable
        pipe.connect_deadline = now + self._connect_timeout
        self._update_interest(pipe)

    def _connected(self, pipe: _Pipe) -> None:
        assert pipe.target is not None  # noqa: S101  # set by _connect
        code = pipe.target.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._unreachable(pipe, os.strerror(code))
            return
        pipe.connecting = False
        pipe.last_activity = time.monotonic()
        log.debug("%s: connection #%d connected to the target", self._name, pipe.number)

    def _unreachable(self, pipe: _Pipe, reason: str) -> None:
        self._connect_failures += 1
        why = "reset: cannot reach the target {}:{} ({})".format(*self._target, reason)
        self._close(pipe, reset=True, why=why, level=logging.WARNING)

    def _read(self, pipe: _Pipe, sock: socket.socket) -> None:
        from_client = sock is pipe.client
        direction = pipe.up if from_client else pipe.down
        try:
            data = sock.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._close(pipe, reset=True, why=f"aborted: {'client' if from_client else 'target'}: {exc}")
            return
        if not data:
            direction.eof = True
            log.debug("%s: connection #%d: FIN from the %s", self._name, pipe.number, _side(from_client))
            return
        now = time.monotonic()
        pipe.last_activity = now
        if direction.dead:  # one-way blackholed: read, so that the sender never blocks, and drop
            return
        direction.delayed.append((now + self._delay if self._mode is ProxyMode.DELAY else now, data))
        direction.held += len(data)

    def _tick(self, now: float) -> None:
        for pipe in list(self._pipes.values()):
            if pipe.dead:
                continue
            if pipe.connecting:
                if now >= pipe.connect_deadline:
                    self._unreachable(pipe, f"no answer within {self._connect_timeout:g} s")
                continue
            if self._mode is ProxyMode.IDLE_TIMEOUT and now - pipe.last_activity >= self._idle:
                self._idled_out += 1
                self._kill(pipe, f"idle for {self._idle:g} s: silently blackholed (idle timeout)")
                continue
            assert pipe.target is not None  # noqa: S101  # connected
            if not (
                self._pump(pipe, pipe.up, pipe.target, now) and self._pump(pipe, pipe.down, pipe.client, now)
            ):
                continue
            if pipe.up.finished and pipe.down.finished:
                why = "closed (FIN both ways)"
                if pipe.up.dead or pipe.down.dead:
                    sink = _side(not pipe.up.dead)
                    why = f"closed (FIN from both peers; the one toward the {sink} was dropped)"
                self._close(pipe, reset=False, why=why)
                continue
            self._update_interest(pipe)

    def _pump(self, pipe: _Pipe, direction: _Direction, sink: socket.socket, now: float) -> bool:
        """Write what is due; pass a FIN on once everything before it is written. False if the pipe closed."""
        if direction.dead:
            return True
        while direction.delayed and direction.delayed[0][0] <= now:
            direction.outbuf += direction.delayed.popleft()[1]
        while direction.outbuf:
            try:
                sent = sink.send(direction.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._close(pipe, reset=True, why=f"aborted: {_side(not direction.to_target)}: {exc}")
                return False
            del direction.outbuf[:sent]
            direction.held -= sent
            if direction.to_target:
                self._to_target += sent
            else:
                self._to_client += sent
        if direction.eof and not direction.shut and not direction.held:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)
            direction.shut = True
        return True

    def _update_interest(self, pipe: _Pipe) -> None:
        assert pipe.target is not None  # noqa: S101  # connecting or connected
        if pipe.connecting:
            self._set_interest(pipe, pipe.client, 0)
            self._set_interest(pipe, pipe.target, _WRITE)
            return
        up, down, limit = pipe.up, pipe.down, self._buffer_limit
        client = (_READ if not up.eof and up.held < limit else 0) | (_WRITE if down.outbuf else 0)
        target = (_READ if not down.eof and down.held < limit else 0) | (_WRITE if up.outbuf else 0)
        self._set_interest(pipe, pipe.client, client)
        self._set_interest(pipe, pipe.target, target)

    def _set_interest(self, pipe: _Pipe, sock: socket.socket, mask: int) -> None:
        current = pipe.masks.get(sock, 0)
        if mask == current or self._selector is None:
            return
        if not current:
            self._selector.register(sock, mask, pipe)
        elif not mask:
            self._selector.unregister(sock)
        else:
            self._selector.modify(sock, mask, pipe)
        if mask:
            pipe.masks[sock] = mask
        else:
            del pipe.masks[sock]

    def _unregister(self, pipe: _Pipe, sock: socket.socket) -> None:
        if pipe.masks.pop(sock, 0) and self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)

    def _kill(self, pipe: _Pipe, why: str) -> None:
        """Blackhole: drop what is held; never read, write or close the sockets again (but reset, stop)."""
        if pipe.dead or pipe.closed:
            return
        pipe.dead = True
        pipe.up.drop()
        pipe.down.drop()
        for sock in (pipe.client, pipe.target):
            if sock is not None:
                self._unregister(pipe, sock)
        self._blackholed += 1
        log.info("%s: connection #%d %s", self._name, pipe.number, why)

    def _kill_one_way(self, pipe: _Pipe, *, to_target: bool) -> None:
        """Kill one direction for good: drop what is held for it; from now on read and discard its bytes."""
        direction, other = (pipe.up, pipe.down) if to_target else (pipe.down, pipe.up)
        if pipe.dead or pipe.closed or direction.dead:
            return
        if other.dead:
            self._kill(pipe, f"blackholed both ways (one-way toward the {_side(not to_target)} too)")
            return
        direction.dead = True
        direction.drop()
        self._one_way += 1
        log.info(
            "%s: connection #%d one-way blackholed: the %s's bytes and FIN no longer reach the %s",
            self._name,
            pipe.number,
            _side(to_target),
            _side(not to_target),
        )

    def _close(self, pipe: _Pipe, *, reset: bool, why: str, level: int = logging.INFO) -> None:
        if pipe.closed:
            return
        pipe.closed = True
        for sock in (pipe.client, pipe.target):
            if sock is not None:
                self._unregister(pipe, sock)
                if reset:
                    _abort(sock)
                else:
                    sock.close()
        del self._pipes[pipe.number]
        log.log(level, "%s: connection #%d %s", self._name, pipe.number, why)


def _side(client: bool) -> str:
    return "client" if client else "target"


def _abort(sock: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
