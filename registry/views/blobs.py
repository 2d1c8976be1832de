"""Blob reads and deletes, and blob uploads (monolithic, POST+PUT, chunked PATCH, mount)."""

from __future__ import annotations

import re
from datetime import timedelta

from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.utils import timezone

from lib.metrics import BYTES_PULLED
from oci.digests import InvalidDigest, parse_digest
from oci.names import InvalidName, normalize_repository_name
from registry.blobstore import blob_store
from registry.errors import BlobUnknown, BlobUploadInvalid, DigestInvalid, NameUnknown, RangeInvalid
from registry.models import Blob, RepositoryBlob
from registry.selectors import linked_blob
from registry.services import uploads
from registry.views.base import RegistryView, empty
from repositories.permissions import PULL, PUSH

BYTES_PULLED_SERVED, BYTES_PULLED_REDIRECTED = BYTES_PULLED.labels("served"), BYTES_PULLED.labels("redirected")
RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
TOUCH_EVERY = timedelta(hours=1)


def _digest_or_error(value: str) -> str:
    try:
        return str(parse_digest(value))
    except InvalidDigest as exc:
        raise DigestInvalid(f"invalid digest: {exc}", detail={"digest": value[:200]}) from None


def _linked_blob(repository, digest: str) -> Blob:
    blob = Blob.objects.filter(digest=digest, repository_links__repository=repository).first()
    if blob is None:
        raise BlobUnknown(detail={"digest": digest})
    return blob


def _linked_blob_by_name(view: RegistryView, digest: str) -> Blob:
    """The blob `digest` linked to the view's repository, found with the repository by its name in one
    query (blob GET and HEAD, once per layer of every pull). Missing: which is unknown, the repository
    or the blob, is asked only then."""
    blob = linked_blob(namespace=view.namespace_name, name=view.repository_name, digest=digest)
    if blob is not None:
        return blob
    view.repository = view.find_repository()
    if view.repository is None:
        raise NameUnknown(detail={"name": view.display_name})
    raise BlobUnknown(detail={"digest": digest})


def _touch(blob: Blob) -> None:
    """Tell garbage collection the blob is in use (at most one write per blob an hour)."""
    now = timezone.now()
    if now - blob.last_touched_at > TOUCH_EVERY:
        Blob.objects.filter(pk=blob.pk).update(last_touched_at=now)


class _ChunkedFile:
    """Iterate over [start, start+length) of an open file in fixed-size chunks."""

    def __init__(self, handle, start: int, length: int, chunk_size: int = 1024 * 1024) -> None:
        self.handle, self.remaining, self.chunk_size = handle, length, chunk_size
        handle.seek(start)

    def __iter__(self):
        try:
            while self.remaining > 0:
                chunk = self.handle.read(min(self.chunk_size, self.remaining))
                if not chunk:
                    return
                self.remaining -= len(chunk)
                yield chunk
        finally:
            self.handle.close()


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    match = RANGE_RE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        raise RangeInvalid("invalid Range", headers={"Content-Range": f"bytes */{size}"})
    first, last = match.group(1), match.group(2)
    if first == "":  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            raise RangeInvalid(headers={"Content-Range": f"bytes */{size}"})
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise RangeInvalid(headers={"Content-Range": f"bytes */{size}"})
    return start, end


