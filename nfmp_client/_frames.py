"""STOMP frames off the socket: read through stomp.py, cut and parsed here, the end of each read reported.

stomp.py (9.x) parses each header line of a frame with a regular expression match and two ``re.sub`` calls,
and cuts frames out of its buffer with more regular expressions: about 60 us for an NFM-P event of 25
headers, more than the client's own decoding of the XML body. Here a frame is cut with ``bytes.find`` and
parsed by splitting each header at its first colon, unescaping only a header with a backslash: about 14 us.
:func:`parse_frame` returns exactly what stomp.py's ``parse_frame`` returns, and the reader cuts any stream
as stomp.py cuts it read whole (property tests hold both).

:func:`install` puts the reader into one stomp.py transport (per instance: nothing global changes, another
stomp.py connection in the same process keeps stomp.py's own loop). The socket is still read by stomp.py's
``receive`` (TLS included), each frame still goes through its ``process_frame`` to its listeners, and the end
of each read is reported, so that the messages of one read can be handed over together. It replaces one
private method of stomp.py's ``BaseTransport`` (its frame loop, ``__read_frames``); without it, it installs
nothing and stomp.py works as it is.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from typing import Any, Final

from stomp.exception import ConnectionClosedException, InterruptedException
from stomp.utils import HEARTBEAT_FRAME, Frame

__all__ = ["install", "parse_frame"]

_LINE_END: Final = re.compile("\n|\r\n")
_ESCAPE: Final = re.compile(r"\\.")
_UNESCAPES: Final = {"\\r": "\r", "\\n": "\n", "\\c": ":", "\\\\": "\\"}
_CONTENT_LENGTH: Final = re.compile(rb"content-length:\s*([0-9]+)")  # at a line start, as stomp.py reads it
_EOL: Final = b"\n"
_READ_BYTES: Final = 65536  # the most one read from the socket takes (stomp.py's own: 16 KiB)

log = logging.getLogger("nfmp_client.transport")


def _unescape(match: re.Match[str]) -> str:
    escaped = match.group(0)
    return _UNESCAPES.get(escaped, escaped)  # an unknown escape stays as it is, as stomp.py keeps it


def _preamble_end(frame: bytes, start: int = 0, end: int | None = None) -> tuple[int, int]:
    """Return where the headers of the frame at *start* end and its body begins, or (-1, -1).

    The first blank line ends the headers (LF LF, or CR LF CR LF), searched for before *end*.
    """
    end = len(frame) if end is None else end
    lf = frame.find(b"\n\n", start, end)
    # Only a CR LF CR LF that starts before the LF LF matters (it may overlap it: CR LF CR LF LF).
    crlf = frame.find(b"\r\n\r\n", start, end if lf < 0 else lf + 3)
    if crlf >= 0:
        return crlf, crlf + 4
    if lf >= 0:
        return lf, lf + 2
    return -1, -1


def parse_frame(frame: bytes) -> Any:
    """Parse one STOMP frame (without its NUL) into a stomp.py ``Frame``, or None for a frame of blank lines.

    The same result as ``stomp.utils.parse_frame``: the preamble is decoded as UTF-8 (undecodable bytes
    replaced), leading blank lines are skipped, a header line without a colon or with an empty name is
    ignored, the first of repeated headers wins, and the body is the bytes after the blank line.
    """
    return _parse(frame, *_preamble_end(frame))


def _parse(frame: bytes, preamble_end: int, body_start: int) -> Any:
    # parse_frame, given where the headers end and the body begins (-1: no blank line, all headers).
    if preamble_end < 0:
        preamble_end = body_start = len(frame)
    preamble = frame[:preamble_end].decode("utf-8", "replace")
    lines = _LINE_END.split(preamble) if "\r" in preamble else preamble.split("\n")
    first = 0
    while first < len(lines) and not lines[first]:
        first += 1
    if first == len(lines):
        return None
    headers: dict[str, str] = {}
    for line in lines[first + 1 :]:
        key, colon, value = line.partition(":")
        if not colon or not key:
            continue  # stomp.py's pattern needs a name of at least one character before the colon
        if "\\" in line:
            key = _ESCAPE.sub(_unescape, key)
            if key in headers:
                continue
            value = _ESCAPE.sub(_unescape, value)
        elif key in headers:
            continue
        headers[key] = value
    return Frame(lines[first], headers, frame[body_start:])


def _content_length(buffer: bytes, start: int, end: int) -> int | None:
    """Return the ``content-length`` of the preamble ``buffer[start:end]`` as stomp.py reads it, or None."""
    at = start
    while True:
        at = buffer.find(b"content-length:", at, end)
        if at < 0:
            return None
        if at == start or buffer[at - 1] == 10:  # at the start of a line (10: LF)
            found = _CONTENT_LENGTH.match(buffer, at, end)
            if found is not None:
                return int(found.group(1))
        at += 1


class _FrameReader:
    """Reads a stomp.py transport's socket and cuts the stream into frames, as stomp.py's own loop does.

    The frames are cut at their NUL, or after ``content-length`` bytes of body when that is longer; EOLs
    between frames are skipped; an EOL alone, with nothing buffered, is a heart-beat. Each frame is handed
    to the transport's ``process_frame`` (so stomp.py's listeners, its heart-beat listener included, hear of
    it as they would), then *read_done* is called.
    """

    def __init__(self, transport: Any, read_done: Callable[[], None]) -> None:
        self._transport = transport
        self._read_done = read_done
        self._buffer = b""
        self._cut = 0  # where the frames of the buffer being read end so far

    def read_frames(self) -> None:
        transport = self._transport
        try:
            data = self._receive()
            if data is None:
                return
            if data == _EOL and not self._buffer:
                transport.process_frame(HEARTBEAT_FRAME, data)
                return
            buffer = self._buffer + data if self._buffer else data
            self._cut = 0
            try:
                self._frames(buffer)
            finally:  # what a failing listener had not heard yet stays for the next read
                self._buffer = buffer[self._cut :]
        finally:
            self._read_done()

    def _receive(self) -> bytes | None:
        # One read, as stomp.py's loop does it: None when there is nothing to read now (TLS), an exception
        # that ends the loop when the connection is closed.
        transport = self._transport
        while transport.running:
            try:
                data = transport.receive()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return None
            except InterruptedException:
                continue
            except Exception:  # as stomp.py: any failure of the read is a closed connection
                log.debug("socket read error", exc_info=True)
                data = b""
            if not data:
                if not transport.blocking:
                    return None  # a TLS read can come back empty while the connection is open
                self._buffer = b""
                raise ConnectionClosedException()
            return bytes(data)
        return None

    def _frames(self, buffer: bytes) -> None:
        # Hand over every whole frame in *buffer*; _cut says where the rest (an incomplete frame) begins.
        process = self._transport.process_frame
        start, size = 0, len(buffer)
        while start < size:
            while buffer[start : start + 1] == _EOL:  # EOLs after a frame (heart-beats among them)
                start += 1
            nul = buffer.find(b"\x00", start)
            if nul < 0:
                break
            preamble_end, body_start = _preamble_end(buffer, start, nul)
            if preamble_end >= 0:
                length = _content_length(buffer, start, preamble_end)
                if length is not None and body_start + length > nul:
                    # The body holds NULs: the frame ends after its content-length.
                    if body_start + length >= size:
                        break  # not all here yet
                    nul = body_start + length
            frame = buffer[start:nul]
            if preamble_end >= 0:  # found above (before the first NUL): where it is in *frame*
                preamble_end, body_start = preamble_end - start, body_start - start
            start = self._cut = nul + 1
            parsed = _parse(frame, preamble_end, body_start)
            if parsed is not None:
                process(parsed, frame)
        self._cut = start


def install(transport: Any, read_done: Callable[[], None]) -> bool:
    """Make *transport* (a stomp.py transport, bodies as bytes) read its frames with a :class:`_FrameReader`.

    *read_done* is called on the receiver thread after the frames of each read from the socket were processed
    (the listeners were told of each). Return False, changing nothing, when this stomp.py lacks what it needs.
    """
    if not hasattr(transport, "_BaseTransport__read_frames") or not callable(
        getattr(transport, "receive", None)
    ):
        return False
    if getattr(transport, "_BaseTransport__auto_decode", True):
        return False  # stomp.py would decode bodies to str: leave it its own loop
    transport._BaseTransport__read_frames = _FrameReader(transport, read_done).read_frames
    if getattr(transport, "_Transport__recv_bytes", _READ_BYTES) < _READ_BYTES:
        transport._Transport__recv_bytes = _READ_BYTES  # fewer, fuller reads: larger batches of messages
    return True
