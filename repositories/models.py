"""Repositories and who may use them."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from oci.names import COMPONENT_RE


def validate_repository_name(value: str) -> None:
    if not 2 <= len(value) <= 255:
        raise ValidationError("Repository names are 2–255 characters long.", code="length")
    if not COMPONENT_RE.fullmatch(value):  # the OCI name grammar, one component (oci/names.py)
        raise ValidationError(
            "Use lowercase letters, digits and single separators (., _, __ or -), "
            "starting and ending with a letter or digit.",
            code="characters",
        )


class Repository(models.Model):
    namespace = models.ForeignKey("accounts.Namespace", on_delete=models.PROTECT, related_name="repositories")
    name = models.CharField(max_length=255, validators=[validate_repository_name])
    is_private = models.BooleanField(default=False)
    description = models.CharField(max_length=100, blank=True)
    full_description = models.TextField(max_length=25000, blank=True)
    is_automated = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    last_pushed_at = models.DateTimeField(null=True, blank=True)
    last_pulled_at = models.DateTimeField(null=True, blank=True)
    pull_count = models.BigIntegerField(default=0)
    star_count = models.IntegerField(default=0)
    source_url = models.URLField(blank=True)
    # Created by a registry push that has not pushed a manifest yet: out of every list, page and
    # API (repositories_visible_to) until its first manifest, so a push killed after its first
    # upload leaves nothing in sight; removed by the stale-upload sweep when abandoned. Its name is
    # taken all the same, and the registry treats it like any other repository.
    is_pending = models.BooleanField(default=False, db_default=False)  # rows inserted by raw SQL too
    # Immutable tags (repositories/immutability.py): on with no rules, every tag; with rules, the tags
    # a rule (a regular expression matched against the whole tag) matches.
    immutable_tags = models.BooleanField(default=False, db_default=False)
    immutable_tags_rules = models.JSONField(default=list, db_default=[], blank=True)
    # A mirrored repository (registry/mirror): when its upstream was last asked (a fetch or a tag's
    # revalidation), shown as its "last upstream check"; the cache's eviction spares one asked lately.
    upstream_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["namespace__name", "name"]
        constraints = [models.UniqueConstraint(fields=["namespace", "name"], name="repository_unique_name")]
        indexes = [models.Index(fields=["-pull_count"]), models.Index(fields=["-last_pushed_at"]),
                   # search: the exact name matches that come first (repositories.search.BestMatch)
                   models.Index(fields=["name"], name="repository_name"),
                   # the cleanup of abandoned pushes reads only the few pending rows
                   models.Index(fields=["created_at"], name="repository_pending",
                                condition=models.Q(is_pending=True))]
        verbose_name_plural = "repositories"

    def __str__(self) -> str:
        return self.full_name

    @property
    def full_name(self) -> str:
        """`namespace/name` as the registry sees it (official images are `library/name`)."""
        return f"{self.namespace.name}/{self.name}"

    @property
    def is_official(self) -> bool:
        return self.namespace.is_library

    @property
    def display_name(self) -> str:
        """The name people type: `ubuntu` for official images, `alice/app` otherwise."""
        return self.name if self.is_official else self.full_name

    @property
    def is_organization_repository(self) -> bool:
        return self.namespace.organization_id is not None


class Collaborator(models.Model):
    """A user given pull and push on someone's personal repository."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="collaborators")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="collaborations")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "user"], name="collaborator_unique")]

    def __str__(self) -> str:
        return f"{self.user} on {self.repository}"


class TeamPermission(models.Model):
    """An organization team's access to one of the organization's repositories."""

    class Level(models.TextChoices):
        READ = "read", "Read-only"
        WRITE = "write", "Read & write"
        ADMIN = "admin", "Admin"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="team_permissions")
    team = models.ForeignKey("accounts.Team", on_delete=models.CASCADE, related_name="repository_permissions")
    permission = models.CharField(max_length=5, choices=Level.choices, default=Level.READ)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "team"], name="team_permission_unique")]

    def __str__(self) -> str:
        return f"{self.team}: {self.permission} on {self.repository}"


class Star(models.Model):
    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="stars")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="stars")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "user"], name="star_unique")]

    def __str__(self) -> str:
        return f"{self.user} ★ {self.repository}"


class PullStat(models.Model):
    """Pulls of a repository per day; `tag` is empty for the repository-wide total.

    The unique (repository, tag, day) index is the only one: every read names the repository and the
    tag (the statistics: tag ''), and a repository's deletion reads its prefix. A separate
    (repository, day) index and the foreign key's own index only repeated it, at 10,000,000 rows 290
    and 69 MB (a sixth of the database) written on every flush of the pull counters."""

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="pull_stats", db_index=False)
    tag = models.CharField(max_length=128, blank=True, default="")
    day = models.DateField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["repository", "tag", "day"], name="pull_stat_unique")]

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag or '*'} {self.day}: {self.count}"
