"""Hostile inputs: the decoder refuses each with MalformedMessage, fetches nothing and expands nothing."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nfmp_client import KeepAliveEvent, MalformedMessage, ObjectCreation, ObjectDeletion, _codec
from nfmp_client.codec import EventCodec, decode_message, encode_event

from .test_codec import ENVELOPE, soap

VALID = encode_event(ObjectDeletion(object_full_name="network:10.0.0.1|port-1")).body


def with_doctype(doctype: str, field: str) -> bytes:
    """A well-formed NFM-P message preceded by *doctype*, with *field* as an object name."""
    body = f"<objectDeletionEvent><objectFullName>{field}</objectFullName></objectDeletionEvent>"
    return (doctype + ENVELOPE.format(header="", body=body)).encode()


def refuse(body: bytes, reason: str = "") -> MalformedMessage:
    with pytest.raises(MalformedMessage) as info:
        decode_message({}, body)
    assert reason in info.value.reason
    return info.value


def assert_refused_as_entity_attack(error: MalformedMessage) -> None:
    # Either our DTD refusal or libxml2's own amplification guard (which may fire first) stops it.
    assert "declares a DTD" in error.reason or "amplification" in error.reason, error.reason


@pytest.fixture
def http_server() -> Iterator[tuple[str, list[str]]]:
    """A local HTTP server that records every request made to it."""
    requests: list[str] = []

    class Recorder(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY leak "fetched">')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


class TestExternalEntities:
    def test_xxe_file(self, tmp_path: Path) -> None:
        """An external entity naming a local file is refused and the file's content appears nowhere."""
        secret = tmp_path / "secret.txt"
        secret.write_text("TOP-SECRET-42")
        body = with_doctype(f'<!DOCTYPE x [<!ENTITY xxe SYSTEM "file://{secret}">]>', "&xxe;")

        error = refuse(body, "declares a DTD")

        assert "TOP-SECRET-42" not in str(error) + repr(error) + error.reason

    @pytest.mark.parametrize(
        "doctype",
        [
            '<!DOCTYPE x [<!ENTITY xxe SYSTEM "{url}/entity">]>',
            '<!DOCTYPE x SYSTEM "{url}/external.dtd">',
            '<!DOCTYPE x [<!ENTITY % remote SYSTEM "{url}/param.dtd"> %remote;]>',
        ],
        ids=["general-entity", "external-dtd", "parameter-entity"],
    )
    def test_xxe_network(self, http_server: tuple[str, list[str]], doctype: str) -> None:
        """External entities and DTDs over the network are refused, and nothing is fetched."""
        url, requests = http_server
        body = with_doctype(doctype.format(url=url), "&xxe;" if "xxe" in doctype else "x")

        refuse(body)

        assert requests == []


class TestEntityExpansion:
    def test_billion_laughs(self) -> None:
        """The exponential entity bomb is refused without being expanded."""
        levels = ['<!ENTITY lol0 "lol">'] + [
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
        ]
        body = with_doctype(f"<!DOCTYPE lolz [{''.join(levels)}]>", "&lol9;")

        assert_refused_as_entity_attack(refuse(body))

    def test_quadratic_blowup(self) -> None:
        """One large entity referenced many times is refused without being expanded."""
        body = with_doctype(f'<!DOCTYPE q [<!ENTITY a "{"x" * 50_000}">]>', "&a;" * 20_000)

        assert_refused_as_entity_attack(refuse(body))

    def test_internal_dtd_without_entities(self) -> None:
        """Any document type declaration is refused: NFM-P never sends one."""
        refuse(with_doctype("<!DOCTYPE SOAP:Envelope>", "x"), "declares a DTD")

    def test_undeclared_entity(self) -> None:
        """A reference to an entity nobody declared is not well-formed."""
        refuse(with_doctype("", "&undeclared;"), "not well-formed")


