"""The frame reader: the same frames as stomp.py's own loop, from any cut of the byte stream."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import stomp
from hypothesis import given, settings, strategies as st
from stomp.exception import ConnectionClosedException
from stomp.transport import Transport
from stomp.utils import parse_frame as stomp_parse_frame

from nfmp_client._frames import install, parse_frame

# Header names and values with the characters that matter: STOMP escapes, colons, CR, non-ASCII, bytes that
# are not UTF-8 (undecodable in a preamble: both parsers replace them).
_TEXT = st.text(alphabet=st.sampled_from("ab:-_\\cnr \r\té€"), max_size=8)
_HEADER = st.tuples(_TEXT, _TEXT)
_BODY = st.binary(max_size=40) | st.sampled_from([b"", b"<xml/>", b"a\x00b\x00", b"\n\n", b"\r\n\r\n"])


@st.composite
def frames(draw: Any) -> bytes:
    """One frame as a broker could send it (or a damaged one), without its NUL."""
    # (not RECEIPT: stomp.py's own loop fails on one without a receipt-id, which this would draw)
    command = draw(st.sampled_from(["MESSAGE", "ERROR", "CONNECTED", ""]))
    headers = draw(st.lists(_HEADER, max_size=6))
    body = draw(_BODY)
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    lead = draw(st.sampled_from(["", "\n", "\r\n"]))
    lines = [f"{key}:{value}" for key, value in headers]
    if b"\x00" in body or draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), f"content-length:{len(body)}")
    preamble = (lead + command + eol + "".join(line + eol for line in lines) + eol).encode("utf-8")
    if draw(st.booleans()):
        preamble = preamble.replace(b"\xc3\xa9", b"\xff", 1)  # a byte that is not UTF-8
    return bytes(preamble + body)


def _as_tuple(frame: Any) -> tuple[str, dict[str, str], bytes]:
    return (frame.cmd, dict(frame.headers), frame.body)


@given(frames())
@settings(max_examples=400)
def test_parse_frame_equals_stomp_pys(frame: bytes) -> None:
    """For any frame (escapes, CRLF, repeated or broken headers, undecodable bytes) the result is stomp.py's."""
    ours, theirs = parse_frame(frame), stomp_parse_frame(frame)
    assert (ours is None) == (theirs is None)
    if ours is not None:
        assert _as_tuple(ours) == _as_tuple(theirs)


class _Heard(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.frames: list[tuple[str, dict[str, str], bytes]] = []
        self.heartbeats = 0

    def on_message(self, frame: Any) -> None:
        self.frames.append(_as_tuple(frame))

    def on_receipt(self, frame: Any) -> None:
        self.frames.append(_as_tuple(frame))

    def on_error(self, frame: Any) -> None:
        self.frames.append(_as_tuple(frame))

    def on_heartbeat(self) -> None:
        self.heartbeats += 1


def _read(chunks: list[bytes], *, ours: bool) -> tuple[_Heard, int]:
    """Feed *chunks* (one per socket read) to a stomp.py transport; return what its listener heard."""
    transport = Transport([("localhost", 1)], auto_decode=False)
    heard, reads = _Heard(), [0]
    transport.set_listener("heard", heard)
    pending: Iterator[bytes] = iter(chunks)
    transport.receive = lambda: next(pending, b"")
    transport.running = True
    if ours:
        assert install(transport, lambda: reads.__setitem__(0, reads[0] + 1))
    with pytest.raises(ConnectionClosedException):  # the empty read after the last: the connection closed
        _read_until_closed(transport, len(chunks) + 1)
    return heard, reads[0]


def _read_until_closed(transport: Any, most: int) -> None:
    # stomp.py's loop reads on until a chunk holds a NUL: it may take several chunks in one call.
    for _ in range(most):
        transport._BaseTransport__read_frames()


def _cut(stream: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(stream)) for cut in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(points) if b > a]


