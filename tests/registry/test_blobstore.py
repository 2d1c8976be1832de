"""The blob store contract, run against both stores: the data dir and S3 (moto's server on loopback).

Sizes cross S3's part size (the S3 store here sends 5 MiB parts), so both of its publishing paths,
a single conditional PUT and a multipart upload completed conditionally, go through each test.
"""

from __future__ import annotations

import hashlib
import os
import threading
import tracemalloc
import uuid

import pytest
import requests

from oci.digests import content_path
from registry.blobstore import UploadBusy, UploadGone, store_from_settings
from registry.blobstore.local import LocalBlobStore
from registry.blobstore.s3 import MIN_PART_BYTES, S3BlobStore
from tests.registry.helpers import digest_of, s3_store

MiB = 1024 * 1024
SIZES = {"small": 64 * 1024, "multipart": 2 * MIN_PART_BYTES + 12345}


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalBlobStore(root=tmp_path / "blobs", staging=tmp_path / "uploads")
    return s3_store(request.getfixturevalue("moto_endpoint"), request.getfixturevalue("bucket"), tmp_path / "uploads")


@pytest.fixture(params=sorted(SIZES))
def data(request) -> bytes:
    return os.urandom(SIZES[request.param])


def staged(store, *chunks: bytes) -> uuid.UUID:
    """A new upload holding `chunks`, each appended by a request of its own."""
    upload_id = uuid.uuid4()
    store.start_upload(upload_id)
    offset = 0
    for chunk in chunks:
        with store.open_upload(upload_id) as writer:
            offset += writer.append(offset, [chunk])
    return upload_id


def publish(store, data: bytes, digest: str | None = None) -> bool:
    upload_id = staged(store, data)
    with store.open_upload(upload_id) as writer:
        return writer.complete(digest or digest_of(data))


def read(store, digest: str) -> bytes:
    with store.open(digest) as handle:
        return handle.read()


def leftovers(store) -> list[str]:
    """Uploads the store still holds anything of: staged files, unfinished multipart uploads."""
    left = [path.name for path in store.staging.folder.iterdir()] if store.staging.folder.exists() else []
    if isinstance(store, S3BlobStore):
        left += [u["Key"] for u in store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]
    return left


def test_chunks_appended_in_sequence_then_completed_are_the_blob(store, data):
    chunks = [data[:1], data[1:1000], data[1000:len(data) // 2], data[len(data) // 2:]]
    upload_id = staged(store, *chunks)

    with store.open_upload(upload_id) as writer:
        assert writer.size == len(data)
        assert writer.complete(digest_of(data)) is True

    stored = read(store, digest_of(data))
    assert hashlib.sha256(stored).hexdigest() == digest_of(data).split(":")[1]
    assert stored == data
    assert store.size(digest_of(data)) == len(data)


def test_an_interrupted_append_leaves_the_upload_at_its_offset(store):
    upload_id = staged(store, b"first ")

    def broken():
        yield b"half of a chunk"
        raise ConnectionResetError("client went away")

    with store.open_upload(upload_id) as writer, pytest.raises(ConnectionResetError):
        writer.append(6, broken())
    with store.open_upload(upload_id) as writer:
        assert writer.size == 6
        writer.append(6, [b"second"])
        with writer.reader() as reader:
            assert reader.read() == b"first second"


def test_an_append_at_the_recorded_offset_drops_bytes_written_past_it(store):
    """What a request wrote but the database never recorded (it failed after the write) goes."""
    upload_id = staged(store, b"recorded", b" unrecorded")

    with store.open_upload(upload_id) as writer:
        writer.append(len(b"recorded"), [b" and more"])
        with writer.reader() as reader:
            assert reader.read() == b"recorded and more"


def test_an_upload_held_by_one_request_is_busy_for_another(store):
    upload_id = staged(store, b"bytes")

    with store.open_upload(upload_id), pytest.raises(UploadBusy), store.open_upload(upload_id):
        pass


def test_abort_leaves_nothing(store, data):
    upload_id = staged(store, data)

    with store.open_upload(upload_id) as writer:
        writer.abort()

    with pytest.raises(UploadGone), store.open_upload(upload_id):
        pass
    assert leftovers(store) == []
    assert not store.exists(digest_of(data))


def test_a_discarded_upload_is_gone(store):
    upload_id = staged(store, b"bytes")

    store.discard_upload(upload_id)

    with pytest.raises(UploadGone), store.open_upload(upload_id):
        pass
    assert leftovers(store) == []


def test_a_completed_upload_is_gone(store, data):
    upload_id = staged(store, data)
    with store.open_upload(upload_id) as writer:
        writer.complete(digest_of(data))

    with pytest.raises(UploadGone), store.open_upload(upload_id):
        pass
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

    def complete(upload_id):
        try:
            with store.open_upload(upload_id) as writer:
                ready.wait(10)
                results.append(writer.complete(digest_of(data)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=complete, args=(upload_id,)) for upload_id in uploads]
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


def test_the_s3_store_keeps_blobs_under_the_keys_django_storages_used(moto_endpoint, bucket, tmp_path):
    store = s3_store(moto_endpoint, bucket, tmp_path / "uploads")

    publish(store, b"layer")

    keys = [item["Key"] for item in store.client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == [f"blobs/{content_path(digest_of(b'layer'))}"]


def test_the_s3_store_url_is_a_presigned_get(moto_endpoint, bucket, tmp_path):
    store = s3_store(moto_endpoint, bucket, tmp_path / "uploads")
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


def test_the_s3_storage_alias_gives_the_s3_store(settings, tmp_path):
    settings.STORAGES = {**settings.STORAGES, "blobs": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": "wharf-blobs", "endpoint_url": "http://127.0.0.1:9", "region_name": "eu-west-3",
        "location": "blobs", "querystring_expire": 600}}}

    store = store_from_settings()

    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix, store.url_expires) == ("wharf-blobs", "blobs", 600)
    assert store.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert store.client.meta.region_name == "eu-west-3"
