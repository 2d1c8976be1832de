"""The blob store contract, run against both stores: the data dir and S3 (moto's server on loopback).

The tests play the database's part: they keep each upload's offset and the store's state between
requests, as registry/services/uploads.py does. Sizes cross S3's part size (the S3 store here
writes 5 MiB parts), so an S3 upload of several parts, one smaller last part and the assembly by
part copies go through the tests.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import tracemalloc
import uuid
from dataclasses import dataclass, field

import pytest
import requests

from oci.digests import content_path
from registry.blobstore import UploadBusy, UploadGone, store_from_settings
from registry.blobstore.local import LocalBlobStore
from registry.blobstore.s3 import MIN_PART_BYTES, S3BlobStore
from tests.registry.helpers import digest_of, s3_store

MiB = 1024 * 1024
SIZES = {"small": 64 * 1024, "parts": 2 * MIN_PART_BYTES + 12345}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(root=tmp_path / "blobs", staging=tmp_path / "uploads")
    return s3_store(request.getfixturevalue("moto_endpoint"), request.getfixturevalue("bucket"))


@pytest.fixture(params=sorted(SIZES))
def data(request) -> bytes:
    return os.urandom(SIZES[request.param])


@dataclass
class Upload:
    """What the database keeps of an upload: its id, offset and the store's state."""

    id: uuid.UUID = field(default_factory=uuid.uuid4)
    size: int = 0
    state: dict = field(default_factory=dict)


@contextlib.contextmanager
def held(store, upload: Upload):
    """One request's hold on the upload, resumed from what the "database" recorded."""
    with store.open_upload(upload.id) as writer:
        writer.resume(upload.state)
        yield writer


def append(store, upload: Upload, chunk: bytes) -> None:
    """One request appending `chunk`, recorded as the service records it."""
    with held(store, upload) as writer:
        upload.size += writer.append(upload.size, [chunk])
        upload.state = writer.state


def staged(store, *chunks: bytes) -> Upload:
    """A new upload holding `chunks`, each appended by a request of its own."""
    upload = Upload()
    upload.state = store.start_upload(upload.id)
    for chunk in chunks:
        append(store, upload, chunk)
    return upload


def publish(store, data: bytes, digest: str | None = None) -> bool:
    upload = staged(store, data)
    with held(store, upload) as writer:
        return writer.complete(digest or digest_of(data))


def read(store, digest: str) -> bytes:
    with store.open(digest) as handle:
        return handle.read()


def upload_bytes(store, upload: Upload) -> bytes:
    with held(store, upload) as writer, writer.reader() as reader:
        return reader.read()


def leftovers(store) -> list[str]:
    """What the store still holds of uploads: staged files; upload objects, unfinished multipart uploads."""
    if isinstance(store, LocalBlobStore):
        return [path.name for path in store.staging.folder.iterdir()] if store.staging.folder.exists() else []
    objects = store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.prefix}/_uploads/")
    multipart = store.client.list_multipart_uploads(Bucket=store.bucket)
    return [o["Key"] for o in objects.get("Contents", [])] + [u["Key"] for u in multipart.get("Uploads", [])]


