"""The blob store interface: where verified blobs live and where uploads in progress keep their bytes.

Two kinds of things live in a store:

- Blobs, named by their digest and write-once: `UploadWriter.complete` publishes an upload's bytes
  under a digest without ever replacing an object already there (it reports whether it created
  it), and nothing else writes to a published blob. Reading is streamed (`open`), never the whole
  blob in memory; a store whose clients can fetch blobs themselves gives a `url` to redirect to.
- Uploads in progress, named by their upload id. Bytes are only ever appended at the end, in
  sequence (S3 objects cannot be written at an offset): `append(start, chunks)` writes at `start`,
  the offset the database says the upload has reached, dropping whatever an interrupted request
  left past it. A store keeps what it needs to resume an upload in `UploadWriter.state`, a small
  JSON-able dict the caller saves in the same conditional update as the upload's new offset and
  hands back with `resume` in the next request, so a store can keep an upload's bytes where every
  node reaches them (S3: objects of a part's size, plus one smaller object for the bytes that do
  not fill a part yet) and any node can take the next request. The database row is the authority
  on whether an upload exists and how far it got.

Publishing stores bytes only: callers do it outside database transactions and record the blob
afterwards (garbage collection's grace period protects a blob being published).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any, BinaryIO

UploadState = dict[str, Any]


class UploadBusy(Exception):
    """Another request is writing to the upload."""


class UploadGone(FileNotFoundError):
    """The upload was completed, aborted or discarded (possibly by a request that raced ours)."""


class UploadWriter(ABC):
    """An upload in progress, held exclusively by one request (from `BlobStore.open_upload`)."""

    @property
    @abstractmethod
    def size(self) -> int:
        """How many bytes the store holds for the upload."""

    @property
    def state(self) -> UploadState:
        """What the store needs to resume the upload in another request (save it with the offset)."""
        return {}

    def resume(self, state: UploadState) -> None:  # noqa: B027 - a store without state has nothing to do
        """Take up the state recorded with the upload's offset (call before anything else)."""

    @abstractmethod
    def append(self, start: int, chunks: Iterable[bytes]) -> int:
        """Write `chunks` at offset `start` (the upload's recorded size); returns the bytes written.

        Bytes past `start` (an interrupted request's) are dropped first. When `chunks` raises, or
        the write fails, the upload is back at `start` and the exception propagates.
        """

    @abstractmethod
    def truncate(self, size: int) -> None:
        """Drop the bytes past `size` (a write the database refused to record)."""

    @abstractmethod
    def reader(self) -> BinaryIO:
        """The upload's bytes from the start, to hash them (the caller closes it)."""

    @abstractmethod
    def complete(self, digest: str) -> bool:
        """Publish the bytes as blob `digest`, never replacing a blob already there.

        Returns True when this call created the blob, False when it existed (its bytes stay as they
        are). The upload is gone afterwards either way. The caller has checked the digest.
        """

    @abstractmethod
    def abort(self) -> None:
        """Drop the upload and its bytes."""


class BlobStore(ABC):
    # --- Published blobs ---------------------------------------------------------------------

    @abstractmethod
    def exists(self, digest: str) -> bool: ...

    @abstractmethod
    def size(self, digest: str) -> int | None:
        """The stored blob's size in bytes, None when there is none."""

    @abstractmethod
    def open(self, digest: str) -> BinaryIO:
        """The blob's bytes as a stream; FileNotFoundError when there is none."""

    @abstractmethod
    def delete(self, digest: str) -> None:
        """Delete the blob (nothing when there is none)."""

    @abstractmethod
    def url(self, digest: str) -> str | None:
        """A URL clients can fetch the blob from themselves (presigned), or None: the node serves it."""

    @abstractmethod
    def set_aside(self, digest: str) -> str | None:
        """Take a blob whose bytes do not match its digest out of the way; where it went, if kept."""

    def read_small(self, digest: str, limit: int) -> bytes | None:
        """The bytes of a blob no bigger than `limit` (image configs), else None."""
        with self.open(digest) as handle:
            data = handle.read(limit + 1)
        return None if len(data) > limit else data

    # --- Uploads in progress -----------------------------------------------------------------

    @abstractmethod
    def start_upload(self, upload_id: object) -> UploadState:
        """Make room for a new upload; returns its initial state."""

    @abstractmethod
    def open_upload(self, upload_id: object) -> AbstractContextManager[UploadWriter]:
        """The upload for the block: held exclusively by a store that can (the local one: UploadBusy
        when another request holds it), or else written so that only the request whose offset update
        the database takes counts (S3: every request writes objects of its own).

        Raises UploadGone when the store knows the upload no longer exists.
        """

    @abstractmethod
    def discard_upload(self, upload_id: object) -> None:
        """Drop an upload's bytes without holding it (cancel, stale-upload sweep): a request writing
        to it finds it gone and writes nothing."""