class TestDamagedDocuments:
    def test_every_truncation_is_malformed(self) -> None:
        """Every proper prefix of a valid message is refused."""
        for end in range(len(VALID) - 1):
            refuse(VALID[:end])

    def test_trailing_garbage(self) -> None:
        """Content after the document element is refused."""
        refuse(VALID + b"<extra/>", "not well-formed")

    @pytest.mark.parametrize(
        "body",
        [
            soap("<keepAliveEvent/>").replace(
                b"http://schemas.xmlsoap.org/soap/envelope/", b"http://www.w3.org/2003/05/soap-envelope"
            ),
            soap("<keepAliveEvent/>").replace(b'<jms xmlns="xmlapi_1.0">', b'<jms xmlns="xmlapi_2.0">'),
            soap("<keepAliveEvent/>").replace(b'xmlns="xmlapi_1.0"', b""),
            soap('<objectCreationEvent><c xmlns="urn:other"/></objectCreationEvent>'),
        ],
        ids=["soap-1.2", "wrong-api-version", "no-namespace", "foreign-object-element"],
    )
    def test_wrong_namespace(self, body: bytes) -> None:
        """Envelopes, wrappers and events outside the expected namespaces are refused."""
        refuse(body)

    def test_deep_nesting(self) -> None:
        """Nesting deeper than libxml2's limit is refused, long before Python's recursion limit."""
        deep = "<a>" * 5000 + "x" + "</a>" * 5000
        refuse(soap(f"<objectCreationEvent><c>{deep}</c></objectCreationEvent>"))


class TestEncodings:
    def test_latin1_bytes_without_declaration(self) -> None:
        """Bytes that are not UTF-8, in a document that does not declare its encoding, are refused."""
        body = soap("<objectDeletionEvent><objectFullName>Z\xfcrich</objectFullName></objectDeletionEvent>")
        refuse(body.replace("Z\xfcrich".encode(), b"Z\xfcrich"), "not well-formed")

    @pytest.mark.parametrize("junk", [b"\xff\xfe\x00", b"\xc3\x28", b"\xed\xa0\x80", b"\x00"])
    def test_invalid_utf8_sequences(self, junk: bytes) -> None:
        """Invalid UTF-8 inside a text node is refused."""
        refuse(soap("<fileAvailableEvent><fileName>X</fileName></fileAvailableEvent>").replace(b"X", junk))

    @pytest.mark.parametrize(
        ("junk", "half"),
        [
            (b"\xed\xa0\xb4", "U+D834"),  # a high half alone
            (b"\xed\xb4\x9e", "U+DD1E"),  # a low half alone
            (b"\xed\xb4\x9e\xed\xa0\xb4", "U+DD1E"),  # both halves, in the wrong order
            (b"\xed\xa0\xb4\xed\xa0\xb4\xed\xb4\x9e", "U+D834"),  # a high half, then a pair
        ],
        ids=["high", "low", "reversed", "high-then-pair"],
    )
    def test_lone_surrogate_is_malformed(self, junk: bytes, half: str) -> None:
        """A CESU-8 surrogate that pairs with no other is refused, with the half and where it is."""
        body = soap("<fileAvailableEvent><fileName>X</fileName></fileAvailableEvent>").replace(b"X", junk)

        error = refuse(body, f"lone UTF-16 surrogate {half}")

        assert f"at byte {body.index(junk)}" in error.reason
        assert error.payload is body

    def test_cesu8_in_another_declared_encoding_is_not_rewritten(self) -> None:
        """Bytes that look like CESU-8 in a document declared ISO-8859-1 are that encoding's characters."""
        deletion = (
            "<objectDeletionEvent><objectFullName>\xed\xa0\xb4\x01</objectFullName></objectDeletionEvent>"
        )
        body = (
            '<?xml version="1.0" encoding="ISO-8859-1"?>' + ENVELOPE.format(header="", body=deletion)
        ).encode("latin-1")

        error = refuse(body, "not well-formed")  # by the control character U+0001

        assert "surrogate" not in error.reason

    def test_repaired_document_is_still_hardened(self) -> None:
        """A DTD in a CESU-8 document is refused after the repair, and the size limit comes first."""
        doctype = '<!DOCTYPE x [<!ENTITY e "\xed\xa0\xb4\xed\xb4\x9e">]>'.encode("latin-1")
        body = doctype + soap("<fileAvailableEvent><fileName>&e;</fileName></fileAvailableEvent>")

        refuse(body, "declares a DTD")
        with pytest.raises(MalformedMessage, match="exceeds the limit of 100 bytes"):
            EventCodec(max_message_bytes=100).decode({}, body)

    def test_utf16_with_bom_is_valid_xml(self) -> None:
        """A UTF-16 document with a byte-order mark is legitimate XML and decodes."""
        body = ('<?xml version="1.0" encoding="UTF-16"?>' + soap("<keepAliveEvent/>").decode()).encode(
            "utf-16"
        )

        assert isinstance(decode_message({}, body), KeepAliveEvent)


