"""Blobs in an S3 bucket (or anything speaking S3), under the keys django-storages has always used.

A blob is the object `<prefix>/<content_path(digest)>` (`blobs/sha256/ab/abcdef…`). Publishing is
write-once with S3's conditional writes: `put_object` or `complete_multipart_upload` with
`If-None-Match: *`, which S3 refuses (412 Precondition Failed) when the key exists, whoever wrote it
and however the two requests interleave; a 409 (another conditional write to the key in flight) is
retried. Clients fetch blobs with presigned URLs. Reads are streamed.

Uploads in progress live in the bucket too, so that any node can take an upload's next request:
under `<prefix>/_uploads/<upload id>/`, as objects of `part_size` bytes (at least 5 MiB, S3's minimum
for every part but the last) and one smaller last object, listed in the upload's state in the
database (`S3Upload`). At most one part is in memory at a time. Completing assembles them with part
copies on the S3 side. A blob has at most 10,000 parts: 80 GiB with the default 8 MiB parts.
"""

from __future__ import annotations

import contextlib
import errno
import io
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from oci.digests import content_path
from registry.blobstore.base import BlobStore, UploadGone, UploadState, UploadWriter

MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
DEFAULT_PART_BYTES = 8 * 1024 * 1024
CONFLICT_RETRIES = 5
MISSING = {"404", "NoSuchKey", "NotFound"}
UPLOADS_FOLDER = "_uploads"  # beside sha256/ under the prefix: no digest folder has that name
PART_CHECKSUMS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256")


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class _ChunkReader(io.RawIOBase):
    """A readable stream whose subclasses implement read(size); readall and readinto follow from it."""

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(1024 * 1024):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


