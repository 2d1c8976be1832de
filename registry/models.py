"""What the registry stores: blobs (content-addressed, shared), uploads, manifests and tags."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Blob(models.Model):
    """A verified blob in the blob storage. Stored once, however many repositories link it."""

    digest = models.CharField(max_length=135, unique=True)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    # Refreshed by HEAD, mount and link: garbage collection spares blobs touched in its grace period.
    last_touched_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.digest


class RepositoryBlob(models.Model):
    """A repository may read only the blobs linked to it."""

    repository = models.ForeignKey("repositories.Repository", on_delete=models.CASCADE, related_name="blob_links")
    blob = models.ForeignKey(Blob, on_delete=models.CASCADE, related_name="repository_links")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "blob"], name="repository_blob_unique")]

    def __str__(self) -> str:
        return f"{self.repository} → {self.blob}"


class BlobUpload(models.Model):
    """An upload in progress. Its bytes are in the blob store (registry/blobstore), as `store_state` says."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    repository = models.ForeignKey("repositories.Repository", on_delete=models.CASCADE, related_name="uploads")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    size = models.BigIntegerField(default=0, help_text="Bytes received so far.")
    # sha256 of bytes [0, size) when one request wrote all of them (the common single-PATCH path):
    # hash state cannot be kept between requests, so anything else is re-read at finalize.
    single_pass_digest = models.CharField(max_length=135, blank=True)
    # What the blob store needs to resume the upload on any node (S3: the objects holding its bytes),
    # written with `size` in one conditional update, so the two always describe the same bytes.
    store_state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return str(self.id)


class Manifest(models.Model):
    """A manifest or index, kept as the exact bytes the client pushed."""

    repository = models.ForeignKey("repositories.Repository", on_delete=models.CASCADE, related_name="manifests")
    digest = models.CharField(max_length=135)
    media_type = models.CharField(max_length=255)
    artifact_type = models.CharField(max_length=255, blank=True)
    content = models.BinaryField()
    size = models.IntegerField()
    subject_digest = models.CharField(max_length=135, blank=True, db_index=True)
    config_digest = models.CharField(max_length=135, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    # [{"os", "architecture", "variant", "digest", "size"}]: one entry for an image, one per child for an index.
    platforms = models.JSONField(default=list, blank=True)
    total_size = models.BigIntegerField(default=0, help_text="Compressed size of config and layers.")
    created_at = models.DateTimeField(default=timezone.now)
    pushed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "digest"], name="manifest_unique_digest")]

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def is_index(self) -> bool:
        return bool(self.platforms) and self.media_type in {
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
        }


class ManifestBlob(models.Model):
    """A blob (config or layer) named by a manifest."""

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="blob_refs")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="manifest_refs")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest", "blob"], name="manifest_blob_unique")]

    def __str__(self) -> str:
        return f"{self.manifest_id} → {self.blob_id}"


class ManifestChild(models.Model):
    """A manifest named by an index."""

    parent = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="child_refs")
    child = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="parent_refs")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["parent", "child"], name="manifest_child_unique")]

    def __str__(self) -> str:
        return f"{self.parent_id} → {self.child_id}"


class MirrorPendingLink(models.Model):
    """A blob (or, for an index, a child manifest) a mirrored manifest names that was not here when the
    manifest was stored (registry/mirror/service.py): when it lands, only these rows say which
    manifests to link it to, so a fetch never re-reads the repository's manifests."""

    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="+")
    digest = models.CharField(max_length=135)
    is_child = models.BooleanField(default=False)  # a child manifest of an index, not a blob

    class Meta:
        constraints = [models.UniqueConstraint(fields=["manifest", "digest", "is_child"],
                                               name="mirror_pending_link_unique")]
        indexes = [models.Index(fields=["digest"], name="mirror_pending_link_digest")]

    def __str__(self) -> str:
        return f"{self.manifest_id} → {self.digest}"


class Tag(models.Model):
    repository = models.ForeignKey("repositories.Repository", on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=128)
    manifest = models.ForeignKey(Manifest, on_delete=models.CASCADE, related_name="tags")
    pushed_at = models.DateTimeField(default=timezone.now)
    pushed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_pulled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "name"], name="tag_unique_name")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.repository}:{self.name}"


class PendingPull(models.Model):
    """Pulls not yet counted, in the embedded default (Redis holds these when configured).

    Each web process sums its pulls in memory and writes one row per (repository, tag, day) every
    few seconds, so the hot path never waits for SQLite's write lock.
    """

    repository_id = models.BigIntegerField()
    tag = models.CharField(max_length=128, blank=True)
    day = models.DateField()
    count = models.IntegerField(default=1)
    pulled_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.repository_id}:{self.tag} {self.day}"


class RetentionPolicy(models.Model):
    """What to keep in a repository, or in every repository of a namespace (registry/retention.py).

    A tag goes when no keep rule keeps it: the `keep_last` most recently pushed of the tags the
    patterns select, and those pushed or pulled within `keep_days`. Tags the patterns leave out,
    immutable tags and signature tags always stay. Untagged manifests older than `untagged_days`
    (not an index's child, not attached to another manifest) go too. A repository's own policy
    replaces its namespace's.
    """

    namespace = models.OneToOneField("accounts.Namespace", null=True, blank=True, on_delete=models.CASCADE,
                                     related_name="retention_policy")
    repository = models.OneToOneField("repositories.Repository", null=True, blank=True, on_delete=models.CASCADE,
                                      related_name="retention_policy")
    enabled = models.BooleanField(default=True)
    keep_last = models.PositiveIntegerField(null=True, blank=True)
    keep_days = models.PositiveIntegerField(null=True, blank=True)
    include_patterns = models.JSONField(default=list, blank=True)
    exclude_patterns = models.JSONField(default=list, blank=True)
    untagged_days = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        constraints = [models.CheckConstraint(
            condition=models.Q(namespace__isnull=True, repository__isnull=False)
            | models.Q(namespace__isnull=False, repository__isnull=True),
            name="retention_policy_one_scope")]
        verbose_name_plural = "retention policies"

    def __str__(self) -> str:
        return f"retention of {self.repository or self.namespace}"


class RetentionRun(models.Model):
    """One run of a policy (or a dry run): what it removed, or would have."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Daily"
        MANUAL = "manual", "Run now"
        DRY_RUN = "dry-run", "Dry run"

    policy = models.ForeignKey(RetentionPolicy, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    removed = models.JSONField(default=list)  # [{"repository", "tag" or "", "digest"}], capped
    removed_count = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")

    class Meta:
        ordering = ["-started_at", "-pk"]
        indexes = [models.Index(fields=["policy", "-started_at"], name="retention_run_recent")]

    def __str__(self) -> str:
        return f"{self.get_trigger_display()} of {self.policy} at {self.started_at:%Y-%m-%d %H:%M}"
