"""The stomp.py transport's own logic, without a broker (its behaviour on ActiveMQ: tests/integration)."""

from __future__ import annotations

import logging
import socket
import threading

import pytest

from nfmp_client._transport import _socket_error_caught, no_delay


@pytest.mark.parametrize(
    ("error", "why"),
    [
        (ConnectionRefusedError(111, "Connection refused"), "Connection refused"),
        (socket.gaierror(-2, "Name or service not known"), "Name or service not known"),
        (TimeoutError("timed out"), "timed out"),
        (OSError("something else"), "something else"),
    ],
    ids=["refused", "unknown-host", "timeout", "other"],
)
def test_the_socket_error_stomp_py_only_logs_is_caught(error: OSError, why: str) -> None:
    """stomp.py logs why a socket could not be opened, then raises without it: the transport reads it."""
    with _socket_error_caught() as caught:
        logging.getLogger("stomp.py").warning("something unrelated %s %s %s", "x.example", 2, error)
        assert caught.why is None
        logging.getLogger("stomp.py").warning(
            "could not connect to host %s, port %s: %s", "h.example", 1, error
        )

    assert caught.why == why


def test_only_the_connecting_threads_error_counts() -> None:
    """Another connection failing at the same time on another thread is not this one's reason."""

    def elsewhere() -> None:
        logging.getLogger("stomp.py").warning(
            "could not connect to host %s, port %s: %s", "y.example", 3, ConnectionRefusedError(111, "no")
        )

    with _socket_error_caught() as caught:
        other = threading.Thread(target=elsewhere)
        other.start()
        other.join()

    assert caught.why is None
    assert not any(isinstance(f, type(caught)) for f in logging.getLogger("stomp.py").filters)


def test_small_frames_are_sent_at_once() -> None:
    """The socket stomp.py opened gets TCP_NODELAY: an acknowledgement is not held back by Nagle's algorithm
    while an earlier frame waits for the peer's delayed ACK."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        with client:

            class Transport:
                socket = client

            assert not client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            no_delay(Transport())
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            no_delay(object())  # no socket (yet): nothing to do
