"""The only module that touches blob bytes: STORAGES["blobs"] and the upload staging folder.

Blobs are write-once: a published blob's bytes are never replaced or written to. A staged upload is
written only under an exclusive lock on its file (`locked_staged`), and published under that same
lock by linking it into place without replacing anything (`publish_staged`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages
from django.utils.functional import LazyObject

from oci.digests import content_path


class _BlobStorage(LazyObject):
    def _setup(self) -> None:
        self._wrapped = storages["blobs"]


blob_storage = _BlobStorage()


def is_local() -> bool:
    return isinstance(blob_storage, FileSystemStorage)


def local_blob_path(digest: str) -> Path:
    return Path(blob_storage.path(content_path(digest)))


def staging_path(upload_id: object) -> Path:
    return Path(settings.UPLOAD_STAGING_DIR) / str(upload_id)


def create_staged(upload_id: object) -> None:
    os.close(os.open(staging_path(upload_id), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640))


class StagedBusy(Exception):
    """Another request holds the upload's lock."""


@contextlib.contextmanager
def locked_staged(upload_id: object) -> Iterator[BinaryIO]:
    """The upload's staged file, opened for writing and exclusively locked for the block.

    Raises StagedBusy when another request holds it, and FileNotFoundError when the upload is gone,
    including when it was published or discarded between our open() and our lock: the file we
    opened may by then be a published blob, which nothing may write to.
    """
    path = staging_path(upload_id)
    with open(path, "r+b") as handle:  # closing it releases the lock
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise StagedBusy() from None
            raise
        opened, current = os.fstat(handle.fileno()), os.stat(path)
        if (opened.st_dev, opened.st_ino) != (current.st_dev, current.st_ino) or opened.st_nlink != 1:
            raise FileNotFoundError(errno.ENOENT, "the upload was finished or cancelled", str(path))
        yield handle


def discard_staged(upload_id: object) -> None:
    try:
        staging_path(upload_id).unlink()
    except FileNotFoundError:
        pass


def publish_staged(upload_id: object, digest: str, handle: BinaryIO) -> bool:
    """Publish the verified staged bytes as blob `digest`, never replacing an existing blob.

    Call with the upload's lock held (`handle` from `locked_staged`). Returns False when the blob
    already existed: its bytes stay as they are and the staged copy is discarded. The staged name
    is gone afterwards either way, so a request that opened it earlier fails its lock check.
    """
    staged = staging_path(upload_id)
    storage = blob_storage
    if not isinstance(storage, FileSystemStorage):
        name = content_path(digest)
        created = not storage.exists(name)
        if created:
            handle.seek(0)
            storage.save(name, File(handle))
        staged.unlink()
        return created
    destination = local_blob_path(digest)
    destination.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(handle.fileno(), 0o440)  # published bytes are read-only (open handles keep their mode)
    try:
        os.link(staged, destination)  # fails if the blob exists: never replaces it
        created = True
    except FileExistsError:
        created = False
    except OSError as exc:
        if exc.errno != errno.EXDEV:  # staging and blobs on different file systems: copy, then link
            raise
        created = _publish_copy(handle, destination)
    staged.unlink()
    return created


def _publish_copy(handle: BinaryIO, destination: Path) -> bool:
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as copy:
            handle.seek(0)
            shutil.copyfileobj(handle, copy, 1024 * 1024)
            copy.flush()
            os.fsync(copy.fileno())
        os.chmod(temporary, 0o440)
        try:
            os.link(temporary, destination)
            return True
        except FileExistsError:
            return False
    finally:
        temporary.unlink(missing_ok=True)


def quarantine_blob(digest: str) -> Path | None:
    """Move a stored blob whose bytes do not match its digest out of the way (kept for inspection)."""
    if not is_local():
        delete_blob(digest)
        return None
    path = local_blob_path(digest)
    aside = path.with_name(f".{path.name}.corrupt-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return None
    return aside


def blob_exists(digest: str) -> bool:
    return blob_storage.exists(content_path(digest))


def open_blob(digest: str) -> BinaryIO:
    return blob_storage.open(content_path(digest), "rb")


def blob_url(digest: str) -> str:
    """A presigned URL (S3) the client can be redirected to."""
    return blob_storage.url(content_path(digest))


def delete_blob(digest: str) -> None:
    storage = blob_storage
    name = content_path(digest)
    if storage.exists(name):
        storage.delete(name)


def read_small_blob(digest: str, limit: int) -> bytes | None:
    """The bytes of a blob no bigger than `limit` (image configs), else None."""
    with open_blob(digest) as handle:
        data = handle.read(limit + 1)
    return None if len(data) > limit else data
