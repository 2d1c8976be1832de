"""Blobs and uploads on the local file system, in the `$HUB_DATA_DIR` layout Wharf has always used.

Blobs: `<root>/<content_path(digest)>` (`blobs/sha256/ab/abcdef…`), read-only once published.
Uploads in progress: one file per upload, named after its id, in the staging folder (`uploads/`),
written only under an exclusive lock on the file and published under that same lock by linking it
into place, which never replaces a file: its bytes are synced to disk first, and the folder after the
link, as the reference registry's filesystem driver syncs a blob on commit. The staging folder is the
node's own: an upload's requests must reach the node that took its POST (the S3 store keeps uploads in
the bucket instead).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from oci.digests import content_path
from registry.blobstore.base import BlobStore, UploadBusy, UploadGone, UploadState, UploadWriter

COPY_BUFFER_BYTES = 1024 * 1024


class StagingArea:
    """A folder of staged uploads, each a file named after its upload id."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def path(self, upload_id: object) -> Path:
        return self.folder / str(upload_id)

    def create(self, upload_id: object) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        os.close(os.open(self.path(upload_id), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640))

    @contextlib.contextmanager
    def locked(self, upload_id: object) -> Iterator[BinaryIO]:
        """The staged file, opened for writing and exclusively locked for the block.

        Raises UploadBusy when another request holds it, and UploadGone when the upload is gone,
        including when it was published or discarded between our open() and our lock: the file we
        opened may by then be a published blob, which nothing may write to.
        """
        path = self.path(upload_id)
        try:
            handle = open(path, "r+b")  # noqa: SIM115 - closed below; closing it releases the lock
        except FileNotFoundError:
            raise UploadGone(errno.ENOENT, "no such upload", str(path)) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise UploadBusy() from None
                raise
            opened = os.fstat(handle.fileno())
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is None or (opened.st_dev, opened.st_ino) != (current.st_dev, current.st_ino) \
                    or opened.st_nlink != 1:
                raise UploadGone(errno.ENOENT, "the upload was finished or cancelled", str(path))
            yield handle

    def discard(self, upload_id: object) -> None:
        self.path(upload_id).unlink(missing_ok=True)


class StagedUpload(UploadWriter):
    """An upload staged in a local file and held under its lock; `publish` stores it as a blob."""

    def __init__(self, staging: StagingArea, upload_id: object, handle: BinaryIO,
                 publish: Callable[[StagedUpload, str], bool]) -> None:
        self.staging, self.upload_id, self.handle, self._publish = staging, upload_id, handle, publish

    @property
    def path(self) -> Path:
        return self.staging.path(self.upload_id)

    @property
    def size(self) -> int:
        return os.fstat(self.handle.fileno()).st_size

    def append(self, start: int, chunks: Iterable[bytes]) -> int:
        handle = self.handle
        handle.truncate(start)  # drop what an interrupted request may have left
        handle.seek(start)
        written = 0
        try:
            for chunk in chunks:
                handle.write(chunk)
                written += len(chunk)
            handle.flush()
        except BaseException:
            self.truncate(start)
            raise
        return written

    def truncate(self, size: int) -> None:
        self.handle.flush()
        self.handle.truncate(size)

    def reader(self) -> BinaryIO:
        return open(self.path, "rb")

    def complete(self, digest: str) -> bool:
        self.handle.flush()
        # On disk before it is published, as the reference registry's filesystem driver syncs on commit:
        # the blob's row is recorded next, and after a power loss it must not name an empty or partial file.
        os.fsync(self.handle.fileno())
        created = self._publish(self, digest)
        # The staged name goes either way, so a request that opened it earlier fails its lock check.
        self.staging.discard(self.upload_id)
        return created

    def abort(self) -> None:
        self.staging.discard(self.upload_id)


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path | str, staging: Path | str) -> None:
        self.root = Path(root)
        self.staging = StagingArea(staging)

    def path(self, digest: str) -> Path:
        return self.root / content_path(digest)

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int | None:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def open(self, digest: str) -> BinaryIO:
        # A plain file: FileResponse hands it to gunicorn's sendfile path.
        return open(self.path(digest), "rb")

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def url(self, digest: str) -> str | None:
        return None

    def set_aside(self, digest: str) -> str | None:
        path = self.path(digest)
        aside = path.with_name(f".{path.name}.corrupt-{uuid.uuid4().hex[:8]}")
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            return None
        return str(aside)

    def start_upload(self, upload_id: object) -> UploadState:
        self.staging.create(upload_id)
        return {}

    @contextlib.contextmanager
    def open_upload(self, upload_id: object) -> Iterator[UploadWriter]:
        with self.staging.locked(upload_id) as handle:
            yield StagedUpload(self.staging, upload_id, handle, self._publish)

    def discard_upload(self, upload_id: object) -> None:
        self.staging.discard(upload_id)

    def _publish(self, upload: StagedUpload, digest: str) -> bool:
        destination = self.path(digest)
        destination.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(upload.handle.fileno(), 0o440)  # published bytes are read-only (open handles keep their mode)
        try:
            os.link(upload.path, destination)  # fails if the blob exists: never replaces it
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        else:
            _sync_folder(destination.parent)  # the new name, too, is on disk before the row names it
            return True
        # The staging folder and the blobs are on different file systems: copy, then link the copy.
        return _publish_copy(upload.handle, destination)


def _publish_copy(handle: BinaryIO, destination: Path) -> bool:
    temporary = destination.with_name(f".{destination.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as copy:
            handle.seek(0)
            shutil.copyfileobj(handle, copy, COPY_BUFFER_BYTES)
            copy.flush()
            os.fsync(copy.fileno())
        os.chmod(temporary, 0o440)
        try:
            os.link(temporary, destination)
        except FileExistsError:
            return False
        _sync_folder(destination.parent)
        return True
    finally:
        temporary.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so that a name just linked into it survives a power loss."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
