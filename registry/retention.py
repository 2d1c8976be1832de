"""Retention policies: which tags and untagged manifests a repository keeps (models: RetentionPolicy).

`plan()` lists exactly what a run would remove; `run()` removes it through the registry's own
services, so every tag removed fires the tag-delete event (webhooks) like a delete by hand, and
records the run. A dry run is a plan recorded as a run that removed nothing. Policies run daily
from beat (`registry.run_retention_policies`) and on demand from the settings pages.

Never removed: immutable tags, signature and attestation tags (`sha256-<hex>.sig`, which go with
their image), tags the include patterns leave out or an exclude pattern names, and a manifest that
is an index's child, is attached to another manifest, or was tagged since the plan was made.
Patterns are RE2 regular expressions matched against the whole tag (repositories/immutability.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import audit
from oci.names import is_attachment_tag
from registry.errors import ManifestUnknown, TagImmutable
from registry.models import Manifest, ManifestChild, RetentionPolicy, RetentionRun, Tag
from registry.services.manifests import manifest_delete, tag_delete
from repositories.immutability import clean_rules, first_match, immutable_tags_of
from repositories.models import Repository

MAX_LISTED = 1000  # removals kept in a run's record (the count is exact)


@dataclass(frozen=True)
class Removal:
    repository: str
    tag: str  # "" for an untagged manifest
    digest: str

    def as_dict(self) -> dict[str, str]:
        return {"repository": self.repository, "tag": self.tag, "digest": self.digest}


def repositories_of(policy: RetentionPolicy) -> list[Repository]:
    """The repositories a policy governs: its own, or its namespace's that have no policy of their own."""
    if policy.repository_id is not None:
        return [policy.repository]
    return list(Repository.objects.filter(namespace_id=policy.namespace_id, retention_policy__isnull=True)
                .select_related("namespace").order_by("name"))


def plan(policy: RetentionPolicy, *, now: dt.datetime | None = None) -> list[Removal]:
    now = now or timezone.now()
    removals: list[Removal] = []
    for repository in repositories_of(policy):
        removals += _plan_repository(policy, repository, now)
    return removals


def _plan_repository(policy: RetentionPolicy, repository: Repository, now: dt.datetime) -> list[Removal]:
    protection = immutable_tags_of(repository)
    include, exclude = tuple(policy.include_patterns or ()), tuple(policy.exclude_patterns or ())
    name = repository.display_name
    removals = []
    if policy.keep_last is not None or policy.keep_days is not None:
        tags = Tag.objects.filter(repository=repository).select_related("manifest").order_by("-pushed_at", "-pk")
        selected = [tag for tag in tags
                    if not is_attachment_tag(tag.name) and protection.rule_for(tag.name) is None
                    and (not include or first_match(include, tag.name)) and not first_match(exclude, tag.name)]
        kept = set()
        if policy.keep_last is not None:
            kept |= {tag.pk for tag in selected[:policy.keep_last]}
        if policy.keep_days is not None:
            cutoff = now - dt.timedelta(days=policy.keep_days)
            kept |= {tag.pk for tag in selected
                     if tag.pushed_at >= cutoff or (tag.last_pulled_at is not None and tag.last_pulled_at >= cutoff)}
        removals += [Removal(name, tag.name, tag.manifest.digest) for tag in selected if tag.pk not in kept]
    if policy.untagged_days is not None:
        cutoff = now - dt.timedelta(days=policy.untagged_days)
        for digest in _untagged(repository).filter(created_at__lt=cutoff).values_list("digest", flat=True):
            removals.append(Removal(name, "", digest))
    return removals


def _untagged(repository: Repository):
    """Manifests with no tag that are no index's child and not attached to another manifest."""
    return (Manifest.objects.filter(repository=repository, subject_digest="", tags__isnull=True)
            .exclude(pk__in=ManifestChild.objects.filter(child__repository=repository).values("child_id"))
            .order_by("created_at"))


