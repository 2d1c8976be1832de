"""lib/chunked_body.py against gunicorn's own chunked decoder, fed through a real socket."""

import io
import os
import socket
import threading
import types

import pytest
from gunicorn.http.body import Body, ChunkedReader
from gunicorn.http.errors import InvalidChunkSize, NoMoreData
from gunicorn.http.unreader import SocketUnreader

from lib.chunked_body import chunked_pieces

KIB, MIB = 1024, 1024 * 1024


def chunked(data: bytes, piece: int) -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(data[at:at + piece]), data[at:at + piece])
                      for at in range(0, len(data), piece))
    return framed + b"0\r\n"


def gunicorn_body(wire: bytes, *, close: bool = True):
    """gunicorn's wsgi.input for a chunked request whose body bytes are `wire`, and its unreader."""
    ours, theirs = socket.socketpair()

    def send() -> None:
        ours.sendall(wire)
        if close:
            ours.close()

    threading.Thread(target=send, daemon=True).start()
    request = types.SimpleNamespace(limit_request_field_size=8190, max_buffer_headers=8190 * 32, trailers=None,
                                    parse_headers=lambda raw, from_trailer: [("raw", raw, from_trailer)])
    unreader = SocketUnreader(theirs)
    request.unreader = unreader  # as gunicorn's Request holds it
    return Body(ChunkedReader(request, unreader)), unreader, request


def test_the_pieces_are_the_body_in_order_and_about_the_size_asked():
    data = os.urandom(3 * MIB + 12345)
    body, _, _ = gunicorn_body(chunked(data, 32 * KIB) + b"\r\n")

    pieces = list(chunked_pieces(body, MIB))

    assert b"".join(pieces) == data
    assert all(MIB <= len(piece) < 2 * MIB for piece in pieces[:-1])
    assert 0 < len(pieces[-1]) < 2 * MIB


def test_trailers_are_parsed_and_a_pipelined_request_stays_for_the_next_parse():
    next_request = b"GET /v2/ HTTP/1.1\r\nHost: hub\r\n\r\n"
    body, unreader, request = gunicorn_body(chunked(b"layer bytes", 4) + b"Checksum: abc\r\n\r\n" + next_request)

    assert b"".join(chunked_pieces(body, MIB)) == b"layer bytes"
    assert request.trailers == [("raw", b"Checksum: abc", True)]  # handed to gunicorn's header parser
    assert unreader.read() == next_request


def test_a_bad_chunk_size_raises_gunicorns_error_and_the_connection_is_not_reused():
    body, _, _ = gunicorn_body(b"4\r\nlaye\r\nzz\r\nr\r\n0\r\n\r\n")

    with pytest.raises(InvalidChunkSize):
        list(chunked_pieces(body, MIB))
    assert body.failed


def test_a_body_cut_off_mid_chunk_raises_no_more_data_an_os_error():
    body, _, _ = gunicorn_body(b"100\r\n" + b"x" * 100)

    with pytest.raises(NoMoreData) as raised:
        list(chunked_pieces(body, MIB))
    assert isinstance(raised.value, OSError)  # what the upload views catch as a client gone away
    assert body.failed


def test_a_body_already_read_from_continues_through_read():
    data = os.urandom(100 * KIB)
    body, _, _ = gunicorn_body(chunked(data, 10 * KIB) + b"\r\n")
    first = body.read(5)

    assert first + b"".join(chunked_pieces(body, 16 * KIB)) == data


