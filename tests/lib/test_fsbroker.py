"""The embedded broker (lib/fsbroker.py) through kombu's own API, on folders of the test's own: a
message is whole or absent, a malformed one is set aside without an error, every message goes to
exactly one reader, and a claim is kept until the ack."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from kombu import Connection

from lib import fsbroker

QUEUE = "jobs"


def options(root: Path) -> dict:
    return {"data_folder_in": str(root / "queue"), "data_folder_out": str(root / "queue"),
            "processing_folder": str(root / "processing"), "malformed_folder": str(root / "malformed"),
            "control_folder": str(root / "control"), "processed_folder": str(root / "processed")}


@pytest.fixture
def root(tmp_path) -> Path:
    (tmp_path / "queue").mkdir()
    return tmp_path


@pytest.fixture
def connection(root):
    with Connection(fsbroker.URL, transport_options=options(root)) as conn:
        yield conn


def publish(conn: Connection, body, queue: str = QUEUE) -> None:
    conn.Producer().publish(body, exchange="", routing_key=queue, serializer="json")


def get(conn: Connection, queue: str = QUEUE):
    return conn.default_channel.basic_get(queue)


def inject(root: Path, content: bytes, queue: str = QUEUE, prefix: str = "00000000000000000") -> Path:
    """A message file as a foreign or torn writer leaves it, sorted before every published message."""
    path = root / "queue" / f"{prefix}_injected.{queue}.msg"
    path.write_bytes(content)
    return path


def test_the_transport_is_registered_under_its_scheme(connection):
    assert isinstance(connection.transport, fsbroker.Transport)


def test_a_message_goes_through_and_leaves_no_file_once_acked(connection, root):
    publish(connection, {"n": 1})
    message = get(connection)
    assert message.payload == {"n": 1}
    assert [path.name for path in (root / "processing").rglob("*.msg")], "the claim is kept until the ack"
    message.ack()
    assert list((root / "processing").rglob("*.msg")) == []
    assert list((root / "queue").iterdir()) == []


def test_an_empty_message_is_moved_aside_and_the_next_one_delivered(connection, root):
    injected = inject(root, b"")
    publish(connection, {"n": 2})
    assert get(connection).payload == {"n": 2}
    assert (root / "malformed" / injected.name).read_bytes() == b""


@pytest.mark.parametrize("content", [
    b'{"body": "eyJhIjog',  # torn in the middle
    b"\xff\xfe garbage \x00",  # not even text
    b'["a", "list"]',  # JSON, not a message
    b'{"body": "e30=", "properties": {}}',  # a message without a delivery tag
    b'{"body": "!!not base64!!", "properties": {"delivery_tag": "x", "body_encoding": "base64"}}',
])
def test_a_torn_or_foreign_message_is_moved_aside_and_the_next_one_delivered(connection, root, content):
    injected = inject(root, content)
    publish(connection, {"n": 3})
    assert get(connection).payload == {"n": 3}
    assert (root / "malformed" / injected.name).read_bytes() == content
    assert get(connection) is None


def test_a_message_still_being_written_is_never_read(connection, root):
    being_written = root / "queue" / f"{fsbroker.TEMP_PREFIX}00000000000000000_partial.{QUEUE}.msg.1234.tmp"
    being_written.write_bytes(b'{"body": "eyJh')
    assert get(connection) is None
    assert being_written.exists()
    assert not (root / "malformed").exists() or list((root / "malformed").iterdir()) == []


def test_publishing_leaves_no_file_being_written(connection, root):
    for number in range(20):
        publish(connection, {"n": number})
    names = [path.name for path in (root / "queue").iterdir()]
    assert len(names) == 20 and all(name.endswith(f".{QUEUE}.msg") and not name.startswith(".") for name in names)


def test_an_unacked_message_goes_back_to_the_queue_when_the_channel_closes(root):
    with Connection(fsbroker.URL, transport_options=options(root)) as conn:
        publish(conn, {"n": 4})
        assert get(conn).payload == {"n": 4}  # never acked
    assert list((root / "processing").rglob("*.msg")) == []
    with Connection(fsbroker.URL, transport_options=options(root)) as conn:
        again = get(conn)
        assert again.payload == {"n": 4}
        again.ack()


def _claim_and_die(folder: str) -> None:
    with Connection(fsbroker.URL, transport_options=options(Path(folder))) as conn:
        assert get(conn) is not None
        os._exit(0)  # as a worker killed with SIGKILL: no ack, no restore


def test_the_claim_of_a_process_that_died_goes_back_to_the_queue(connection, root):
    publish(connection, {"n": 5})
    child = multiprocessing.get_context("fork").Process(target=_claim_and_die, args=(str(root),))
    child.start()
    child.join(10)
    assert get(connection) is None, "the dead process's message is not handed out twice meanwhile"
    assert fsbroker.requeue_orphans(root / "processing", root / "queue") == 1
    assert get(connection).payload == {"n": 5}


def test_the_claims_of_a_living_process_stay_where_they_are(connection, root):
    publish(connection, {"n": 6})
    message = get(connection)
    assert fsbroker.requeue_orphans(root / "processing", root / "queue") == 0
    assert get(connection) is None
    message.ack()


def test_a_message_whose_writer_died_mid_write_is_deleted_after_an_hour(connection, root):
    stale = root / "queue" / f"{fsbroker.TEMP_PREFIX}00000000000000000_dead.{QUEUE}.msg.1.tmp"
    fresh = root / "queue" / f"{fsbroker.TEMP_PREFIX}00000000000000000_alive.{QUEUE}.msg.2.tmp"
    for path in (stale, fresh):
        path.write_bytes(b'{"bo')
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    fsbroker.requeue_orphans(root / "processing", root / "queue")
    assert not stale.exists() and fresh.exists()


def test_exchange_tables_are_written_whole(connection, root):
    channel = connection.default_channel
    for number in range(30):
        channel._queue_bind("fanned", f"key{number}", "", f"queue{number}")
    table = json.loads((root / "control" / "fanned.exchange").read_bytes())
    assert len(table) == 30
    assert [path.name for path in (root / "control").iterdir() if path.name.endswith(".tmp")] == []


# --- many writers and readers at once ---------------------------------------------------------
WRITERS, PER_WRITER, READERS = 3, 800, 3


def _write_many(folder: str, writer: int) -> None:
    with Connection(fsbroker.URL, transport_options=options(Path(folder))) as conn:
        producer = conn.Producer()
        for number in range(PER_WRITER):
            producer.publish({"id": f"{writer}-{number}"}, exchange="", routing_key=QUEUE, serializer="json")


def _read_until_told(folder: str, results, stop) -> None:
    got = []
    with Connection(fsbroker.URL, transport_options=options(Path(folder))) as conn:
        channel = conn.default_channel
        while True:
            message = channel.basic_get(QUEUE)
            if message is None:
                if stop.is_set():
                    break
                time.sleep(0.002)
                continue
            got.append(message.payload["id"])
            message.ack()
    results.put(got)


def test_every_message_reaches_exactly_one_reader_under_concurrency(root):
    context = multiprocessing.get_context("fork")
    results, stop = context.Queue(), context.Event()
    readers = [context.Process(target=_read_until_told, args=(str(root), results, stop)) for _ in range(READERS)]
    writers = [context.Process(target=_write_many, args=(str(root), number)) for number in range(WRITERS)]
    started = time.monotonic()
    for process in readers + writers:
        process.start()
    for process in writers:
        process.join(60)
    deadline = time.monotonic() + 30
    while any((root / "queue").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    received = [item for _ in readers for item in results.get(timeout=30)]
    for process in readers:
        process.join(10)
    assert len(received) == len(set(received)), "a message was delivered twice"
    assert sorted(received) == sorted(f"{w}-{n}" for w in range(WRITERS) for n in range(PER_WRITER))
    assert not (root / "malformed").exists() or list((root / "malformed").iterdir()) == []
    assert time.monotonic() - started < 60
