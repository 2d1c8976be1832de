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
