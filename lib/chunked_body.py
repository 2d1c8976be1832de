"""A `Transfer-Encoding: chunked` request body in pieces of about a given size.

podman, buildah and skopeo send layers chunked, skopeo in 32 KiB chunks. Read through gunicorn's
`wsgi.input` (`Body.read`), every byte was copied four times in Python, through the reader's and the
body's BytesIO buffers, and gunicorn's decoder makes two recv() calls per chunk: it never reads past
the end of a chunk (8 KiB for the size line and the chunk's start, then the rest). Here the socket is
read up to 1 MiB at a time, across chunk boundaries, and each chunk's data is taken from that read as
a memoryview and joined once into the caller's piece (#18).

The framing is still gunicorn's: every chunk-size line goes through `ChunkedReader.parse_chunk_size`
(hex digits, extensions, the line's length limit), and the last chunk is handed back to it with the
bytes after it, so it parses the trailers and leaves a pipelined request's bytes for the next parse.
A chunk's data must end with CRLF. Any error marks the body failed (as `Body.read` does), so the
connection is not reused. Anything else (another server, Django's test client, a body already read
from) is read with `read()`.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

from gunicorn.http.body import Body, ChunkedReader
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, NoMoreData
from gunicorn.http.unreader import SocketUnreader

READ_BYTES = 1 << 20  # one recv(): up to this much, whatever the chunks' size
MAX_PIECES = 1024  # memoryviews held before they are joined, however small the chunks


class _RestOfRead:
    """What parse_chunk_size reads after a size line: the rest of the current read (sliced only then: a
    line that is not the last chunk's is complete and never reads), then the socket's unreader, where
    whatever the trailers leave is handed back."""

    def __init__(self, block: bytes, start: int, unreader: SocketUnreader) -> None:
        self.block, self.start, self.unreader = block, start, unreader

    def _take(self) -> bytes:
        rest, self.block = self.block[self.start:], b""
        return rest

    def read(self, *args, **kwargs) -> bytes:
        return self._take() or self.unreader.read(*args, **kwargs)

    def unread(self, data: bytes) -> None:
        self.unreader.unread(data + self._take())  # pushed back in front of what was never read


def _fast_path(stream: Any) -> tuple[ChunkedReader, SocketUnreader] | None:
    """gunicorn's chunk reader and socket unreader behind `stream`, when nothing has been decoded yet."""
    if not isinstance(stream, Body) or not isinstance(stream.reader, ChunkedReader):
        return None
    reader = stream.reader
    unreader = getattr(reader.req, "unreader", None)
    if (reader.parser is None or inspect.getgeneratorstate(reader.parser) != inspect.GEN_CREATED
            or stream.buf.tell() or reader.buf.tell() or not isinstance(unreader, SocketUnreader)):
        return None
    return reader, unreader


def chunked_pieces(stream: Any, size: int) -> Iterator[bytes]:
    """The decoded body in pieces of `size` bytes or a little more (the last one shorter)."""
    found = _fast_path(stream)
    if found is None:
        while chunk := stream.read(size):
            yield chunk
        return
    try:
        yield from _decoded(*found, size)
    except Exception:
        stream.failed = True  # as Body.read marks it: where the next request begins is unknown
        raise


def _decoded(reader: ChunkedReader, unreader: SocketUnreader, size: int) -> Iterator[bytes]:
    sock, limit = unreader.sock, reader.limit_chunk_size_line

    def more(carry: bytes = b"") -> bytes:
        data = sock.recv(READ_BYTES)
        if not data:
            raise NoMoreData(carry)
        return carry + data if carry else data

    block, at = unreader.take_buffered() or more(), 0
    pieces: list[memoryview] = []
    held = left = 0  # bytes waiting to be yielded; bytes of the current chunk still to come
    while True:
        if at == len(block):
            block, at = more(), 0
        if left:  # inside a chunk's data
            take = min(left, len(block) - at)
            pieces.append(memoryview(block)[at:at + take])
            at, held, left = at + take, held + take, left - take
            if held >= size:
                yield b"".join(pieces)
                pieces, held = [], 0
            elif len(pieces) >= MAX_PIECES:  # tiny chunks: one object each would add up to far more than `size`
                pieces = [memoryview(b"".join(pieces))]
            if left:
                continue
            while len(block) - at < 2:  # the CRLF after the data
                block, at = more(block[at:]), 0
            if block[at:at + 2] != b"\r\n":
                raise ChunkMissingTerminator(block[at:at + 2])
            at += 2
            continue
        end = block.find(b"\r\n", at, at + limit + 2)  # a chunk-size line
        if end < 0:
            if len(block) - at > limit:
                raise InvalidChunkSize(b"line over %d bytes with no terminator" % limit)
            block, at = more(block[at:]), 0
            continue
        # gunicorn checks the line; on the last chunk it also parses the trailers and leaves what follows
        # them (a pipelined request) in the unreader for the next parse
        left, _ = reader.parse_chunk_size(_RestOfRead(block, end + 2, unreader), data=block[at:end + 2])
        if not left:
            reader.parser = None
            if pieces:
                yield b"".join(pieces)
            return
        at = end + 2