@given(
    st.lists(st.tuples(frames(), st.sampled_from([b"", b"\n", b"\n\n"])), min_size=1, max_size=6),
    st.lists(st.integers(0, 400), max_size=8),
)
@settings(max_examples=300)
def test_the_reader_cuts_the_stream_as_stomp_py_does(
    items: list[tuple[bytes, bytes]], cuts: list[int]
) -> None:
    """Whatever the reads return (a frame in pieces, several frames at once, EOLs between them), the frames
    heard are those stomp.py hears when the whole stream comes in one read, in order; *read_done* comes once
    per read. (stomp.py's own loop can lose a frame when a read ends inside a body that holds NULs: the
    reference is therefore the stream read whole.)"""
    stream = b"".join(frame + b"\x00" + eols for frame, eols in items)
    chunks = _cut(stream, cuts)
    theirs, _ = _read([stream], ours=False)
    ours, reads = _read(chunks, ours=True)
    assert ours.frames == theirs.frames
    assert reads == len(chunks) + 1  # and the last, empty read that ends the connection


def test_a_read_that_ends_inside_a_body_of_nuls_loses_nothing() -> None:
    """A read ends inside a body of NULs sized by content-length (stomp.py's own loop drops a later frame
    here): every frame is heard, as from the stream read whole."""
    stream = (
        b"ERROR\ncontent-length:1\n\n\x00\x00\n\n"
        + b"\ncontent-length:4\n\xff:\n\n\x00\x00\x00\x00\x00\n"
        + b"\nMESSAGE\n\n\x00"
        + b"MESSAGE\n\n\x00" * 3
    )
    whole, _ = _read([stream], ours=True)
    assert [frame[0] for frame in whole.frames] == ["ERROR"] + ["MESSAGE"] * 4
    for cut in range(1, len(stream)):
        ours, _ = _read([stream[:cut], stream[cut:]], ours=True)
        assert ours.frames == whole.frames, cut


def test_an_eol_alone_is_a_heartbeat() -> None:
    """An EOL read on its own between frames is a heart-beat, as stomp.py hears it."""
    message = b"MESSAGE\nmessage-id:1\n\nbody\x00"
    chunks = [b"\n", message, b"\n", b"\n"]
    theirs, _ = _read(chunks, ours=False)
    ours, _ = _read(chunks, ours=True)
    assert (
        (ours.heartbeats, ours.frames)
        == (theirs.heartbeats, theirs.frames)
        == (3, [("MESSAGE", {"message-id": "1"}, b"body")])
    )


def test_a_body_with_nuls_waits_for_its_content_length() -> None:
    """A body holding NULs is cut after content-length bytes, even when it arrives a byte at a time."""
    body = b"a\x00b\x00c"
    stream = b"MESSAGE\ncontent-length:5\n\n" + body + b"\x00\nRECEIPT\nreceipt-id:r\n\n\x00"
    chunks = [stream[i : i + 1] for i in range(len(stream))]
    ours, _ = _read(chunks, ours=True)
    assert ours.frames == [
        ("MESSAGE", {"content-length": "5"}, body),
        ("RECEIPT", {"receipt-id": "r"}, b""),
    ]


def test_nothing_installed_when_stomp_py_decodes_bodies() -> None:
    """A transport that decodes bodies to text keeps stomp.py's own loop."""
    transport = Transport([("localhost", 1)], auto_decode=True)
    assert not install(transport, lambda: None)
    assert "_BaseTransport__read_frames" not in vars(transport)


def test_a_listener_that_raises_loses_no_later_frame() -> None:
    """A listener raising on the first frame of a read (stomp.py's loop logs it and reads on): the frames
    after it in that read are heard at the next read, not dropped."""

    class RaisesOnce(_Heard):
        def on_message(self, frame: Any) -> None:
            super().on_message(frame)
            if len(self.frames) == 1:
                raise RuntimeError("a listener's bug")

    transport = Transport([("localhost", 1)], auto_decode=False)
    heard = RaisesOnce()
    transport.set_listener("heard", heard)
    chunks = iter([b"".join(b"MESSAGE\nmessage-id:%d\n\n\x00" % i for i in range(3)), b"\n"])
    transport.receive = lambda: next(chunks, b"")
    transport.running = True
    assert install(transport, lambda: None)

    with pytest.raises(RuntimeError):
        transport._BaseTransport__read_frames()
    transport._BaseTransport__read_frames()  # the next read: a heart-beat's EOL
    assert [frame[1]["message-id"] for frame in heard.frames] == ["0", "1", "2"]