def test_any_other_stream_is_read_with_read():
    data = os.urandom(5 * MIB // 2)

    pieces = list(chunked_pieces(io.BytesIO(data), MIB))

    assert [len(piece) for piece in pieces] == [MIB, MIB, MIB // 2]
    assert b"".join(pieces) == data


class Fragments:
    """A socket whose recv() returns the wire in the given fragments (never more than asked), then EOF."""

    def __init__(self, fragments: list[bytes]) -> None:
        self.fragments, self.reads = list(fragments), 0

    def recv(self, size: int) -> bytes:
        self.reads += 1
        if not self.fragments:
            return b""
        head = self.fragments.pop(0)
        if len(head) > size:
            head, rest = head[:size], head[size:]
            self.fragments.insert(0, rest)
        return head


def rest_of_stream(unreader) -> bytes:
    """What the next request's parse would read: the bytes handed back, then the socket's."""
    rest = b""
    while data := unreader.read():
        rest += data
    return rest


def fragment_body(fragments: list[bytes], *, buffered: bytes = b""):
    """gunicorn's wsgi.input over a socket that delivers `fragments`; `buffered`: body bytes gunicorn read
    with the headers."""
    sock = Fragments(fragments)
    unreader = SocketUnreader(sock)
    unreader.unread(buffered)
    request = types.SimpleNamespace(limit_request_field_size=64, max_buffer_headers=1024, trailers=None,
                                    parse_headers=lambda raw, from_trailer: [("raw", raw, from_trailer)])
    request.unreader = unreader
    return Body(ChunkedReader(request, unreader)), unreader, request, sock


WIRE = b"3\r\nabc\r\n1;name=value\r\nd\r\n0\r\nChecksum: x\r\n\r\nGET /next HTTP/1.1\r\n"


@pytest.mark.parametrize("split", range(1, len(WIRE)))
def test_a_read_may_end_anywhere_in_the_framing(split):
    """Size lines, CRLFs and trailers cut between two reads (or between the headers' read and the first
    recv()) decode the same."""
    for body, unreader, request, _ in (fragment_body([WIRE[:split], WIRE[split:]]),
                                       fragment_body([WIRE[split:]], buffered=WIRE[:split])):
        assert b"".join(chunked_pieces(body, 2)) == b"abcd"
        assert request.trailers == [("raw", b"Checksum: x", True)]
        assert rest_of_stream(unreader) == b"GET /next HTTP/1.1\r\n"


def test_one_byte_reads_decode_the_same():
    body, unreader, _, _ = fragment_body([bytes([byte]) for byte in WIRE])

    assert b"".join(chunked_pieces(body, MIB)) == b"abcd"
    assert rest_of_stream(unreader) == b"GET /next HTTP/1.1\r\n"


def test_reads_cross_chunk_boundaries():
    """skopeo's 32 KiB chunks, delivered 1 MiB at a time: one recv() per MiB, not two per chunk."""
    data = os.urandom(4 * MIB)
    wire = chunked(data, 32 * KIB) + b"\r\n"
    body, _, _, sock = fragment_body([wire[at:at + MIB] for at in range(0, len(wire), MIB)])

    assert b"".join(chunked_pieces(body, MIB)) == data
    assert sock.reads <= 6


@pytest.mark.parametrize(("wire", "error"), [
    (b"3\r\nabcX\r\n0\r\n\r\n", "ChunkMissingTerminator"),  # the data runs past its size
    (b"3\r\nab", "NoMoreData"),  # cut off inside a chunk
    (b"3\r\nabc", "NoMoreData"),  # cut off before the data's CRLF
    (b"3;bad ext\r\nabc\r\n0\r\n\r\n", "InvalidChunkExtension"),
    (b"-3\r\nabc\r\n0\r\n\r\n", "InvalidChunkSize"),
    (b" 0\r\n\r\n", "InvalidChunkSize"),
    (b"0 \r\n\r\n", "InvalidChunkSize"),
    (b"1" * 80, "InvalidChunkSize"),  # a size line past the header field limit (64 here), no CRLF
    (b"3\r\nabc\r\n0\r\nChecksum: x\r\n", "ChunkMissingTerminator"),  # trailers never end
])
def test_malformed_framing_is_refused_and_fails_the_connection(wire, error):
    body, _, _, _ = fragment_body([wire])

    with pytest.raises(Exception) as raised:
        list(chunked_pieces(body, MIB))
    assert type(raised.value).__name__ == error
    assert body.failed


def test_tiny_chunks_do_not_pile_up_one_object_per_chunk():
    """A client may send one byte per chunk: the memory held for a 1 MiB piece stays near 1 MiB, not a
    Python object (~200 bytes) per byte."""
    import tracemalloc

    wire = b"1\r\nx\r\n" * 50_000 + b"0\r\n\r\n"
    body, _, _, _ = fragment_body([wire[at:at + 64 * KIB] for at in range(0, len(wire), 64 * KIB)])
    tracemalloc.start()
    try:
        decoded = b"".join(chunked_pieces(body, MIB))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert decoded == b"x" * 50_000
    assert peak < 2 * MIB, f"{peak / MIB:.1f} MiB held for 50 KB of body"