class S3ObjectReader(_ChunkReader):
    """An S3 object as a seekable binary stream: one GET, re-issued with a Range after a seek."""

    def __init__(self, client: Any, bucket: str, key: str, response: dict) -> None:
        super().__init__()
        self.client, self.bucket, self.key = client, bucket, key
        self.length = int(response["ContentLength"])
        self.position = 0
        self.body: Any = response["Body"]

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.length}[whence]
        target = max(base + offset, 0)
        if target != self.position:
            self._drop_body()
            self.position = target
        return self.position

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if size == 0 or self.position >= self.length:
            return b""
        if self.body is None:
            self.body = self.client.get_object(Bucket=self.bucket, Key=self.key,
                                               Range=f"bytes={self.position}-")["Body"]
        data = self.body.read(size)
        self.position += len(data)
        return data

    def _drop_body(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def close(self) -> None:
        if not self.closed:
            self._drop_body()
        super().close()


class S3BlobStore(BlobStore):
    def __init__(self, *, bucket: str, prefix: str = "blobs", endpoint_url: str | None = None,
                 region_name: str | None = None, access_key: str | None = None, secret_key: str | None = None,
                 session_token: str | None = None, profile: str | None = None, url_expires: int = 600,
                 part_size: int = DEFAULT_PART_BYTES) -> None:
        if part_size < MIN_PART_BYTES:
            raise ValueError(f"S3 parts are at least {MIN_PART_BYTES} bytes")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.url_expires, self.part_size = url_expires, part_size
        # Credentials: given here (settings) or boto3's own chain (AWS_* variables, profiles, roles).
        self.client = boto3.session.Session(profile_name=profile).client(
            "s3", endpoint_url=endpoint_url, region_name=region_name, aws_access_key_id=access_key,
            aws_secret_access_key=secret_key, aws_session_token=session_token,
            config=Config(signature_version="s3v4"),  # presigned URLs: AWS refuses SigV2 in newer regions
        )

    def key(self, digest: str) -> str:
        name = content_path(digest)
        return f"{self.prefix}/{name}" if self.prefix else name

    # --- Published blobs ---------------------------------------------------------------------

    def exists(self, digest: str) -> bool:
        return self.size(digest) is not None

    def size(self, digest: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key(digest))["ContentLength"])
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return None
            raise

    def open(self, digest: str) -> BinaryIO:
        key = self.key(digest)
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in MISSING:
                raise FileNotFoundError(f"no blob {digest}") from None
            raise
        return S3ObjectReader(self.client, self.bucket, key, response)  # type: ignore[return-value]

    def delete(self, digest: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))

    def url(self, digest: str) -> str | None:
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(digest)}, ExpiresIn=self.url_expires,
        )

    def set_aside(self, digest: str) -> str | None:
        key = self.key(digest)
        folder, _, name = key.rpartition("/")
        aside = f"{folder}/.{name}.corrupt-{uuid.uuid4().hex[:8]}"
        try:
            self.client.copy_object(Bucket=self.bucket, Key=aside, CopySource={"Bucket": self.bucket, "Key": key})
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return None
            aside = None  # too large to copy in one request, say: deleting it is what matters
        self.delete(digest)
        return aside

    # --- Uploads in progress -----------------------------------------------------------------

    def upload_prefix(self, upload_id: object) -> str:
        return f"{self.prefix}/{UPLOADS_FOLDER}/{upload_id}/" if self.prefix else f"{UPLOADS_FOLDER}/{upload_id}/"

    def start_upload(self, upload_id: object) -> UploadState:
        return {"segments": []}

    @contextlib.contextmanager
    def open_upload(self, upload_id: object) -> Iterator[UploadWriter]:
        yield S3Upload(self, upload_id)

    def discard_upload(self, upload_id: object) -> None:
        """Delete every object of the upload, including those of requests that lost the race to record theirs."""
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.upload_prefix(upload_id)):
            self._delete_keys([item["Key"] for item in page.get("Contents", [])])

    def _delete_keys(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = keys[start:start + 1000]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch],
                                                                   "Quiet": True})

    def _put_segment(self, upload_id: object, data: bytes) -> dict:
        key = f"{self.upload_prefix(upload_id)}{uuid.uuid4().hex}"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return {"key": key, "size": len(data)}

    def _get_segment(self, key: str) -> Any:
        """A segment's body; UploadGone when it was deleted (the upload completed or was cancelled meanwhile)."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if error_code(exc) in MISSING:
                raise UploadGone(f"segment {key} of the upload is gone") from None
            raise

    def _publish_segments(self, digest: str, segments: list[dict]) -> bool:
        """Assemble the segments into blob `digest` on the S3 side (part copies), unless it exists."""
        key = self.key(digest)
        if not segments:
            return self._conditional(lambda: self.client.put_object(Bucket=self.bucket, Key=key, Body=b"",
                                                                    IfNoneMatch="*"))
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            for number, segment in enumerate(segments, start=1):
                result = self.client.upload_part_copy(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number,
                    CopySource={"Bucket": self.bucket, "Key": segment["key"]},
                )["CopyPartResult"]
                part = {"PartNumber": number, "ETag": result["ETag"]}
                part.update({name: result[name] for name in PART_CHECKSUMS if result.get(name)})
                parts.append(part)
            created = self._conditional(lambda: self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*",
            ))
        except BaseException:
            self._abort_multipart(key, upload_id)
            raise
        if not created:
            self._abort_multipart(key, upload_id)
        return created

    def _abort_multipart(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(ClientError):
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    def _conditional(self, write) -> bool:
        """Run a write with `If-None-Match: *`: True when it created the object, False when it existed."""
        for attempt in range(CONFLICT_RETRIES):
            try:
                write()
                return True
            except ClientError as exc:
                code = error_code(exc)
                if code == "PreconditionFailed":
                    return False
                if code != "ConditionalRequestConflict" or attempt == CONFLICT_RETRIES - 1:
                    raise
            time.sleep(0.05 * 2 ** attempt)  # another conditional write to the key is in flight
        raise AssertionError("unreachable")


class S3Upload(UploadWriter):
    """An upload whose bytes are objects in the bucket (its segments), so any node can take its next request.

    Every segment but the last holds exactly `part_size` bytes, so that completing is a multipart
    upload of part copies made on the S3 side. An append first takes the last segment's bytes back
    when it is smaller than a part (at most one part in memory) and writes new segments under fresh
    keys: nothing a recorded state names is ever rewritten, so a request whose offset update the
    database refused (another request's came first) leaves the upload as it was.
    """

    def __init__(self, store: S3BlobStore, upload_id: object) -> None:
        self.store, self.upload_id = store, upload_id
        self.segments: list[dict] = []
        self._before: list[dict] | None = None  # the state before this request's append
        self._added: list[dict] = []

    @property
    def size(self) -> int:
        return sum(segment["size"] for segment in self.segments)

    @property
    def state(self) -> UploadState:
        return {"segments": [dict(segment) for segment in self.segments]}

    def resume(self, state: UploadState) -> None:
        if "segments" not in state:  # begun on a node's disk, before uploads lived in the bucket
            raise UploadGone(f"upload {self.upload_id} has no bytes in the bucket")
        self.segments = [dict(segment) for segment in state["segments"]]

    def append(self, start: int, chunks: Iterable[bytes]) -> int:
        if start != self.size:  # the recorded state and offset always agree: this upload is broken
            raise UploadGone(f"upload {self.upload_id} holds {self.size} bytes, not {start}")
        store, part_size = self.store, self.store.part_size
        kept = list(self.segments)
        buffer = bytearray()
        if kept and kept[-1]["size"] < part_size:
            buffer += store._get_segment(kept.pop()["key"]).read()
        added: list[dict] = []
        written = 0
        try:
            for chunk in chunks:
                buffer += chunk
                written += len(chunk)
                while len(buffer) >= part_size:
                    if len(kept) + len(added) >= MAX_PARTS:
                        raise OSError(errno.EFBIG, f"a blob has at most {MAX_PARTS} parts of {part_size} bytes")
                    added.append(store._put_segment(self.upload_id, bytes(buffer[:part_size])))
                    del buffer[:part_size]
            if written and buffer:
                added.append(store._put_segment(self.upload_id, bytes(buffer)))
        except BaseException:
            store._delete_keys([segment["key"] for segment in added])
            raise
        if written:
            self._before, self._added = self.segments, added
            self.segments = kept + added
        return written

    def truncate(self, size: int) -> None:
        """Undo this request's append (the database did not record it)."""
        if self._before is None or size != sum(segment["size"] for segment in self._before):
            raise ValueError("an S3 upload only goes back to the state it was resumed from")
        self.store._delete_keys([segment["key"] for segment in self._added])
        self.segments, self._before, self._added = self._before, None, []

    def reader(self) -> BinaryIO:
        return SegmentsReader(self.store, [segment["key"] for segment in self.segments])  # type: ignore[return-value]

    def complete(self, digest: str) -> bool:
        created = self.store._publish_segments(digest, self.segments)
        self.store.discard_upload(self.upload_id)
        return created

    def abort(self) -> None:
        self.store.discard_upload(self.upload_id)


class SegmentsReader(_ChunkReader):
    """The segments of an upload one after the other, as one stream (to hash them)."""

    def __init__(self, store: S3BlobStore, keys: list[str]) -> None:
        super().__init__()
        self.store, self.keys, self.body = store, list(keys), None

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        while size:
            if self.body is None:
                if not self.keys:
                    return b""
                key = self.keys.pop(0)
                self.body = self.store._get_segment(key)
            data = self.body.read(size)
            if data:
                return data
            self.body.close()
            self.body = None
        return b""

    def close(self) -> None:
        if not self.closed and self.body is not None:
            self.body.close()
            self.body = None
        super().close()
