"""Blob uploads: stream bytes to the blob store's upload, verify the digest, then publish the blob.

Upload state lives in the database (BlobUpload) and the blob store, never in a process, so any
worker can take the next request. Bytes are read in fixed-size chunks and hashed as they arrive;
an upload written by several requests is verified by re-reading it at finalize. Bytes are
published outside database transactions; the blob's row is recorded afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from lib.chunked_body import chunked_pieces
from lib.metrics import BYTES_PUSHED
from lib.offload import in_order_off_the_loop, off_the_loop
from oci.digests import InvalidDigest, parse_digest
from registry.blobstore import UploadBusy, UploadGone, UploadWriter, blob_store
from registry.errors import BlobUploadInvalid, BlobUploadUnknown, DigestInvalid, RangeInvalid, SizeInvalid
from registry.models import Blob, BlobUpload, RepositoryBlob
from registry.services import quotas
from repositories.models import Repository

# Offsets of at most 19 digits (int64): a longer one is malformed, not a 500 from int()'s 4,300-digit limit.
CONTENT_RANGE_RE = re.compile(r"^(?:bytes[ =])?(\d{1,19})-(\d{1,19})$")
HASHERS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}
RELEASE_CONNECTION_BYTES = 1 << 20  # transfers this large, or chunked, go without a database connection

logger = logging.getLogger(__name__)


class BackgroundHasher:
    """sha256 on a second thread, so hashing overlaps with reading the socket and writing the file.

    hashlib releases the GIL for large updates, so on two cores the upload costs max(hash, I/O)
    instead of their sum. The queue is bounded: memory stays a few chunks whatever the blob size.
    """

    def __init__(self, hasher=None, queue_chunks: int = 8) -> None:
        self.hasher = hasher if hasher is not None else hashlib.sha256()
        # Under gunicorn's gevent workers a threading.Thread is a greenlet, which would hash in turn
        # with reading instead of beside it: there the hashing goes to gevent's thread pool.
        self.offloaded = in_order_off_the_loop()
        if self.offloaded is not None:
            return
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=queue_chunks)
        self.thread = threading.Thread(target=self._run, name="upload-hasher", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (chunk := self.queue.get()) is not None:
            self.hasher.update(chunk)

    def update(self, chunk: bytes) -> None:
        if self.offloaded is not None:
            self.offloaded.call(self.hasher.update, chunk)
            return
        self.queue.put(chunk)

    def hexdigest(self) -> str:
        self.close()
        return self.hasher.hexdigest()

    def close(self) -> None:
        if self.offloaded is not None:
            self.offloaded.wait()
            return
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


class IncompleteBody(Exception):
    """The client went away before sending the bytes it announced."""


@dataclass(frozen=True)
class Body:
    """A request body to be streamed: its declared length (None when chunked) and its chunks."""

    length: int | None
    chunks: Iterator[bytes]

    @property
    def empty(self) -> bool:
        return self.length == 0


def request_body(request: HttpRequest) -> Body:
    """The request body as fixed-size chunks, whether it has a Content-Length or is chunked.

    Django bounds its stream by CONTENT_LENGTH, so a `Transfer-Encoding: chunked` body (podman,
    buildah) reads as empty through request.read(): read gunicorn's decoded wsgi.input instead.
    """
    chunk_size = settings.REGISTRY_UPLOAD_CHUNK_BYTES
    raw_length = request.META.get("CONTENT_LENGTH") or ""
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if raw_length:
        try:
            length = int(raw_length)
        except ValueError:
            raise BlobUploadInvalid("invalid Content-Length") from None
        if length < 0:
            raise BlobUploadInvalid("invalid Content-Length")

        def sized() -> Iterator[bytes]:
            remaining = length
            while remaining > 0:
                chunk = request.read(min(chunk_size, remaining))
                if not chunk:
                    raise IncompleteBody(f"expected {length} bytes, got {length - remaining}")
                remaining -= len(chunk)
                yield chunk

        return Body(length, sized())
    if chunked:
        return Body(None, chunked_pieces(request.environ["wsgi.input"], chunk_size))
    return Body(0, iter(()))


def parse_content_range(value: str) -> tuple[int, int]:
    match = CONTENT_RANGE_RE.match(value.strip())
    if not match:
        raise RangeInvalid("invalid Content-Range", detail={"Content-Range": value[:100]})
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise RangeInvalid("invalid Content-Range", detail={"Content-Range": value[:100]})
    return start, end


def upload_start(*, repository: Repository, user) -> BlobUpload:
    quotas.refuse_if_full(repository_id=repository.pk)
    upload = BlobUpload.objects.create(repository=repository, created_by=user if user is not None else None)
    state = blob_store.start_upload(upload.id)
    if state:
        BlobUpload.objects.filter(pk=upload.pk).update(store_state=state)
        upload.store_state = state
    return upload


def upload_get(*, repository: Repository, upload_id: str) -> BlobUpload:
    try:
        return BlobUpload.objects.get(pk=uuid.UUID(upload_id), repository=repository)
    except (BlobUpload.DoesNotExist, ValueError):
        raise BlobUploadUnknown(detail={"uuid": upload_id[:64]}) from None


@contextlib.contextmanager
def _locked(upload: BlobUpload) -> Iterator[UploadWriter]:
    """The upload in the blob store, with `upload` re-read from the database once the store holds it.

    Every change to an upload's bytes and to its recorded size, digest and store state happens
    inside this block, and is recorded by one update conditional on the size read here, so the
    state in the database always describes the bytes in the store.
    """
    try:
        with blob_store.open_upload(upload.id) as writer:
            try:
                upload.refresh_from_db(fields=["size", "single_pass_digest", "store_state"])
            except BlobUpload.DoesNotExist:
                raise UploadGone from None
            writer.resume(upload.store_state)
            yield writer
    except UploadBusy:
        raise BlobUploadInvalid("another request is writing to this upload") from None
    except UploadGone:  # finished, cancelled or swept by another request
        BlobUpload.objects.filter(pk=upload.pk).delete()
        raise BlobUploadUnknown(detail={"uuid": str(upload.id)}) from None


def upload_append(*, upload: BlobUpload, body: Body, content_range: str | None = None) -> BlobUpload:
    """Write `body` at the end of the upload; the range, when given, must start exactly there."""
    with _locked(upload) as writer:
        _append_locked(upload, writer, body, content_range)
    return upload


def _append_locked(upload: BlobUpload, writer: UploadWriter, body: Body, content_range: str | None) -> None:
    """Append under the storage quota and the size and time limits: past one, the upload is cancelled."""
    try:
        _append_limited(upload, writer, body, content_range)
    except quotas.LimitExceeded:
        writer.abort()
        BlobUpload.objects.filter(pk=upload.pk).delete()
        raise


def _append_limited(upload: BlobUpload, writer: UploadWriter, body: Body, content_range: str | None) -> None:
    start = upload.size
    if content_range:
        range_start, range_end = parse_content_range(content_range)
        if range_start != start:
            raise RangeInvalid(
                detail={"expected_start": start, "got": range_start},
                headers=_range_headers(upload),
            )
        if body.length is not None and body.length != range_end - range_start + 1:
            raise RangeInvalid("Content-Range does not match Content-Length", headers=_range_headers(upload))
    chunks = quotas.upload_limits(upload=upload, start=start, length=body.length).chunks(body.chunks)
    release_database_connection(body.length)
    hasher = BackgroundHasher() if start == 0 else None
    try:
        written = writer.append(start, chunks if hasher is None else _hashed(chunks, hasher))
    finally:
        if hasher is not None:
            hasher.close()  # whatever happened (an empty body too): no thread outlives the request
    BYTES_PUSHED.inc(written)
    if written == 0:
        return
    digest = f"sha256:{hasher.hexdigest()}" if hasher is not None else ""
    state = writer.state
    with quotas.charging(repository_id=upload.repository_id):  # exact under concurrent pushes
        updated = BlobUpload.objects.filter(pk=upload.pk, size=start).update(
            size=start + written, single_pass_digest=digest, store_state=state, updated_at=timezone.now()
        )
    if not updated:
        writer.truncate(start)
        if BlobUpload.objects.filter(pk=upload.pk).exists():  # a store without locks: another request came first
            raise BlobUploadInvalid("another request wrote to this upload meanwhile", headers=_range_headers(upload))
        raise BlobUploadUnknown(detail={"uuid": str(upload.id)})  # cancelled (or swept as stale) meanwhile
    upload.size, upload.single_pass_digest, upload.store_state = start + written, digest, state


def _hashed(chunks: Iterator[bytes], hasher: BackgroundHasher) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


def release_database_connection(size: int | None) -> None:
    """Bytes that may take long to go through (an upload body arriving, a blob the client reads) do not
    hold a database connection meanwhile.

    Under the gevent workers nothing else bounds how many slow transfers are in progress at once, and
    each would keep its connection throughout (PostgreSQL refuses past max_connections). The next
    query opens one again: one connect per large transfer, nothing for small ones (`size` under
    RELEASE_CONNECTION_BYTES; None, a chunked body, counts as large).
    """
    if size is not None and size < RELEASE_CONNECTION_BYTES:
        return
    if not connection.in_atomic_block:
        connection.close()


def _range_headers(upload: BlobUpload) -> dict[str, str]:
    return {"Range": f"0-{max(upload.size - 1, 0)}", "Docker-Upload-UUID": str(upload.id)}


def _stream_digest(stream, algorithm: str) -> str:
    """Re-read and hash a whole stream; it may take seconds, so under gevent the work leaves the loop.

    A local file is read and hashed on a pool thread. A stream from the network (an S3 object) must
    be read by the greenlet that opened it: its gevent socket belongs to this thread's loop, and a
    pool thread reading it fails ("Cannot switch to a different thread"). It is read here, the
    other requests going on while it waits for bytes, and hashed on the pool chunk by chunk.
    """
    if _is_os_file(stream):
        return off_the_loop(_read_and_hash, stream, algorithm)
    hasher = BackgroundHasher(HASHERS[algorithm]())
    try:
        while chunk := stream.read(settings.REGISTRY_UPLOAD_CHUNK_BYTES):
            hasher.update(chunk)
        return f"{algorithm}:{hasher.hexdigest()}"
    finally:
        hasher.close()


def _is_os_file(stream) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError):  # io.UnsupportedOperation is an OSError
        return False
    return True


def _read_and_hash(stream, algorithm: str) -> str:
    hasher = HASHERS[algorithm]()
    while chunk := stream.read(settings.REGISTRY_UPLOAD_CHUNK_BYTES):
        hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"


def _upload_digest(upload: BlobUpload, writer: UploadWriter, algorithm: str) -> str:
    """The digest of the upload's bytes in the store (read while holding the upload).

    The single-pass digest was computed from exactly the bytes written, while holding the upload,
    so it describes them as long as the store still holds `size` bytes; anything else is re-read.
    """
    if algorithm == "sha256" and upload.single_pass_digest and writer.size == upload.size:
        return upload.single_pass_digest
    with writer.reader() as reader:
        return _stream_digest(reader, algorithm)


def upload_finish(*, upload: BlobUpload, digest: str, body: Body, content_range: str | None = None) -> Blob:
    """Append the last chunk, verify the digest, publish the blob and link it to the repository.

    All of it under the upload's lock: no other request can change the bytes between the check
    and the publication.
    """
    try:
        expected = parse_digest(digest)
    except InvalidDigest as exc:
        raise DigestInvalid(f"invalid digest: {exc}", detail={"digest": digest[:200]}) from None
    if expected.algorithm not in HASHERS:
        raise DigestInvalid("unsupported digest algorithm", detail={"digest": digest[:200]})
    with _locked(upload) as writer:
        if not body.empty:
            _append_locked(upload, writer, body, content_range)
        actual = _upload_digest(upload, writer, expected.algorithm)
        if actual != str(expected):
            writer.abort()
            upload.delete()
            raise DigestInvalid(detail={"expected": str(expected), "computed": actual})
        return _publish(upload, str(expected), writer)


def _publish(upload: BlobUpload, digest: str, writer: UploadWriter) -> Blob:
    """Store the bytes once (an existing blob's bytes are never rewritten), then record the blob.

    The bytes are committed to the store outside any database transaction; garbage collection
    cannot take them meanwhile: it deletes only a blob whose row was last touched before its grace
    period, re-checked under the row's lock, and this touches the row before publishing. A blob
    whose row is being swept right now makes the touch wait until the sweep has deleted the row
    and its bytes; the publish then stores them again. The sweep after a repository's deletion
    has no grace period: a row this creates is created only if the bytes are still there.
    """
    now = timezone.now()
    touched = Blob.objects.filter(digest=digest).update(last_touched_at=now)
    if not touched and blob_store.exists(digest):
        # Re-hashing a stray blob may take seconds: not in a transaction (on SQLite one holds the
        # whole database's write lock). A blob that verifies stays whatever happens meanwhile;
        # nothing but a verified publish puts one there.
        _set_aside_unverified(digest)
    writer.complete(digest)
    try:
        return _record(upload, digest, now)
    except BytesSwept:
        upload.delete()
        raise BlobUploadInvalid("the blob was deleted while it was being stored: push it again",
                                detail={"digest": digest}) from None


class BytesSwept(Exception):
    """The blob's row and bytes were swept between the publish and its record."""


def _record(upload: BlobUpload, digest: str, now) -> Blob:
    with transaction.atomic():
        blob = Blob.objects.select_for_update().filter(digest=digest).first()
        if blob is None:
            # A row existing now, under its lock, means no sweep took the bytes (it deletes both in
            # one transaction); no row means one may have, since the publish: check before creating it.
            if not blob_store.exists(digest):
                raise BytesSwept()
            try:
                with transaction.atomic():  # a savepoint: the same blob may be finishing in another request
                    blob = Blob.objects.create(digest=digest, size=upload.size, created_at=now, last_touched_at=now)
            except IntegrityError:
                blob = Blob.objects.select_for_update().get(digest=digest)
        else:
            if blob.size != upload.size:
                raise SizeInvalid(detail={"digest": digest})
            Blob.objects.filter(pk=blob.pk).update(last_touched_at=now)
        RepositoryBlob.objects.get_or_create(repository_id=upload.repository_id, blob=blob)
        upload.delete()
    return blob


def _set_aside_unverified(digest: str) -> None:
    """A stored blob with no row (a publish whose transaction failed) is kept only if it verifies."""
    try:
        with blob_store.open(digest) as existing:
            actual = _stream_digest(existing, parse_digest(digest).algorithm)
    except FileNotFoundError:
        return
    if actual != digest:
        aside = blob_store.set_aside(digest)
        logger.warning("blob %s: stored bytes hash to %s; moved aside to %s", digest, actual, aside)


def upload_cancel(*, upload: BlobUpload) -> None:
    blob_store.discard_upload(upload.id)
    upload.delete()


def blob_link(*, repository: Repository, blob: Blob) -> None:
    """Cross-repository mount: link an existing blob into `repository` (touching it for GC)."""
    with quotas.charging(repository_id=repository.pk):  # a blob new to the namespace counts against its quota
        Blob.objects.filter(pk=blob.pk).update(last_touched_at=timezone.now())
        RepositoryBlob.objects.get_or_create(repository=repository, blob=blob)


def monolithic_upload(*, repository: Repository, user, digest: str, body: Body) -> Blob:
    upload = upload_start(repository=repository, user=user)
    try:
        return upload_finish(upload=upload, digest=digest, body=body)
    except BaseException:
        if BlobUpload.objects.filter(pk=upload.pk).exists():
            upload_cancel(upload=upload)
        raise
