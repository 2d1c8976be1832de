"""Storage quotas and size limits (issue 19): what a namespace stores, and pushes refused past its quota.

A namespace's usage is computed from its rows, never stored, so garbage collection, tag and
manifest deletes (and retention) give the space back as soon as the rows go. It is the size of:
- the distinct blobs its manifests reference (config and layers; a layer shared by two of its
  repositories counts once; an index's children are manifests of their own);
- plus the blobs linked to its repositories (RepositoryBlob) that garbage collection still spares
  (touched or created within HUB_GC_GRACE_HOURS, as registry/services/gc.py decides), so storage
  cannot be filled with uploads that never get a manifest;
- plus its uploads in progress (BlobUpload.size).

Exactness under concurrent pushes: every change that makes bytes count (an upload's recorded size
growing, a blob linked by a mount) happens inside `charging()`, one transaction that first takes
the namespace's row lock (SELECT ... FOR UPDATE on PostgreSQL; on SQLite every transaction is
BEGIN IMMEDIATE, which serialises writers), makes the change, computes the usage again and rolls
the change back when it grew past the quota. Two pushes that each fit but not together: the second
to record its bytes sees the first's and is refused. Checks before the bytes are read (at upload
start, and on each PATCH/PUT whose Content-Length is known) are advisory: they spare a doomed
transfer, the locked check decides. Finishing an upload never adds usage (its bytes counted as an
upload become a linked blob in one transaction), so it needs no check of its own.

The refusal is DENIED with 403, as Harbor answers a push past a project's quota and as Docker Hub
answers what an account may not do: clients do not retry a 403 (they retry 5xx and 429, which would
only push the same bytes again) and print its message ("denied: storage quota exceeded ...").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import BigIntegerField, F, Func, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import Namespace
from registry.errors import BlobUploadInvalid, Denied, SizeInvalid
from registry.models import Blob, BlobUpload, ManifestBlob, RepositoryBlob


class QuotaExceeded(Denied):
    """A push past its namespace's storage quota: 403 DENIED, with the usage and the limit."""

    def __init__(self, *, namespace: str, usage: int, adding: int | None, quota: int) -> None:
        needs = f", and this push needs {human_bytes(adding)} more" if adding else ""
        super().__init__(
            f"storage quota exceeded for {namespace}: {human_bytes(usage)} used of {human_bytes(quota)}{needs}; "
            "delete tags or repositories to free space",
            detail={"namespace": namespace, "usage_bytes": usage, "quota_bytes": quota, "adding_bytes": adding},
        )


class BlobTooLarge(SizeInvalid):
    """An upload past HUB_MAX_BLOB_BYTES (the upload is cancelled)."""


class UploadTooSlow(BlobUploadInvalid):
    """An upload older than HUB_MAX_UPLOAD_SECONDS (the upload is cancelled)."""


LimitExceeded = (QuotaExceeded, BlobTooLarge, UploadTooSlow)  # the refusals that cancel the upload


