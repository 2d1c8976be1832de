"""Blobs are write-once: a published blob's bytes are never replaced, and an upload's bytes and its
recorded state change only under the upload's lock."""

import hashlib
import os
import stat
import threading

import pytest
from django.db import connection

from registry.blobstore import blob_store
from registry.blobstore import local as local_store
from registry.errors import BlobUploadInvalid, BlobUploadUnknown
from registry.models import Blob, BlobUpload
from registry.services import uploads
from repositories.models import Repository
from tests.registry.helpers import digest_of

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.sqlite, pytest.mark.usefixtures("private_staging")]


@pytest.fixture
def data():
    """Bytes no other test stored (blobs live in the test run's one blob storage)."""
    return os.urandom(64 * 1024)


@pytest.fixture
def repository(alice_namespace):
    return Repository.objects.create(namespace=alice_namespace, name="app")


def body(data: bytes) -> uploads.Body:
    return uploads.Body(len(data), iter([data]))


def push(repository, data: bytes) -> Blob:
    upload = uploads.upload_start(repository=repository, user=None)
    uploads.upload_append(upload=upload, body=body(data))
    return uploads.upload_finish(upload=upload, digest=digest_of(data), body=uploads.Body(0, iter(())))


def file_identity(digest: str) -> tuple[int, int, bytes]:
    path = blob_store.path(digest)
    info = path.stat()
    return info.st_ino, info.st_mtime_ns, path.read_bytes()


def test_pushing_an_existing_blob_again_leaves_its_stored_bytes_untouched(data, repository):
    push(repository, data)
    before = file_identity(digest_of(data))

    push(repository, data)

    assert file_identity(digest_of(data)) == before
    assert not any(blob_store.staging.folder.iterdir()), "the second copy is discarded"


def test_a_published_blob_file_is_read_only(data, repository):
    push(repository, data)

    mode = blob_store.path(digest_of(data)).stat().st_mode
    assert not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def test_a_patch_cannot_start_while_another_holds_the_upload(data, repository):
    upload = uploads.upload_start(repository=repository, user=None)
    writing, release = threading.Event(), threading.Event()

    def slow_chunks():
        yield data[:1024]
        writing.set()
        release.wait(10)
        yield data[1024:]

    first = threading.Thread(target=uploads.upload_append,
                             kwargs={"upload": BlobUpload.objects.get(pk=upload.pk),
                                     "body": uploads.Body(len(data), slow_chunks())})
    first.start()
    try:
        assert writing.wait(10)
        with pytest.raises(BlobUploadInvalid):
            uploads.upload_append(upload=BlobUpload.objects.get(pk=upload.pk), body=body(b"x" * len(data)))
        with pytest.raises(BlobUploadInvalid):
            uploads.upload_finish(upload=BlobUpload.objects.get(pk=upload.pk), digest=digest_of(data),
                                  body=uploads.Body(0, iter(())))
    finally:
        release.set()
        first.join(10)
    upload.refresh_from_db()
    assert (upload.size, upload.single_pass_digest) == (len(data), digest_of(data))
    assert blob_store.staging.path(upload.id).read_bytes() == data


def test_a_writer_that_opened_the_upload_before_it_was_published_cannot_write_to_the_blob(
    data, repository, monkeypatch
):
    """The writer opens the staged file, the upload is published before it gets the lock: the file
    it holds is now the blob itself, and it must notice and write nothing."""
    upload = uploads.upload_start(repository=repository, user=None)
    uploads.upload_append(upload=upload, body=body(data))
    real_flock, finished = local_store.fcntl.flock, []

    def flock_after_publish(handle, operation):
        if not finished:
            finished.append(True)
            thread = threading.Thread(target=uploads.upload_finish, kwargs={
                "upload": BlobUpload.objects.get(pk=upload.pk), "digest": digest_of(data),
                "body": uploads.Body(0, iter(()))})
            thread.start()
            thread.join(10)
        return real_flock(handle, operation)

    monkeypatch.setattr(local_store.fcntl, "flock", flock_after_publish)
    with pytest.raises(BlobUploadUnknown):
        uploads.upload_append(upload=upload, body=body(b"evil" * 1000))

    assert Blob.objects.filter(digest=digest_of(data)).exists()
    assert blob_store.path(digest_of(data)).read_bytes() == data


def test_a_stray_blob_file_with_the_right_bytes_is_kept(data, repository):
    """A file with no row (a publish whose transaction failed) that verifies stays as it is."""
    path = blob_store.path(digest_of(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    before = file_identity(digest_of(data))

    push(repository, data)

    assert file_identity(digest_of(data)) == before


def test_a_stray_blob_file_with_wrong_bytes_is_set_aside_for_the_verified_upload(data, repository):
    path = blob_store.path(digest_of(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not the blob" * 100)

    push(repository, data)

    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest_of(data).split(":")[1]
    set_aside = [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}.corrupt-")]
    assert [p.read_bytes() for p in set_aside] == [b"not the blob" * 100]


def test_a_cancelled_upload_cannot_be_finished_by_a_request_that_raced_it(data, repository):
    upload = uploads.upload_start(repository=repository, user=None)
    uploads.upload_append(upload=upload, body=body(data))
    stale = BlobUpload.objects.get(pk=upload.pk)
    uploads.upload_cancel(upload=upload)

    with pytest.raises(BlobUploadUnknown):
        uploads.upload_finish(upload=stale, digest=digest_of(data), body=uploads.Body(0, iter(())))
    assert not Blob.objects.exists()
    assert not blob_store.path(digest_of(data)).exists()


def test_bytes_are_published_outside_any_database_transaction(data, repository, monkeypatch):
    """A publish may take long (a copy, an S3 upload): it holds no transaction, hence no row lock or
    SQLite write lock, meanwhile."""
    original, during = local_store.LocalBlobStore._publish, []

    def publish(self, upload, digest):
        during.append(connection.in_atomic_block)
        return original(self, upload, digest)

    monkeypatch.setattr(local_store.LocalBlobStore, "_publish", publish)
    push(repository, data)

    assert during == [False]
    assert blob_store.path(digest_of(data)).read_bytes() == data


def test_a_blob_swept_while_it_was_being_published_is_not_recorded_without_its_bytes(data, repository, monkeypatch):
    """A repository's deletion sweeps its blobs with no grace period: one doing so between the bytes
    landing and the row being written leaves no row naming missing bytes; the client pushes again."""
    original = local_store.LocalBlobStore._publish

    def publish_then_swept(self, upload, digest):
        created = original(self, upload, digest)
        self.delete(digest)
        return created

    monkeypatch.setattr(local_store.LocalBlobStore, "_publish", publish_then_swept)
    with pytest.raises(BlobUploadInvalid):
        push(repository, data)

    assert not Blob.objects.filter(digest=digest_of(data)).exists()
    assert not BlobUpload.objects.exists()
