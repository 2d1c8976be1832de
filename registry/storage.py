"""The only module that touches blob bytes: STORAGES["blobs"] and the upload staging folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, storages
from django.utils.functional import LazyObject


class _BlobStorage(LazyObject):
    def _setup(self) -> None:
        self._wrapped = storages["blobs"]


blob_storage = _BlobStorage()


def blob_name(digest: str) -> str:
    """Content-addressed name: `sha256/ab/abcdef…`."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}/{hexdigest[:2]}/{hexdigest}"


def is_local() -> bool:
    return isinstance(blob_storage, FileSystemStorage)


def local_blob_path(digest: str) -> Path:
    return Path(blob_storage.path(blob_name(digest)))


def staging_path(upload_id: object) -> Path:
    return Path(settings.UPLOAD_STAGING_DIR) / str(upload_id)


def open_staged(upload_id: object, *, create: bool = False) -> BinaryIO:
    path = staging_path(upload_id)
    if create:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)
        return os.fdopen(fd, "r+b")
    return open(path, "r+b")


def discard_staged(upload_id: object) -> None:
    try:
        staging_path(upload_id).unlink()
    except FileNotFoundError:
        pass


def commit_staged_blob(upload_id: object, digest: str) -> None:
    """Make the verified staged bytes visible as blob `digest`: one atomic move (or one S3 upload)."""
    staged = staging_path(upload_id)
    storage = blob_storage
    if isinstance(storage, FileSystemStorage):
        destination = local_blob_path(digest)
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staged, destination)
        except OSError as exc:
            if exc.errno != 18:  # EXDEV: staging and blobs on different file systems
                raise
            temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
            shutil.copyfile(staged, temporary)
            os.replace(temporary, destination)
            staged.unlink()
        return
    name = blob_name(digest)
    if not storage.exists(name):
        with open(staged, "rb") as handle:
            storage.save(name, File(handle))
    staged.unlink()


def blob_exists(digest: str) -> bool:
    return blob_storage.exists(blob_name(digest))


def open_blob(digest: str) -> BinaryIO:
    return blob_storage.open(blob_name(digest), "rb")


def blob_url(digest: str) -> str:
    """A presigned URL (S3) the client can be redirected to."""
    return blob_storage.url(blob_name(digest))


def delete_blob(digest: str) -> None:
    storage = blob_storage
    name = blob_name(digest)
    if storage.exists(name):
        storage.delete(name)


def read_small_blob(digest: str, limit: int) -> bytes | None:
    """The bytes of a blob no bigger than `limit` (image configs), else None."""
    with open_blob(digest) as handle:
        data = handle.read(limit + 1)
    return None if len(data) > limit else data