def human_bytes(size: int) -> str:
    """Bytes in binary units, as the limits are usually set: 512 B, 1.5 MiB, 10 GiB."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1023.95 or unit == "PiB":
            return f"{value:.1f} {unit}".replace(".0 ", " ")
    return f"{size} B"  # pragma: no cover


@dataclass(frozen=True)
class Storage:
    """A namespace's storage: what it uses and its quota (0: none)."""

    namespace: str
    usage_bytes: int
    quota_bytes: int

    @property
    def percent(self) -> int | None:
        return min(100, self.usage_bytes * 100 // self.quota_bytes) if self.quota_bytes else None


def default_quota() -> int:
    return settings.HUB_NAMESPACE_QUOTA_BYTES


def effective_quota(namespace: Namespace) -> int:
    """The namespace's own quota when staff set one, else the site's; 0 is none."""
    own = namespace.storage_quota_bytes
    return default_quota() if own is None else own


def namespace_usage(*, namespace_id: int) -> int:
    """Bytes the namespace stores, in one statement (so one snapshot: a push finishing meanwhile,
    which turns an upload into a linked blob in one transaction, is seen before or after, never half)."""
    cutoff = timezone.now() - timedelta(hours=settings.REGISTRY_GC_GRACE_HOURS)
    referenced = ManifestBlob.objects.filter(manifest__repository__namespace_id=namespace_id).values("blob_id")
    linked = RepositoryBlob.objects.filter(repository__namespace_id=namespace_id).values("blob_id")
    blobs = Blob.objects.filter(
        Q(pk__in=referenced)
        | (Q(pk__in=linked) & (Q(last_touched_at__gte=cutoff) | Q(created_at__gte=cutoff)))
    )
    uploads = BlobUpload.objects.filter(repository__namespace_id=namespace_id)
    usage = (Namespace.objects.filter(pk=namespace_id)
             .annotate(usage=_total_size(blobs) + _total_size(uploads))
             .values_list("usage", flat=True).first())
    return usage or 0


def _total_size(queryset) -> Coalesce:
    """SUM(size) of `queryset` as a scalar subquery (0 when empty)."""
    total = queryset.order_by().values(total=Func(F("size"), function="SUM", output_field=BigIntegerField()))
    return Coalesce(Subquery(total), Value(0), output_field=BigIntegerField())


def namespace_storage(*, namespace: Namespace) -> Storage:
    return Storage(namespace=namespace.name, usage_bytes=namespace_usage(namespace_id=namespace.pk),
                   quota_bytes=effective_quota(namespace))


def _namespace_of(repository_id: int) -> Namespace:
    return (Namespace.objects.only("pk", "name", "storage_quota_bytes", "storage_warned_at")
            .get(repositories__pk=repository_id))


def check_room(*, repository_id: int, adding: int) -> None:
    """Refuse, before any byte is read, a push of `adding` bytes that cannot fit (advisory: no lock)."""
    namespace = _namespace_of(repository_id)
    quota = effective_quota(namespace)
    if not quota:
        return
    usage = namespace_usage(namespace_id=namespace.pk)
    if usage + adding > quota:
        raise QuotaExceeded(namespace=namespace.name, usage=usage, adding=adding, quota=quota)


@contextmanager
def charging(*, repository_id: int) -> Iterator[None]:
    """A transaction for a change that makes bytes count: refused (rolled back) past the quota.

    Without a quota the block runs in a plain transaction and nothing is computed.
    """
    with transaction.atomic():
        namespace = _namespace_of(repository_id)
        quota = effective_quota(namespace)
        if not quota:
            yield
            return
        Namespace.objects.select_for_update().filter(pk=namespace.pk).values_list("pk").first()
        before = namespace_usage(namespace_id=namespace.pk)
        yield
        after = namespace_usage(namespace_id=namespace.pk)
        if after > quota and after > before:
            raise QuotaExceeded(namespace=namespace.name, usage=before, adding=after - before, quota=quota)
        _note_warning(namespace, usage=after, quota=quota)


# --- The 80% warning ------------------------------------------------------------------------

WARN_PERCENT = 80


def past_warning(usage: int, quota: int) -> bool:
    return bool(quota) and usage * 100 >= quota * WARN_PERCENT


def _note_warning(namespace: Namespace, *, usage: int, quota: int) -> None:
    """Under the namespace's lock: the first push past 80% has the owners emailed (once, after the
    commit); a push that sees usage below 80% again re-arms the warning."""
    if past_warning(usage, quota):
        if namespace.storage_warned_at is None and Namespace.objects.filter(
                pk=namespace.pk, storage_warned_at=None).update(storage_warned_at=timezone.now()):
            from registry.tasks import send_quota_warning_task  # tasks import the services

            transaction.on_commit(lambda: send_quota_warning_task.delay(namespace.pk))
    elif namespace.storage_warned_at is not None:
        Namespace.objects.filter(pk=namespace.pk).update(storage_warned_at=None)


def namespace_owners(namespace: Namespace) -> list:
    """The people told about a namespace's storage: the account itself, or an organization's owners."""
    if namespace.user is not None:
        return [namespace.user] if namespace.user.is_active else []
    if namespace.organization is not None:
        return list(namespace.organization.owners_team.members.filter(is_active=True).order_by("pk"))
    return []


def send_quota_warning(*, namespace_id: int) -> int:
    """The one email telling the owners their namespace passed 80% of its quota; how many were sent."""
    namespace = Namespace.objects.select_related("user", "organization").filter(pk=namespace_id).first()
    if namespace is None or namespace.storage_warned_at is None:
        return 0  # usage went back below 80% meanwhile
    storage = namespace_storage(namespace=namespace)
    recipients = [user.email for user in namespace_owners(namespace) if user.email]
    if not recipients or not storage.quota_bytes:
        return 0
    subject = f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{namespace.name} has used {storage.percent}% of its storage"
    body = (f"{namespace.name} stores {human_bytes(storage.usage_bytes)} of its {human_bytes(storage.quota_bytes)} "
            f"quota ({storage.percent}%).\n\nPast the quota, pushes are refused. Delete tags or repositories you "
            "no longer need (their space comes back once garbage collection has run), or ask the site's staff "
            "for a larger quota.\n")
    return send_mail(subject, body, None, recipients)


@dataclass
class UploadLimits:
    """The size and time limits of one request's bytes, and the quota's advisory check while they stream."""

    upload: BlobUpload
    start: int
    deadline: float  # time.time() past which the upload is cancelled
    room: int | None  # bytes the quota leaves for this request (None: no quota), as checked before reading

    def chunks(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        total = self.start
        room = self.room
        for chunk in chunks:
            total += len(chunk)
            if total > settings.HUB_MAX_BLOB_BYTES:
                raise _too_large(total)
            if time.time() > self.deadline:
                raise _too_slow()
            if room is not None:
                room -= len(chunk)
                if room < 0:  # a chunked body: its length became known only now
                    check_room(repository_id=self.upload.repository_id, adding=total - self.start)
                    room = None  # the check passed (others freed space): the locked check decides
            yield chunk


def _too_large(size: int) -> BlobTooLarge:
    limit = settings.HUB_MAX_BLOB_BYTES
    return BlobTooLarge(f"blob too large: {human_bytes(size)} or more, the limit is {human_bytes(limit)}; "
                        "the upload was cancelled", detail={"size": size, "limit": limit})


def _too_slow() -> UploadTooSlow:
    limit = settings.HUB_MAX_UPLOAD_SECONDS
    return UploadTooSlow(f"upload took too long: the limit is {limit} seconds; the upload was cancelled",
                         detail={"limit_seconds": limit})


def upload_limits(*, upload: BlobUpload, start: int, length: int | None) -> UploadLimits:
    """Check an upload's next `length` bytes (None: a chunked body) before reading them.

    Raises BlobTooLarge, UploadTooSlow or QuotaExceeded (the caller cancels the upload).
    """
    deadline = upload.created_at.timestamp() + settings.HUB_MAX_UPLOAD_SECONDS
    if time.time() > deadline:
        raise _too_slow()
    if length is not None and start + length > settings.HUB_MAX_BLOB_BYTES:
        raise _too_large(start + length)
    namespace = _namespace_of(upload.repository_id)
    quota = effective_quota(namespace)
    room = None
    if quota:
        usage = namespace_usage(namespace_id=namespace.pk)
        if length is not None and usage + length > quota:
            raise QuotaExceeded(namespace=namespace.name, usage=usage, adding=length, quota=quota)
        room = quota - usage
    return UploadLimits(upload=upload, start=start, deadline=deadline, room=room)


def refuse_if_full(*, repository_id: int) -> None:
    """At an upload's start: refuse when the quota leaves no room for a single byte (advisory)."""
    namespace = _namespace_of(repository_id)
    quota = effective_quota(namespace)
    if quota and (usage := namespace_usage(namespace_id=namespace.pk)) >= quota:
        raise QuotaExceeded(namespace=namespace.name, usage=usage, adding=None, quota=quota)