class BlobView(RegistryView):
    http_method_names = ["get", "head", "delete"]
    missing_pull_means_unknown = BlobUnknown

    @property
    def lazy_repository_methods(self) -> frozenset[str]:
        """GET and HEAD find the repository in the blob's query; a mirrored one is found first (the
        pull-through cache needs it)."""
        return frozenset() if self.mirror_prefix is not None else frozenset({"GET", "HEAD"})

    def _headers(self, blob: Blob) -> dict[str, str]:
        return {
            "Docker-Content-Digest": blob.digest,
            "ETag": f'"{blob.digest}"',
            "Accept-Ranges": "bytes",
            "Cache-Control": "max-age=31536000",
        }

    def _blob(self, raw_digest: str) -> Blob:
        if self.repository is not None:  # mirrored: found before
            return _linked_blob(self.repository, _digest_or_error(raw_digest))
        try:
            digest = _digest_or_error(raw_digest)
        except DigestInvalid:
            if self.find_repository() is None:  # an unknown repository says so first, as it always did
                raise NameUnknown(detail={"name": self.display_name}) from None
            raise
        return _linked_blob_by_name(self, digest)

    def _mirrored(self, digest: str):
        """A blob of a mirrored repository: linked already or landed meanwhile (a Blob), or a BlobFetch
        this request runs (registry/mirror/service.py)."""
        from registry.mirror import service as mirror

        blob = mirror.linked_blob(self.repository, digest)
        if blob is not None:
            return blob
        return mirror.fetch_blob(repository=self.repository, prefix=self.mirror_prefix, digest=digest)

    def _stream_miss(self, request: HttpRequest, fetched, digest: str) -> StreamingHttpResponse | None:
        """The response streaming a blob fetched now: whole, or the range the client asked for (206) when
        the upstream said the size. None when a Range cannot be answered while streaming (no size, or a
        range the size does not satisfy): the blob is then stored whole and served from the store."""
        from registry.mirror import service as mirror

        range_header = request.META.get("HTTP_RANGE")
        if not range_header:
            response = StreamingHttpResponse(iter(fetched), content_type="application/octet-stream")
            if fetched.size is not None:
                response["Content-Length"] = str(fetched.size)
        else:
            try:
                start, end = _parse_range(range_header, fetched.size) if fetched.size is not None else (None, None)
            except RangeInvalid:
                start = end = None
            if start is None:
                mirror.store_only(fetched, digest=digest)
                return None
            response = StreamingHttpResponse(mirror.sliced(fetched, start, end), status=206,
                                              content_type="application/octet-stream")
            response["Content-Range"] = f"bytes {start}-{end}/{fetched.size}"
            response["Content-Length"] = str(end - start + 1)
        response["Docker-Content-Digest"] = digest
        response["Accept-Ranges"] = "bytes"
        response[mirror.HEADER] = mirror.MISS
        return response

    def _head_miss(self, digest: str) -> HttpResponse | None:
        """A HEAD on a blob of a mirrored repository not linked here: the upstream is asked with a HEAD
        and nothing is fetched or stored. None when the upstream names no size (then it is fetched and
        stored, and answered from the store)."""
        from registry.mirror import service as mirror

        info = mirror.head_blob(repository=self.repository, prefix=self.mirror_prefix, digest=digest)
        if info.size is None:
            fetched = self._mirrored(digest)
            if not isinstance(fetched, Blob):
                mirror.store_only(fetched, digest=digest)
            return None
        return empty(200, {
            "Docker-Content-Digest": digest, "ETag": f'"{digest}"', "Accept-Ranges": "bytes",
            "Content-Length": str(info.size), "Content-Type": "application/octet-stream", mirror.HEADER: mirror.MISS,
        })

    def head(self, request: HttpRequest, digest: str) -> HttpResponse:
        if self.mirror_prefix is not None:
            digest = _digest_or_error(digest)
            from registry.mirror.service import linked_blob

            if linked_blob(self.repository, digest) is None:
                response = self._head_miss(digest)
                if response is not None:
                    return response
        blob = self._blob(digest)
        _touch(blob)
        response = empty(200, self._headers(blob))
        response["Content-Length"] = str(blob.size)
        response["Content-Type"] = "application/octet-stream"
        return response

    def get(self, request: HttpRequest, digest: str) -> HttpResponse:
        if self.mirror_prefix is not None:
            digest = _digest_or_error(digest)
            fetched = self._mirrored(digest)
            if not isinstance(fetched, Blob):
                response = self._stream_miss(request, fetched, digest)
                if response is not None:
                    return response
                # stored whole: served from the store below, with its Range
        blob = self._blob(digest)
        url = blob_store.url(blob.digest)
        if url is not None:  # the store serves it (a presigned S3 URL)
            BYTES_PULLED_REDIRECTED.inc(blob.size)
            return HttpResponseRedirect(url, status=307)
        range_header = request.META.get("HTTP_RANGE")
        try:
            handle = blob_store.open(blob.digest)
        except FileNotFoundError:
            raise BlobUnknown("blob content is missing", detail={"digest": blob.digest}) from None
        if range_header:
            try:
                start, end = _parse_range(range_header, blob.size)
            except RangeInvalid:
                handle.close()
                raise
            response = StreamingHttpResponse(_ChunkedFile(handle, start, end - start + 1), status=206,
                                              content_type="application/octet-stream")
            response["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
            response["Content-Length"] = str(end - start + 1)
        else:
            # FileResponse on an open file: gunicorn's sendfile path (PacedSocket.sendfile under gevent).
            response = FileResponse(handle, content_type="application/octet-stream")
            response["Content-Length"] = str(blob.size)
        for name, value in self._headers(blob).items():
            response[name] = value
        BYTES_PULLED_SERVED.inc(int(response["Content-Length"]))
        uploads.release_database_connection(int(response["Content-Length"]))
        return response

    def delete(self, request: HttpRequest, digest: str) -> HttpResponse:
        digest = _digest_or_error(digest)
        deleted, _ = RepositoryBlob.objects.filter(repository=self.repository, blob__digest=digest).delete()
        if not deleted:
            raise BlobUnknown(detail={"digest": digest})
        return empty(202)


class UploadStartView(RegistryView):
    http_method_names = ["post"]
    creates_repository = True

    def post(self, request: HttpRequest) -> HttpResponse:
        mount, source = request.GET.get("mount"), request.GET.get("from")
        if mount and source:
            mounted = self._try_mount(_digest_or_error(mount), source)
            if mounted is not None:
                return mounted
        digest = request.GET.get("digest")
        body = uploads.request_body(request)
        if digest is not None and not body.empty:
            try:
                blob = uploads.monolithic_upload(repository=self.repository, user=self.access.user,
                                                 digest=digest, body=body)
            except (uploads.IncompleteBody, OSError) as exc:
                raise BlobUploadInvalid(f"upload interrupted: {exc}") from None
            return self._created(blob)
        upload = uploads.upload_start(repository=self.repository, user=self.access.user)
        return empty(202, {
            "Location": f"/v2/{self.url_name()}/blobs/uploads/{upload.id}",
            "Docker-Upload-UUID": str(upload.id),
            "Range": "0-0",
        })

    def _try_mount(self, digest: str, source: str) -> HttpResponse | None:
        """Link a blob from `source` when the caller may pull it there; otherwise start an upload."""
        try:
            namespace, name = normalize_repository_name(source)
        except InvalidName:
            return None
        if PULL not in self.access.actions(namespace, name):
            return None
        blob = Blob.objects.filter(
            digest=digest, repository_links__repository__namespace__name=namespace,
            repository_links__repository__name=name,
        ).first()
        if blob is None:
            return None
        uploads.blob_link(repository=self.repository, blob=blob)
        return self._created(blob)

    def _created(self, blob: Blob) -> HttpResponse:
        return empty(201, {
            "Location": f"/v2/{self.url_name()}/blobs/{blob.digest}",
            "Docker-Content-Digest": blob.digest,
        })


class UploadView(RegistryView):
    http_method_names = ["get", "patch", "put", "delete"]
    method_actions = {"GET": PUSH, "PATCH": PUSH, "PUT": PUSH, "DELETE": PUSH}  # an upload is part of a push

    def _status_headers(self, upload) -> dict[str, str]:
        return {
            "Location": f"/v2/{self.url_name()}/blobs/uploads/{upload.id}",
            "Docker-Upload-UUID": str(upload.id),
            "Range": f"0-{max(upload.size - 1, 0)}",
        }

    def get(self, request: HttpRequest, upload_id: str) -> HttpResponse:
        upload = uploads.upload_get(repository=self.repository, upload_id=upload_id)
        return empty(204, self._status_headers(upload))

    def patch(self, request: HttpRequest, upload_id: str) -> HttpResponse:
        upload = uploads.upload_get(repository=self.repository, upload_id=upload_id)
        body = uploads.request_body(request)
        try:
            upload = uploads.upload_append(upload=upload, body=body,
                                           content_range=request.META.get("HTTP_CONTENT_RANGE"))
        except (uploads.IncompleteBody, OSError) as exc:
            raise BlobUploadInvalid(f"upload interrupted: {exc}") from None
        return empty(202, self._status_headers(upload))

    def put(self, request: HttpRequest, upload_id: str) -> HttpResponse:
        upload = uploads.upload_get(repository=self.repository, upload_id=upload_id)
        digest = request.GET.get("digest")
        if not digest:
            raise DigestInvalid("the digest query parameter is required")
        body = uploads.request_body(request)
        try:
            blob = uploads.upload_finish(upload=upload, digest=digest, body=body,
                                         content_range=request.META.get("HTTP_CONTENT_RANGE"))
        except (uploads.IncompleteBody, OSError) as exc:
            raise BlobUploadInvalid(f"upload interrupted: {exc}") from None
        return empty(201, {
            "Location": f"/v2/{self.url_name()}/blobs/{blob.digest}",
            "Docker-Content-Digest": blob.digest,
        })

    def delete(self, request: HttpRequest, upload_id: str) -> HttpResponse:
        upload = uploads.upload_get(repository=self.repository, upload_id=upload_id)
        uploads.upload_cancel(upload=upload)
        return empty(204)