def test_chunks_appended_in_sequence_then_completed_are_the_blob(store, data):
    chunks = [data[:1], data[1:1000], data[1000:len(data) // 2], data[len(data) // 2:]]
    upload = staged(store, *chunks)

    with held(store, upload) as writer:
        assert writer.size == len(data)
        assert writer.complete(digest_of(data)) is True

    stored = read(store, digest_of(data))
    assert hashlib.sha256(stored).hexdigest() == digest_of(data).split(":")[1]
    assert stored == data
    assert store.size(digest_of(data)) == len(data)


def test_the_reader_gives_the_bytes_appended_so_far(store, data):
    upload = staged(store, data[:100], data[100:])

    assert upload_bytes(store, upload) == data


def test_an_interrupted_append_leaves_the_upload_at_its_offset(store):
    upload = staged(store, b"first ")

    def broken():
        yield b"half of a chunk"
        raise ConnectionResetError("client went away")

    with held(store, upload) as writer, pytest.raises(ConnectionResetError):
        writer.append(6, broken())
    append(store, upload, b"second")

    assert upload_bytes(store, upload) == b"first second"


def test_an_append_the_database_did_not_record_does_not_count(store):
    """A request wrote its bytes but the offset update failed (another request's came first, or the
    upload was cancelled): the next request appends after the recorded bytes only."""
    upload = staged(store, b"recorded")
    with held(store, upload) as writer:
        writer.append(upload.size, [b" unrecorded"])  # and upload.size, upload.state are not updated

    append(store, upload, b" and more")

    assert upload_bytes(store, upload) == b"recorded and more"


def test_an_append_undone_with_truncate_does_not_count(store):
    upload = staged(store, b"recorded")
    with held(store, upload) as writer:
        writer.append(upload.size, [b" refused"])
        writer.truncate(upload.size)
        assert writer.size == upload.size

    append(store, upload, b" and more")

    assert upload_bytes(store, upload) == b"recorded and more"


def test_small_appends_are_gathered_into_parts(store):
    """Chunks of any size (clients and the conformance suite send tiny ones) end up as the blob."""
    chunks = [os.urandom(size) for size in (1, 700_000, 3, MIN_PART_BYTES, 2 * MIN_PART_BYTES - 1, 10)]
    upload = staged(store, *chunks)

    with held(store, upload) as writer:
        writer.complete(digest_of(b"".join(chunks)))

    assert read(store, digest_of(b"".join(chunks))) == b"".join(chunks)


def test_abort_leaves_nothing(store, data):
    upload = staged(store, data)

    with held(store, upload) as writer:
        writer.abort()

    assert leftovers(store) == []
    assert not store.exists(digest_of(data))


def test_a_discarded_upload_leaves_nothing(store):
    upload = staged(store, b"bytes")

    store.discard_upload(upload.id)

    assert leftovers(store) == []


def test_a_completed_upload_leaves_nothing(store, data):
    upload = staged(store, data)
    with held(store, upload) as writer:
        writer.complete(digest_of(data))

    assert leftovers(store) == []


def test_publishing_an_existing_digest_again_keeps_the_stored_bytes_and_says_so(store, data):
    """Write-once: whatever the second upload holds, the first blob's bytes stay."""
    assert publish(store, data) is True

    assert publish(store, os.urandom(len(data)), digest=digest_of(data)) is False

    assert read(store, digest_of(data)) == data
    assert leftovers(store) == []


def test_concurrent_publishers_of_one_digest_leave_one_intact_blob(store, data):
    uploads = [staged(store, data) for _ in range(2)]
    ready, results, errors = threading.Barrier(2), [], []

    def complete(upload):
        try:
            with held(store, upload) as writer:
                ready.wait(10)
                results.append(writer.complete(digest_of(data)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=complete, args=(upload,)) for upload in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    assert len(results) == 2 and True in results
    assert read(store, digest_of(data)) == data
    assert leftovers(store) == []


def test_open_streams_the_blob_without_holding_it_in_memory(store):
    data = os.urandom(3 * MIN_PART_BYTES)
    publish(store, data)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        hasher = hashlib.sha256()
        with store.open(digest_of(data)) as handle:
            while chunk := handle.read(MiB):
                hasher.update(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"sha256:{hasher.hexdigest()}" == digest_of(data)
    assert peak < len(data) // 3, f"reading a {len(data)}-byte blob took {peak} bytes of memory"


def test_open_reads_from_where_it_seeks(store):
    data = os.urandom(300_000)
    publish(store, data)

    with store.open(digest_of(data)) as handle:
        handle.seek(123_456)
        assert handle.read(1000) == data[123_456:124_456]
        handle.seek(0)
        assert handle.read(10) == data[:10]


def test_a_missing_blob_does_not_exist_has_no_size_and_cannot_be_opened(store):
    digest = digest_of(b"never stored")

    assert store.exists(digest) is False
    assert store.size(digest) is None
    with pytest.raises(FileNotFoundError):
        store.open(digest)


def test_delete_removes_the_blob(store):
    publish(store, b"doomed bytes")

    store.delete(digest_of(b"doomed bytes"))

    assert not store.exists(digest_of(b"doomed bytes"))


def test_deleting_a_missing_blob_is_quiet(store):
    store.delete(digest_of(b"never stored"))

    assert not store.exists(digest_of(b"never stored"))


def test_a_blob_set_aside_is_out_of_the_way(store):
    publish(store, b"the wrong bytes", digest=digest_of(b"the right bytes"))

    store.set_aside(digest_of(b"the right bytes"))

    assert not store.exists(digest_of(b"the right bytes"))
    assert publish(store, b"the right bytes") is True


def test_read_small_refuses_a_blob_over_the_limit(store):
    publish(store, b"x" * 101)

    assert store.read_small(digest_of(b"x" * 101), 101) == b"x" * 101
    assert store.read_small(digest_of(b"x" * 101), 100) is None


# --- Each store's own ------------------------------------------------------------------------


def test_a_local_upload_held_by_one_request_is_busy_for_another(tmp_path):
    store = LocalBlobStore(root=tmp_path / "blobs", staging=tmp_path / "uploads")
    upload = staged(store, b"bytes")

    with store.open_upload(upload.id), pytest.raises(UploadBusy), store.open_upload(upload.id):
        pass


def test_a_local_upload_completed_is_gone_for_a_later_request(tmp_path):
    store = LocalBlobStore(root=tmp_path / "blobs", staging=tmp_path / "uploads")
    upload = staged(store, b"bytes")
    with held(store, upload) as writer:
        writer.complete(digest_of(b"bytes"))

    with pytest.raises(UploadGone), store.open_upload(upload.id):
        pass


def test_a_local_blob_is_on_disk_before_it_is_published(tmp_path, monkeypatch):
    """Its bytes are synced before the link that publishes it, and its folder after it: the blob's row is
    recorded next, and after a power loss must not name an empty or partial file. (Syncs are recorded
    here: a power loss cannot be had in a test.)"""
    from registry.blobstore import local

    events, real_fsync, real_link = [], os.fsync, os.link

    def fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def link(source, destination) -> None:
        events.append(("link", str(destination)))
        real_link(source, destination)

    monkeypatch.setattr(local.os, "fsync", fsync)
    monkeypatch.setattr(local.os, "link", link)
    store = LocalBlobStore(root=tmp_path / "blobs", staging=tmp_path / "uploads")
    upload = staged(store, b"bytes")
    with held(store, upload) as writer:
        assert writer.complete(digest_of(b"bytes"))
    blob = store.path(digest_of(b"bytes"))
    assert events == [("fsync", str(tmp_path / "uploads" / str(upload.id))), ("link", str(blob)),
                      ("fsync", str(blob.parent))]


def test_s3_uploads_are_objects_in_the_bucket_not_files_of_the_node(moto_endpoint, bucket):
    """Any node can take an upload's next request: its bytes are in the bucket, under the upload's id."""
    store = s3_store(moto_endpoint, bucket)
    upload = staged(store, b"first")
    other_node = s3_store(moto_endpoint, bucket)

    append(other_node, upload, b" second")

    keys = [item["Key"] for item in store.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys and all(key.startswith(f"blobs/_uploads/{upload.id}/") for key in keys)
    assert upload_bytes(store, upload) == b"first second"


def test_the_local_store_keeps_blobs_where_the_data_dir_always_had_them(tmp_path):
    store = LocalBlobStore(root=tmp_path / "blobs", staging=tmp_path / "uploads")

    publish(store, b"layer")

    assert (tmp_path / "blobs" / content_path(digest_of(b"layer"))).read_bytes() == b"layer"


def test_the_local_store_serves_blobs_itself_from_a_plain_file(tmp_path):
    """No URL to redirect to, and a real file: gunicorn's sendfile path."""
    store = LocalBlobStore(root=tmp_path / "blobs", staging=tmp_path / "uploads")
    publish(store, b"layer")

    assert store.url(digest_of(b"layer")) is None
    with store.open(digest_of(b"layer")) as handle:
        assert os.fstat(handle.fileno()).st_size == len(b"layer")


def test_the_s3_store_keeps_blobs_under_the_keys_django_storages_used(moto_endpoint, bucket):
    store = s3_store(moto_endpoint, bucket)

    publish(store, b"layer")

    keys = [item["Key"] for item in store.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"blobs/{content_path(digest_of(b'layer'))}"]


def test_the_s3_store_url_is_a_presigned_get(moto_endpoint, bucket):
    store = s3_store(moto_endpoint, bucket)
    publish(store, b"presigned layer")

    url = store.url(digest_of(b"presigned layer"))

    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in url and "X-Amz-Expires=600" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"presigned layer"


# --- Which store the settings give -----------------------------------------------------------


def test_the_filesystem_storage_alias_gives_the_local_store(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "blobs": {
        "BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(tmp_path / "b")}}}
    settings.UPLOAD_STAGING_DIR = tmp_path / "u"

    store = store_from_settings()

    assert isinstance(store, LocalBlobStore)
    assert (store.root, store.staging.folder) == (tmp_path / "b", tmp_path / "u")


def test_the_s3_storage_alias_gives_the_s3_store(settings):
    settings.STORAGES = {**settings.STORAGES, "blobs": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": "wharf-blobs", "endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-3",
        "location": "blobs", "querystring_expire": 600}}}

    store = store_from_settings()

    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.url_expires) == ("wharf-blobs", "blobs", 600)
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert store.client.meta.region_name == "eu-west-3"
