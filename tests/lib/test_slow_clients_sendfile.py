"""PacedSocket.sendfile(): a file's bytes through the worker's one shared buffer into sockets whose
buffers fill, so sends come back short or would block and the rest is read from the file again."""

import os
import socket

import gevent
import pytest
from gevent import socket as gsocket

from lib.slow_clients import SEND_BUFFER_BYTES, ClientLimits, PacedSocket, StallCounter

SMALL_BUFFER = 16 * 1024


def paced_pair() -> tuple[PacedSocket, gsocket.socket]:
    server, client = gsocket.socketpair()
    for end, option in ((server, socket.SO_SNDBUF), (client, socket.SO_RCVBUF)):
        end.setsockopt(socket.SOL_SOCKET, option, SMALL_BUFFER)  # full after a few KiB: short sends
    paced = PacedSocket(server, "peer", ClientLimits(), StallCounter(0), lambda reason: None)
    return paced, client


def read_all(client: gsocket.socket, expected: int, *, pause: float) -> bytes:
    received = bytearray()
    while len(received) < expected:
        chunk = client.recv(7000)
        if not chunk:
            break
        received += chunk
        gevent.sleep(pause)  # a slow reader: the sender's socket fills and it waits
    return bytes(received)


@pytest.fixture
def blob_file(tmp_path):
    def make(name: str, size: int):
        path = tmp_path / name
        path.write_bytes(os.urandom(size))
        return path
    return make


def test_a_file_larger_than_the_buffer_arrives_whole_through_a_slow_reader(blob_file):
    path = blob_file("layer", 2 * SEND_BUFFER_BYTES + 12345)
    paced, client = paced_pair()
    with path.open("rb") as handle:
        sender = gevent.spawn(paced.sendfile, handle)
        received = read_all(client, path.stat().st_size, pause=0)
        assert sender.get(timeout=30) == path.stat().st_size
        assert handle.tell() == path.stat().st_size

    assert received == path.read_bytes()


def test_an_offset_and_count_send_just_that_range(blob_file):
    path = blob_file("layer", SEND_BUFFER_BYTES + 5000)
    paced, client = paced_pair()
    with path.open("rb") as handle:
        sender = gevent.spawn(paced.sendfile, handle, 1000, SEND_BUFFER_BYTES)
        received = read_all(client, SEND_BUFFER_BYTES, pause=0)
        assert sender.get(timeout=30) == SEND_BUFFER_BYTES
        assert handle.tell() == 1000 + SEND_BUFFER_BYTES

    assert received == path.read_bytes()[1000:1000 + SEND_BUFFER_BYTES]


def test_connections_sending_at_once_never_get_each_others_bytes(blob_file):
    """The buffer is shared: each waits with none of its bytes left in it, and reads them again."""
    paths = [blob_file(f"layer{n}", SEND_BUFFER_BYTES + 70000 * (n + 1)) for n in range(3)]
    pairs = [paced_pair() for _ in paths]
    handles = [path.open("rb") for path in paths]
    try:
        senders = [gevent.spawn(paced.sendfile, handle) for (paced, _), handle in zip(pairs, handles)]
        readers = [gevent.spawn(read_all, client, path.stat().st_size, pause=0.0005 * (n + 1))
                   for n, ((_, client), path) in enumerate(zip(pairs, paths))]
        gevent.joinall(senders + readers, timeout=60, raise_error=True)
    finally:
        for handle in handles:
            handle.close()

    assert [reader.value for reader in readers] == [path.read_bytes() for path in paths]
    assert [sender.value for sender in senders] == [path.stat().st_size for path in paths]


def test_a_file_that_shrank_sends_what_is_left(blob_file):
    path = blob_file("layer", 300000)
    paced, client = paced_pair()
    with path.open("rb") as handle:
        os.truncate(path, 100000)  # the size was taken before: sendfile's count is longer than the file
        sender = gevent.spawn(paced.sendfile, handle, 0, 300000)
        received = read_all(client, 100000, pause=0)
        assert sender.get(timeout=30) == 100000

    assert len(received) == 100000
