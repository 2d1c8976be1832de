"""Pull through: what a mirrored name serves, fetched from its upstream on a miss (README, "Pull-through cache").

- Manifests are stored as the mirrored repository's own (write-once rows, the exact bytes, their
  sha256 computed and, for a digest reference, checked by the upstream client). A tag is asked
  again with a HEAD at most once per HUB_MIRROR_TTL_SECONDS (one request of the cluster does it:
  a cache.add claim), a digest never. An index's children are fetched when a client asks for them.
- Blobs are streamed to the client while they are written to the blob store, hashed on the way;
  only bytes that hash to the digest are published and linked to the repository, so a second
  client never gets unverified bytes. One request fetches (registry/mirror/flight.py); the others
  wait for the blob to land and read it from the store.
- When the upstream is down or rate-limits us, a cached tag is served as it is, with
  `X-Wharf-Mirror: stale` and `Warning: 110 - "stale: upstream unavailable"`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Namespace
from lib.outbound import parse_networks
from oci.digests import InvalidDigest, parse_digest
from oci.manifests import InvalidManifest, parse_manifest
from registry.errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    TooManyRequests,
)
from registry.mirror import flight
from registry.mirror.eviction import mark_active, waited_for_eviction
from registry.mirror.upstream import (
    BlobInfo,
    DigestMismatch,
    FetchedManifest,
    UpstreamClient,
    UpstreamDenied,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRateLimited,
)
from registry.models import Blob, BlobUpload, Manifest, ManifestBlob, ManifestChild, MirrorPendingLink, Tag
from registry.services import uploads
from registry.services.manifests import _platforms_of_image, _platforms_of_index, is_digest_reference
from repositories.models import Repository

logger = logging.getLogger(__name__)

HEADER = "X-Wharf-Mirror"
HIT, MISS, REVALIDATED, STALE = "hit", "miss", "revalidated", "stale"
STALE_WARNING = '110 - "stale: upstream unavailable"'
WRITE_BYTES = 8 * 1024 * 1024  # the blob store is written in pieces of this size while streaming
WAIT_POLL_SECONDS = 0.25
WAIT_MAX_SECONDS = 900.0


class UpstreamFailed(RegistryError):
    """The upstream could not answer and nothing is cached (Docker's UNAVAILABLE code)."""

    code, status, message = "UNAVAILABLE", 503, "the mirrored registry is unavailable"


def mirror_headers(state: str) -> dict[str, str]:
    headers = {HEADER: state}
    if state == STALE:
        headers["Warning"] = STALE_WARNING
    return headers


# --- Rows --------------------------------------------------------------------------------------


def mirror_namespace(prefix: str) -> Namespace:
    """The reserved namespace of a prefix (made on first use; no user or organization owns it)."""
    namespace = Namespace.objects.filter(name=prefix).first()
    if namespace is None:
        try:
            with transaction.atomic():
                namespace = Namespace.objects.create(name=prefix, kind=Namespace.Kind.MIRROR, storage_quota_bytes=0)
        except IntegrityError:
            namespace = Namespace.objects.get(name=prefix)
    if namespace.kind != Namespace.Kind.MIRROR:  # the start-up check says so too (registry/mirror/checks.py)
        raise UpstreamFailed(f"the mirror prefix {prefix!r} is also an account's namespace: ask the operator")
    return namespace


def mirror_repository(prefix: str, name: str) -> Repository:
    """The repository holding what `prefix/name` fetched (private: lists and pages never show it as
    somebody's; the registry's mirror rules decide who pulls it)."""
    namespace = mirror_namespace(prefix)
    repository = Repository.objects.select_related("namespace").filter(namespace=namespace, name=name).first()
    if repository is None:
        try:
            with transaction.atomic():
                repository = Repository.objects.create(namespace=namespace, name=name, is_private=True,
                                                       description=f"mirror of {upstream_display(prefix, name)}")
        except IntegrityError:
            repository = Repository.objects.get(namespace=namespace, name=name)
        repository.namespace = namespace
    return repository


def upstream_display(prefix: str, name: str) -> str:
    """`docker.io/library/alpine`: where a mirrored repository comes from, as people write it."""
    return f"{settings.HUB_MIRRORS[prefix].display}/{name}"


# --- Upstream clients ----------------------------------------------------------------------------

_clients: dict[str, UpstreamClient] = {}
_clients_lock = threading.Lock()


def client_for(prefix: str) -> UpstreamClient:
    """One client per prefix and process (it caches the upstream's tokens)."""
    mirror = settings.HUB_MIRRORS[prefix]
    limit = settings.HUB_MAX_BLOB_BYTES  # a blob fetched upstream is bounded like a pushed one
    client = _clients.get(prefix)
    if (client is None or getattr(client, "mirror", mirror) != mirror
            or getattr(client, "max_blob_bytes", limit) != limit):
        with _clients_lock:
            client = UpstreamClient(mirror, allowed_networks=parse_networks(settings.HUB_WEBHOOK_ALLOWED_NETWORKS),
                                    max_blob_bytes=limit)
            _clients[prefix] = client
    return client


def _refusal(error: UpstreamError, *, missing: RegistryError) -> RegistryError:
    """What the client is told when the upstream fails and nothing cached can answer."""
    if isinstance(error, UpstreamNotFound):
        return missing
    if isinstance(error, UpstreamRateLimited):
        retry = getattr(error, "retry_after", None)
        return TooManyRequests(f"the mirrored registry refused: {error}",
                               headers={"Retry-After": str(retry)} if retry else None)
    if isinstance(error, UpstreamDenied):
        return missing  # the upstream will not show it: as good as unknown
    if isinstance(error, DigestMismatch):
        return DigestInvalid(f"the mirrored registry sent content that does not match its digest: {error}")
    return UpstreamFailed(f"the mirrored registry is unavailable: {error}")


# --- Manifests ----------------------------------------------------------------------------------


@dataclass
class Served:
    manifest: Manifest
    state: str  # HIT, MISS, REVALIDATED or STALE


def _cached(repository: Repository | None, reference: str) -> Manifest | None:
    if repository is None:
        return None
    if is_digest_reference(reference):
        return Manifest.objects.filter(repository=repository, digest=reference).first()
    tag = Tag.objects.filter(repository=repository, name=reference).select_related("manifest").first()
    return tag.manifest if tag is not None else None


def _check_key(repository: Repository, tag: str) -> str:
    return f"wharf:mirror:checked:{repository.pk}:{hashlib.sha256(tag.encode()).hexdigest()[:32]}"


def _check_due(repository: Repository, tag: str) -> bool:
    """True for the one request per TTL that asks the upstream about `tag` (cluster-wide with a shared
    cache); every other one serves what is cached."""
    ttl = settings.HUB_MIRROR_TTL_SECONDS
    if ttl <= 0:
        return True
    return cache.add(_check_key(repository, tag), int(time.time()), ttl)


def serve_manifest(*, prefix: str, name: str, repository: Repository | None, reference: str,
                   before_fetch: Callable[[], None] = lambda: None) -> Served:
    """The manifest `prefix/name:reference` names: cached, revalidated or fetched now.

    `before_fetch` runs before anything is fetched (the puller's rate limit: a miss spends it).
    """
    if repository is not None:
        mark_active(repository.pk)  # eviction leaves a repository being pulled alone
        if waited_for_eviction(repository.pk):  # ... unless it had already chosen it: then it is gone
            repository = (Repository.objects.select_related("namespace")
                          .filter(namespace__name=prefix, name=name).first())
    cached = _cached(repository, reference)
    if cached is not None and (is_digest_reference(reference) or not _check_due(repository, reference)):
        return Served(cached, HIT)
    client = client_for(prefix)
    if cached is not None:  # a tag due for a check: one HEAD, a GET only when it moved
        try:
            info = client.head_manifest(name, reference)
        except UpstreamNotFound:  # the tag is gone upstream: so it goes here (GC takes what it alone kept)
            Tag.objects.filter(repository=repository, name=reference).delete()
            raise ManifestUnknown(detail={"reference": reference[:200]}) from None
        except UpstreamError as exc:
            logger.info("mirror %s/%s:%s: serving the cached manifest (%s)", prefix, name, reference, exc)
            return Served(cached, STALE)
        _touch_check(repository)
        if info.digest == cached.digest:
            return Served(cached, REVALIDATED)
    lock = None
    if cached is None:  # a miss: one request fetches, the others wait for what it stores
        lock, repository, cached = _miss_flight(prefix, name, repository, reference)
        if cached is not None:
            return Served(cached, HIT)
    try:
        before_fetch()
        try:
            fetched = client.get_manifest(name, reference)
        except UpstreamError as exc:
            if cached is not None and not isinstance(exc, UpstreamNotFound):
                return Served(cached, STALE)
            missing = (ManifestUnknown(detail={"reference": reference[:200]}) if repository is not None
                       else NameUnknown(detail={"name": f"{prefix}/{name}"}))
            raise _refusal(exc, missing=missing) from None
        if repository is None:
            repository = mirror_repository(prefix, name)
        mark_active(repository.pk)
        _touch_check(repository)
        tag = None if is_digest_reference(reference) else reference
        manifest = store_manifest(repository=repository, fetched=fetched, tag=tag)
        if tag is not None and cached is None and settings.HUB_MIRROR_TTL_SECONDS > 0:  # just fetched: fresh
            cache.set(_check_key(repository, tag), int(time.time()), settings.HUB_MIRROR_TTL_SECONDS)
        return Served(manifest, MISS)
    finally:
        if lock is not None:
            lock.release()


def _miss_flight(prefix: str, name: str, repository: Repository | None, reference: str
                 ) -> tuple[flight.FlightLock | None, Repository | None, Manifest | None]:
    """Hold the fetch of a missing manifest, or wait until another request stored it: (lock held or
    None, the repository, the manifest if it landed meanwhile)."""
    lock = flight.FlightLock(f"manifest:{prefix}/{name}@{reference}")
    deadline = time.monotonic() + WAIT_MAX_SECONDS
    while True:
        acquired = lock.acquire()
        if repository is None:
            repository = (Repository.objects.select_related("namespace")
                          .filter(namespace__name=prefix, name=name).first())
        cached = _cached(repository, reference)
        if cached is not None or acquired:
            if cached is not None and acquired:
                lock.release()
            return (lock if acquired and cached is None else None), repository, cached
        if time.monotonic() > deadline:
            raise UpstreamFailed("timed out waiting for another request fetching this manifest")
        time.sleep(WAIT_POLL_SECONDS)


def _touch_check(repository: Repository) -> None:
    """Record the last upstream check (a fetch or a tag's revalidation): shown with the repository in
    explore and search, and eviction spares a repository checked lately (registry/mirror/eviction.py)."""
    now = timezone.now()
    Repository.objects.filter(pk=repository.pk).update(upstream_checked_at=now)
    repository.upstream_checked_at = now


def store_manifest(*, repository: Repository, fetched: FetchedManifest, tag: str | None) -> Manifest:
    """Keep a fetched manifest as the repository's (write-once), link what is already here, move the tag."""
    try:
        parsed = parse_manifest(fetched.body, fetched.media_type)
    except InvalidManifest as exc:
        raise UpstreamFailed(f"the mirrored registry sent an invalid manifest: {exc}") from None
    digest = fetched.digest
    blob_digests = parsed.blob_references()
    child_digests = parsed.manifest_references()
    children = _stored_children(repository, child_digests)
    if parsed.is_index:
        platforms = _platforms_of_index(parsed, children)
        total_size = sum(p["size"] for p in platforms)
    else:
        platforms = _platforms_of_image(parsed, digest) if parsed.config is not None else []
        total_size = sum(layer.size for layer in parsed.layers) + (parsed.config.size if parsed.config else 0)
    now = timezone.now()
    with transaction.atomic():
        manifest, created = Manifest.objects.get_or_create(
            repository=repository, digest=digest,
            defaults={
                "media_type": parsed.media_type, "artifact_type": parsed.artifact_type or "",
                "content": fetched.body, "size": len(fetched.body),
                "subject_digest": parsed.subject.digest if parsed.subject else "",
                "config_digest": parsed.config.digest if parsed.config else "",
                "annotations": parsed.annotations, "platforms": platforms, "total_size": total_size,
                "created_at": now,
            },
        )
        missing_blobs: list[str] = []
        missing_children: list[str] = []
        if created:
            linked = _linked_blobs(repository, blob_digests)
            ManifestBlob.objects.bulk_create([ManifestBlob(manifest=manifest, blob=b) for b in linked],
                                             ignore_conflicts=True)
            ManifestChild.objects.bulk_create([ManifestChild(parent=manifest, child=c) for c in children.values()],
                                              ignore_conflicts=True)
            # What is not here yet is linked when it lands (_link_to_manifests, _link_to_parents).
            here = {b.digest for b in linked}
            missing_blobs = [d for d in blob_digests if d not in here]
            missing_children = [d for d in child_digests if d not in children]
            MirrorPendingLink.objects.bulk_create(
                [MirrorPendingLink(manifest=manifest, digest=d) for d in missing_blobs]
                + [MirrorPendingLink(manifest=manifest, digest=d, is_child=True) for d in missing_children],
                ignore_conflicts=True)
        if tag is not None:
            Tag.objects.update_or_create(repository=repository, name=tag,
                                         defaults={"manifest": manifest, "pushed_at": now})
            Repository.objects.filter(pk=repository.pk).update(last_pushed_at=now)
    if created:
        # After the commit, on both sides of a race: a blob or child that landed while this manifest was
        # being stored links its pending rows after its own commit too, so one of the two sees the other.
        _link_to_parents(repository, manifest)
        _link_what_landed(repository, manifest, missing_blobs, missing_children)
    if isinstance(manifest.content, memoryview):
        manifest.content = bytes(manifest.content)
    return manifest


def _stored_children(repository: Repository, digests: list[str]) -> dict[str, Manifest]:
    return {m.digest: m for m in Manifest.objects.filter(repository=repository, digest__in=digests)} if digests else {}


def _linked_blobs(repository: Repository, digests: list[str]) -> list[Blob]:
    return list(Blob.objects.filter(digest__in=digests, repository_links__repository=repository)) if digests else []


def _link_what_landed(repository: Repository, manifest: Manifest, blob_digests: list[str],
                      child_digests: list[str]) -> None:
    """Link the blobs and children a just-stored manifest recorded as missing that landed meanwhile (a
    fetch racing the store: it read the pending rows before they were committed). Without this the
    reference would stay unrecorded, and garbage collection could take a blob the manifest needs.
    Usually nothing landed: one or two queries."""
    blobs = _linked_blobs(repository, blob_digests)
    children = list(_stored_children(repository, child_digests).values())
    if not blobs and not children:
        return
    with transaction.atomic():
        ManifestBlob.objects.bulk_create([ManifestBlob(manifest=manifest, blob=b) for b in blobs],
                                         ignore_conflicts=True)
        ManifestChild.objects.bulk_create([ManifestChild(parent=manifest, child=c) for c in children],
                                          ignore_conflicts=True)
        MirrorPendingLink.objects.filter(manifest=manifest, digest__in=[b.digest for b in blobs], is_child=False
                                         ).delete()
        MirrorPendingLink.objects.filter(manifest=manifest, digest__in=[c.digest for c in children], is_child=True
                                         ).delete()


def _pending(repository: Repository, digest: str, *, is_child: bool):
    return MirrorPendingLink.objects.filter(digest=digest, is_child=is_child, manifest__repository=repository)


def _link_to_parents(repository: Repository, child: Manifest) -> None:
    """An index fetched before its child names it: record the edge (garbage collection follows it).
    Only the indexes that recorded the child as missing are read (MirrorPendingLink)."""
    pending = dict(_pending(repository, child.digest, is_child=True).values_list("pk", "manifest_id"))
    if pending:
        ManifestChild.objects.bulk_create([ManifestChild(parent_id=p, child=child) for p in pending.values()],
                                          ignore_conflicts=True)
        MirrorPendingLink.objects.filter(pk__in=pending).delete()


def _link_to_manifests(repository: Repository, blob: Blob) -> None:
    """A blob fetched after the manifests naming it: record the references (garbage collection keeps it).
    Only the manifests that recorded the blob as missing are read (MirrorPendingLink), so a fetch costs
    two small queries however many manifests the repository holds."""
    with transaction.atomic():
        pending = dict(_pending(repository, blob.digest, is_child=False).values_list("pk", "manifest_id"))
        if pending:
            ManifestBlob.objects.bulk_create([ManifestBlob(manifest_id=m, blob=blob) for m in pending.values()],
                                             ignore_conflicts=True)
            MirrorPendingLink.objects.filter(pk__in=pending).delete()


# --- Blobs --------------------------------------------------------------------------------------


def linked_blob(repository: Repository, digest: str) -> Blob | None:
    """The blob if it is linked to the mirrored repository (every blob request of a mirrored name asks
    this first: it marks the repository in use, see registry/mirror/eviction.py)."""
    mark_active(repository.pk)
    return Blob.objects.filter(digest=digest, repository_links__repository=repository).first()


class BlobFetch:
    """A blob being fetched by this request: iterate for the bytes (they are stored on the way). If the
    client hangs up, the fetch still runs to its end and stores the blob: others may be waiting for it,
    and the upstream's bytes are already being paid for."""

    def __init__(self, *, repository: Repository, prefix: str, digest: str, lock: flight.FlightLock, stream) -> None:
        self.repository, self.prefix, self.digest, self.lock = repository, prefix, digest, lock
        self.stream = stream
        self.size: int | None = getattr(stream, "size", None)

    def __iter__(self) -> Iterator[bytes]:
        upload = uploads.upload_start(repository=self.repository, user=None)
        stored = False
        try:
            with self.stream, uploads._locked(upload) as writer:
                hasher, offset, pending, pending_size = hashlib.sha256(), 0, [], 0
                client_gone = False
                for chunk in self.stream:  # the client raises DigestMismatch after the last chunk if it differs
                    hasher.update(chunk)
                    if not client_gone:
                        try:
                            yield chunk
                        except GeneratorExit:  # our client hung up: finish storing it for those who wait
                            client_gone = True
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= WRITE_BYTES:
                        offset += writer.append(offset, pending)
                        pending, pending_size = [], 0
                    self.lock.renew()  # a Redis lease outlives a slow upstream (at most one call per 5 s)
                    mark_active(self.repository.pk)  # and eviction waits for it (one cache write per 30 s)
                if pending:
                    offset += writer.append(offset, pending)
                computed = f"sha256:{hasher.hexdigest()}"
                if computed != self.digest:  # checked here too: never publish what we did not hash
                    raise DigestMismatch(f"expected {self.digest}, got {computed}")
                upload.size = offset
                blob = uploads._publish(upload, self.digest, writer)
                stored = True
            _link_to_manifests(self.repository, blob)
        except UpstreamError as exc:
            logger.warning("mirror %s: blob %s from %s not stored: %s", self.prefix, self.digest,
                           self.repository.name, exc)
            raise
        finally:
            if not stored and BlobUpload.objects.filter(pk=upload.pk).exists():
                uploads.upload_cancel(upload=upload)
            self.lock.release()


def named_here(repository: Repository, digest: str) -> bool:
    """True when a manifest of the mirrored repository names the blob `digest` (as its config or a layer).

    Only such blobs are asked of the upstream: a manifest is fetched only on a miss that spent the
    puller's pull limit, so blobs cannot fill the cache (or spend the upstream's budget) around it, and
    nobody probes the upstream for arbitrary digests through Wharf. A named blob not here yet has a
    MirrorPendingLink row until it lands; the ManifestBlob test covers one linked when its manifest came.
    """
    return (MirrorPendingLink.objects.filter(manifest__repository=repository, digest=digest, is_child=False).exists()
            or ManifestBlob.objects.filter(manifest__repository=repository, blob__digest=digest).exists())


def _fetchable(repository: Repository, digest: str) -> None:
    """BLOB_UNKNOWN, without asking the upstream, for a digest a mirror never fetches."""
    try:
        parsed = parse_digest(digest)
    except InvalidDigest:
        raise BlobUnknown(detail={"digest": digest}) from None
    if parsed.algorithm != "sha256":
        raise BlobUnknown("a mirror fetches sha256 blobs only", detail={"digest": digest})
    if not named_here(repository, digest):
        raise BlobUnknown("no manifest of this mirrored repository names this blob: pull a manifest first",
                          detail={"digest": digest})


def fetch_blob(*, repository: Repository, prefix: str, digest: str,
               wait: Callable[[float], None] = time.sleep) -> BlobFetch | Blob:
    """A blob not linked to the mirrored repository: either this request fetches it (a BlobFetch to
    stream), or another one is fetching it and this returns the stored Blob once it has landed."""
    _fetchable(repository, digest)
    lock = flight.FlightLock(f"{repository.pk}:{digest}")
    deadline = time.monotonic() + WAIT_MAX_SECONDS
    while not lock.acquire():
        blob = linked_blob(repository, digest)
        if blob is not None:
            return blob
        if time.monotonic() > deadline:
            raise UpstreamFailed("timed out waiting for another request fetching this blob")
        wait(WAIT_POLL_SECONDS)
    try:
        blob = linked_blob(repository, digest)  # it landed while we waited for the lock
        if blob is not None:
            lock.release()
            return blob
        stream = client_for(prefix).open_blob(repository.name, digest)
    except UpstreamError as exc:
        lock.release()
        raise _refusal(exc, missing=BlobUnknown(detail={"digest": digest})) from None
    except BaseException:
        lock.release()
        raise
    return BlobFetch(repository=repository, prefix=prefix, digest=digest, lock=lock, stream=stream)


def head_blob(*, repository: Repository, prefix: str, digest: str) -> BlobInfo:
    """What the upstream says of a blob not linked here (a HEAD on a miss): asked with a HEAD, nothing
    fetched or stored, so a HEAD costs neither the upstream's bandwidth nor the cache's room."""
    _fetchable(repository, digest)
    try:
        return client_for(prefix).head_blob(repository.name, digest)
    except UpstreamError as exc:
        raise _refusal(exc, missing=BlobUnknown(detail={"digest": digest})) from None


def sliced(fetch: BlobFetch, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end] of a blob being fetched (a Range request on a miss): the client gets its range
    as it passes; once it is past (or the client hung up), closing the fetch runs it on to the end and
    stores the whole blob (see BlobFetch), as the requests waiting for it expect."""
    chunks = iter(fetch)
    offset = 0
    try:
        for chunk in chunks:
            low, high = max(start - offset, 0), min(end + 1 - offset, len(chunk))
            offset += len(chunk)
            if low < high:
                yield chunk[low:high]
            if offset > end:
                break
    finally:
        try:
            chunks.close()
        except UpstreamError:  # the rest failed (BlobFetch logged it, nothing stored); the range was sent
            pass


def store_only(chunks, *, digest: str) -> None:
    """Run a fetch to its end without a client reading it (a HEAD on a miss)."""
    try:
        for _ in chunks:
            pass
    except UpstreamError as exc:
        raise _refusal(exc, missing=BlobUnknown(detail={"digest": digest})) from None