class TestSize:
    def test_fifty_megabytes_refused_unread(self) -> None:
        """A 50 MB body is refused by size before any parsing, and kept on the error."""
        body = b"<" + b"a" * (50 * 1024 * 1024)

        error = refuse(body, "exceeds the limit of 4194304 bytes")

        assert error.payload is body

    @pytest.mark.slow
    def test_huge_text_node_refused_even_with_a_raised_limit(self) -> None:
        """With the size limit lifted, libxml2's own node-size limit still refuses a 50 MB text node."""
        body = soap(
            f"<fileAvailableEvent><fileName>{'a' * (50 * 1024 * 1024)}</fileName></fileAvailableEvent>"
        )

        with pytest.raises(MalformedMessage):
            EventCodec(max_message_bytes=64 * 1024 * 1024).decode({}, body)


class TestNameCaches:
    """The caches of element and frame header names stay bounded whatever names arrive."""

    @staticmethod
    def many_names(first: int, count: int) -> tuple[dict[str, str], bytes]:
        """Frame headers and a creation event, each with *count* distinct names numbered from *first*."""
        headers = {f"ALA_p{n}": str(n) for n in range(first, first + count)}
        headers.update({f"plain-{n}": str(n) for n in range(first, first + count)})
        fields = "".join(f"<f{n}>{n}</f{n}>" for n in range(first, first + count))
        properties = "".join(f"<MTOSI_q{n}>{n}</MTOSI_q{n}>" for n in range(first, first + count))
        return headers, soap(
            f"<objectCreationEvent><c{first}>{fields}</c{first}></objectCreationEvent>", properties
        )

    def test_a_flood_of_distinct_names_is_bounded_and_decoded_right(self) -> None:
        """Three times the caches' bound of distinct names: each event still gets its own names right."""
        bound = _codec._MAX_CACHED_NAMES
        for first in range(0, 3 * bound, 500):
            headers, body = self.many_names(first, 500)
            event = decode_message(headers, body)

            assert isinstance(event, ObjectCreation)
            assert event.object_class == f"c{first}"
            assert event.attributes == {f"f{n}": str(n) for n in range(first, first + 500)}
            numbers = range(first, first + 500)
            assert event.header.extra == {f"ALA_p{n}": str(n) for n in numbers} | {
                f"MTOSI_q{n}": str(n) for n in numbers
            }
            assert len(_codec._LOCAL_NAMES) <= bound
            assert len(_codec._IS_PROPERTY) <= bound

    def test_threads_decode_right_while_the_caches_overflow(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """With a tiny bound, threads that empty the caches under each other still decode every name."""
        monkeypatch.setattr(_codec, "_MAX_CACHED_NAMES", 8)
        messages = [self.many_names(first, 20) for first in range(0, 400, 20)]
        expected = [decode_message(headers, body) for headers, body in messages]
        results: dict[int, bool] = {}

        def work(slot: int) -> None:
            results[slot] = all(
                [decode_message(headers, body) for headers, body in messages] == expected for _ in range(20)
            )

        threads = [threading.Thread(target=work, args=(slot,)) for slot in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert results == {0: True, 1: True, 2: True, 3: True}
        assert len(_codec._LOCAL_NAMES) <= 8 + len(threads)