def run(policy: RetentionPolicy, *, trigger: str, user=None, now: dt.datetime | None = None) -> RetentionRun:
    """Remove what the plan lists (nothing for a dry run) and record the run."""
    record = RetentionRun.objects.create(policy=policy, trigger=trigger, started_by=user)
    removed: list[Removal] = []
    try:
        planned = plan(policy, now=now)
        if trigger == RetentionRun.Trigger.DRY_RUN:
            removed = planned
        else:
            repositories = {repository.display_name: repository for repository in repositories_of(policy)}
            for removal in planned:
                if _remove(repositories[removal.repository], removal):
                    removed.append(removal)
    except Exception as exc:  # noqa: BLE001 - the run's record says what failed; the next run tries again
        record.error = f"{type(exc).__name__}: {exc}"[:2000]
    record.removed = [removal.as_dict() for removal in removed[:MAX_LISTED]]
    record.removed_count = len(removed)
    record.finished_at = timezone.now()
    record.save(update_fields=["removed", "removed_count", "finished_at", "error"])
    return record


def _remove(repository: Repository, removal: Removal) -> bool:
    """Remove one planned item if it is still what the plan saw; False when it changed meanwhile."""
    if removal.tag:
        with transaction.atomic():
            tag = Tag.objects.select_for_update().filter(repository=repository, name=removal.tag).first()
            if tag is None or tag.manifest.digest != removal.digest:
                return False  # pushed again since the plan: it is a new tag now
            try:
                tag_delete(repository=repository, tag_name=removal.tag, user=None)
            except (ManifestUnknown, TagImmutable):
                return False
        return True
    with transaction.atomic():
        manifest = (Manifest.objects.select_for_update().filter(repository=repository, digest=removal.digest)
                    .first())
        if manifest is None or Tag.objects.filter(manifest=manifest).exists() \
                or ManifestChild.objects.filter(child=manifest).exists():
            return False  # tagged or referenced since the plan
        manifest_delete(repository=repository, manifest=manifest, user=None)
    return True


def run_all(*, now: dt.datetime | None = None) -> int:
    """The daily run of every enabled policy; returns how many items were removed."""
    total = 0
    for policy in RetentionPolicy.objects.filter(enabled=True).select_related("repository__namespace", "namespace"):
        total += run(policy, trigger=RetentionRun.Trigger.SCHEDULE, now=now).removed_count
    return total


def policy_save(*, policy: RetentionPolicy, user, enabled: bool, keep_last: int | None, keep_days: int | None,
                include_patterns: list[str], exclude_patterns: list[str], untagged_days: int | None) -> RetentionPolicy:
    """Save a policy's settings (patterns checked: ValidationError names the first bad one)."""
    policy.enabled = enabled
    policy.keep_last, policy.keep_days, policy.untagged_days = keep_last, keep_days, untagged_days
    policy.include_patterns = clean_rules(include_patterns)
    policy.exclude_patterns = clean_rules(exclude_patterns)
    policy.updated_by = user
    with transaction.atomic():
        policy.save()
        settings = {"enabled": enabled, "keep_last": keep_last, "keep_days": keep_days,
                    "include_patterns": policy.include_patterns, "exclude_patterns": policy.exclude_patterns,
                    "untagged_days": untagged_days}
        if policy.repository_id is not None:
            audit.record("repo.retention", account=policy.repository.namespace, name=policy.repository.full_name,
                         actor=user, data=settings)
        else:
            audit.record("org.retention", account=policy.namespace, name=policy.namespace.name, actor=user,
                         data=settings)
    return policy


def policy_for_scope(*, repository: Repository | None = None, namespace=None) -> RetentionPolicy:
    """The scope's policy, unsaved and empty when it has none yet."""
    found = RetentionPolicy.objects.filter(Q(repository=repository) if repository is not None
                                           else Q(namespace=namespace)).first()
    return found or RetentionPolicy(repository=repository, namespace=namespace, enabled=False)
