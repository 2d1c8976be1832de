"""Blobs in an S3 bucket (or anything speaking S3), under the keys django-storages has always used.

A blob is the object `<prefix>/<content_path(digest)>` (`blobs/sha256/ab/abcdef…`). Publishing is
write-once with S3's conditional writes: `put_object` or `complete_multipart_upload` with
`If-None-Match: *`, which S3 refuses (412 Precondition Failed) when the key exists, whoever wrote it
and however the two requests interleave; a 409 (another conditional write to the key in flight) is
retried. Clients fetch blobs with presigned URLs. Reads are streamed.

Uploads in progress are still staged in the node's own staging folder (`StagingArea`) and sent to
the bucket when they complete: in parts of `part_size` bytes (at least 5 MiB, S3's minimum for
every part but the last), one part in memory at a time.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from oci.digests import content_path
from registry.blobstore.base import BlobStore, UploadState, UploadWriter
from registry.blobstore.local import StagedUpload, StagingArea

MIN_PART_BYTES = 5 * 1024 * 1024
MAX_PARTS = 10_000
DEFAULT_PART_BYTES = 8 * 1024 * 1024
CONFLICT_RETRIES = 5
MISSING = {"404", "NoSuchKey", "NotFound"}
PART_CHECKSUMS = ("ChecksumCRC32", "ChecksumCRC32C", "ChecksumCRC64NVME", "ChecksumSHA1", "ChecksumSHA256")


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3ObjectReader(io.RawIOBase):
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

    def readall(self) -> bytes:
        chunks = []
        while chunk := self.read(1024 * 1024):
            chunks.append(chunk)
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def _drop_body(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def close(self) -> None:
        if not self.closed:
            self._drop_body()
        super().close()


class S3BlobStore(BlobStore):
    def __init__(self, *, bucket: str, staging: Path | str, prefix: str = "blobs", endpoint_url: str | None = None,
                 region_name: str | None = None, access_key: str | None = None, secret_key: str | None = None,
                 session_token: str | None = None, profile: str | None = None, url_expires: int = 600,
                 part_size: int = DEFAULT_PART_BYTES) -> None:
        if part_size < MIN_PART_BYTES:
            raise ValueError(f"S3 parts are at least {MIN_PART_BYTES} bytes")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.staging = StagingArea(staging)
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

    def start_upload(self, upload_id: object) -> UploadState:
        self.staging.create(upload_id)
        return {}

    @contextlib.contextmanager
    def open_upload(self, upload_id: object, state: UploadState | None = None) -> Iterator[UploadWriter]:
        with self.staging.locked(upload_id) as handle:
            yield StagedUpload(self.staging, upload_id, handle, self._publish)

    def discard_upload(self, upload_id: object, state: UploadState | None = None) -> None:
        self.staging.discard(upload_id)

    def _publish(self, upload: StagedUpload, digest: str) -> bool:
        """Send the staged bytes to the bucket unless the blob is there already."""
        key, size = self.key(digest), upload.size
        if size <= self.part_size:
            return self._conditional(lambda: self._put(key, upload))
        return self._multipart(key, upload, size)

    def _put(self, key: str, upload: StagedUpload) -> None:
        with upload.reader() as reader:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=reader, IfNoneMatch="*")

    def _multipart(self, key: str, upload: StagedUpload, size: int) -> bool:
        part_size = max(self.part_size, math.ceil(size / MAX_PARTS))
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            with upload.reader() as reader:
                while chunk := reader.read(part_size):
                    number = len(parts) + 1
                    response = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                       PartNumber=number, Body=chunk)
                    part = {"PartNumber": number, "ETag": response["ETag"]}
                    part.update({name: response[name] for name in PART_CHECKSUMS if response.get(name)})
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
