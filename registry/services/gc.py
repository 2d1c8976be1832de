"""Garbage collection: mark what is reachable, sweep the rest once it is older than a grace period.

Reachable: every tagged manifest, the children of a reachable index, every manifest whose
`subject` is reachable (signatures, SBOMs), and the config and layer blobs of all of those.
Anything else goes only when older than the grace period; blobs touched (HEAD, mount, link) in
that period survive. Each deletion re-checks under a row lock, so a push racing the sweep wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from registry.blobstore import blob_store
from registry.models import Blob, BlobUpload, Manifest, ManifestBlob, ManifestChild, RepositoryBlob, Tag
from repositories.models import Repository

logger = logging.getLogger(__name__)


@dataclass
class GcReport:
    manifests_deleted: int = 0
    blobs_deleted: int = 0
    bytes_freed: int = 0
    uploads_deleted: int = 0


def reachable_manifest_ids() -> set[int]:
    reachable = set(Tag.objects.values_list("manifest_id", flat=True))
    frontier = set(reachable)
    while frontier:
        children = set(ManifestChild.objects.filter(parent_id__in=frontier).values_list("child_id", flat=True))
        digests = Manifest.objects.filter(pk__in=frontier).values_list("repository_id", "digest")
        referrers: set[int] = set()
        by_repository: dict[int, list[str]] = {}
        for repository_id, digest in digests:
            by_repository.setdefault(repository_id, []).append(digest)
        for repository_id, subject_digests in by_repository.items():
            referrers |= set(Manifest.objects.filter(repository_id=repository_id,
                                                     subject_digest__in=subject_digests).values_list("pk", flat=True))
        frontier = (children | referrers) - reachable
        reachable |= frontier
    return reachable


def _sweep_manifest(manifest_id: int, cutoff) -> bool:
    with transaction.atomic():
        manifest = Manifest.objects.select_for_update().filter(pk=manifest_id, created_at__lt=cutoff).first()
        if manifest is None or Tag.objects.filter(manifest_id=manifest_id).exists():
            return False
        if ManifestChild.objects.filter(child_id=manifest_id).exists():
            return False  # still named by an index (which is swept first when unreachable)
        manifest.delete()
        return True


def sweep_blob(blob_id: int, cutoff, *, require_unlinked: bool = False) -> int:
    """Delete one blob if it is still unreferenced and untouched; returns bytes freed.

    With `require_unlinked`, a blob still linked to any repository stays (deleting a repository
    removes only the blobs no other repository uses).
    """
    with transaction.atomic():
        blob = Blob.objects.select_for_update().filter(pk=blob_id, last_touched_at__lte=cutoff).first()
        if blob is None or ManifestBlob.objects.filter(blob_id=blob_id).exists():
            return 0
        if require_unlinked and blob.repository_links.exists():
            return 0
        blob_store.delete(blob.digest)
        size = blob.size
        blob.delete()
        return size


def sweep_unlinked_blobs(blob_ids: list[int]) -> None:
    """Sweep the blobs of `blob_ids` no repository links any more (after deleting repositories)."""
    cutoff = timezone.now()
    for blob_id in blob_ids:
        sweep_blob(blob_id, cutoff, require_unlinked=True)


def collect_garbage(*, grace: timedelta | None = None, dry_run: bool = False) -> GcReport:
    grace = grace if grace is not None else timedelta(hours=settings.REGISTRY_GC_GRACE_HOURS)
    cutoff = timezone.now() - grace
    report = GcReport()
    reachable = reachable_manifest_ids()
    # Parents before children, so an unreachable index releases its children in the same run.
    candidates = list(
        Manifest.objects.filter(created_at__lt=cutoff).exclude(pk__in=reachable).order_by("-pk")
        .values_list("pk", flat=True)
    )
    for manifest_id in _parents_first(candidates):
        if dry_run or _sweep_manifest(manifest_id, cutoff):
            report.manifests_deleted += 1
    # A dry run deleted nothing: count the blobs the manifest deletions would have freed too.
    references = ManifestBlob.objects.exclude(manifest_id__in=candidates) if dry_run else ManifestBlob.objects.all()
    unreferenced = (
        Blob.objects.filter(last_touched_at__lt=cutoff, created_at__lt=cutoff)
        .exclude(pk__in=references.values("blob_id"))
        .values_list("pk", "size")
    )
    for blob_id, size in list(unreferenced):
        if dry_run:
            report.blobs_deleted += 1
            report.bytes_freed += size
            continue
        freed = sweep_blob(blob_id, cutoff)
        if freed or Blob.objects.filter(pk=blob_id).count() == 0:
            report.blobs_deleted += 1
            report.bytes_freed += freed
    logger.info("garbage collection: %s", report)
    return report


def _parents_first(manifest_ids: list[int]) -> list[int]:
    ids = set(manifest_ids)
    children = set(ManifestChild.objects.filter(parent_id__in=ids, child_id__in=ids).values_list("child_id", flat=True))
    return [i for i in manifest_ids if i not in children] + [i for i in manifest_ids if i in children]


def cleanup_stale_uploads(*, older_than: timedelta | None = None) -> int:
    """Delete uploads nobody has written to for a while, with their bytes."""
    if older_than is None:  # timedelta(0) is falsy but means "all of them"
        older_than = timedelta(hours=settings.REGISTRY_STALE_UPLOAD_HOURS)
    now = timezone.now()
    cutoff = now - older_than
    count = 0
    # Also the uploads past HUB_MAX_UPLOAD_SECONDS, however recently written (their next request is refused).
    too_old = now - timedelta(seconds=settings.HUB_MAX_UPLOAD_SECONDS)
    for upload in BlobUpload.objects.filter(Q(updated_at__lt=cutoff) | Q(created_at__lt=too_old)):
        blob_store.discard_upload(upload.id)
        upload.delete()
        count += 1
    return count


def repository_cleanup_pending(*, older_than: timedelta | None = None) -> int:
    """Delete the repositories pushes created and abandoned before their first manifest; how many.

    Abandoned: pending, created more than `older_than` ago (default: the stale-upload age), with no
    manifest, no upload left (the stale-upload sweep runs first) and no blob linked or touched in
    that time. Each is re-checked under a row lock. Nobody ever saw one, so nothing is
    announced (no repository_deleted webhook); blobs only it linked go with it.
    """
    if older_than is None:
        older_than = timedelta(hours=settings.REGISTRY_STALE_UPLOAD_HOURS)
    cutoff = timezone.now() - older_than
    deleted = 0
    for repository_id in list(Repository.objects.filter(is_pending=True, created_at__lt=cutoff)
                              .values_list("pk", flat=True)):
        with transaction.atomic():
            repository = (Repository.objects.select_for_update()
                          .filter(pk=repository_id, is_pending=True, created_at__lt=cutoff).first())
            if repository is None or repository.manifests.exists() or repository.uploads.exists():
                continue
            if RepositoryBlob.objects.filter(repository=repository).filter(
                    Q(created_at__gte=cutoff) | Q(blob__last_touched_at__gte=cutoff)).exists():
                continue  # a push linked or checked one of its blobs lately: it may be about to finish
            blob_ids = list(Blob.objects.filter(repository_links__repository=repository)
                            .values_list("pk", flat=True))
            repository.delete()
        sweep_unlinked_blobs(blob_ids)
        deleted += 1
    return deleted
