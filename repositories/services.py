"""Repository operations with side effects."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Namespace, User
from registry import storage
from registry.models import Blob, BlobUpload, RepositoryBlob
from registry.services.gc import sweep_blob
from registry.signals import repository_deleted
from repositories.models import Collaborator, Repository, Star, TeamPermission, validate_repository_name


def namespace_default_private(namespace: Namespace) -> bool:
    if namespace.user is not None:
        return namespace.user.default_private or settings.DEFAULT_REPOSITORY_PRIVATE
    if namespace.organization is not None:
        return namespace.organization.default_private or settings.DEFAULT_REPOSITORY_PRIVATE
    return False


def repository_create(*, namespace: Namespace, name: str, user=None, is_private: bool | None = None,
                      description: str = "", full_description: str = "", pending: bool = False) -> Repository:
    """Create a repository; the caller has checked the user may create in `namespace`.

    `pending` for a registry push's implicit create (Repository.is_pending). A create on purpose of
    a name a push left pending takes that repository over (made visible, with these settings): the
    name stays taken by one row, and the person creating it is not told it exists when they cannot
    see it.
    """
    validate_repository_name(name)
    if namespace.is_tombstone:
        raise ValidationError("This namespace no longer exists.", code="tombstone")
    if len(description) > 100:
        raise ValidationError("The short description is limited to 100 characters.", code="description")
    if is_private is None:
        is_private = namespace_default_private(namespace)
    values = {"is_private": is_private, "created_by": user, "description": description,
              "full_description": full_description}
    try:
        with transaction.atomic():
            return Repository.objects.create(namespace=namespace, name=name, is_pending=pending, **values)
    except IntegrityError:
        pass
    # Only while it is still pending: the push's first manifest, or another create, may have won.
    if not pending and Repository.objects.filter(namespace=namespace, name=name, is_pending=True).update(
            is_pending=False, created_at=timezone.now(), **values):
        return Repository.objects.select_related("namespace").get(namespace=namespace, name=name)
    raise ValidationError(f"{namespace.name}/{name} already exists.", code="taken")


def repository_get_or_create_for_push(*, namespace: Namespace, name: str, user) -> Repository:
    """The repository a push goes to, created pending on first push (the token already allowed it)."""
    repository = Repository.objects.filter(namespace=namespace, name=name).select_related("namespace").first()
    if repository is not None:
        return repository
    try:
        return repository_create(namespace=namespace, name=name, user=user, pending=True)
    except ValidationError:
        # Lost a race with a concurrent first push: the repository exists now.
        return Repository.objects.select_related("namespace").get(namespace=namespace, name=name)


def repository_update(*, repository: Repository, description: str | None = None,
                      full_description: str | None = None, is_private: bool | None = None) -> Repository:
    fields = []
    if description is not None:
        if len(description) > 100:
            raise ValidationError("The short description is limited to 100 characters.", code="description")
        repository.description = description
        fields.append("description")
    if full_description is not None:
        if len(full_description) > 25000:
            raise ValidationError("The full description is limited to 25,000 characters.", code="full_description")
        repository.full_description = full_description
        fields.append("full_description")
    if is_private is not None:
        repository.is_private = is_private
        fields.append("is_private")
    if fields:
        repository.save(update_fields=[*fields, "updated_at"])
    return repository


def repository_snapshot(repository: Repository) -> dict:
    """What is worth remembering about a repository once it is gone (webhook history, audit)."""
    return {
        "id": repository.pk,
        "namespace": repository.namespace.name,
        "name": repository.name,
        "repo_name": repository.display_name,
        "is_private": repository.is_private,
        "is_official": repository.is_official,
        "is_automated": repository.is_automated,
        "description": repository.description,
        "full_description": repository.full_description,
        "star_count": repository.star_count,
        "date_created": int(repository.created_at.timestamp()),
    }


def repository_delete(*, repository: Repository, user=None) -> None:
    """Delete a repository: its tags, manifests and the blobs no other repository uses.

    Pulls of it then fail with NAME_UNKNOWN (or the same 401 a stranger gets).
    """
    with transaction.atomic():
        blob_ids = list(Blob.objects.filter(repository_links__repository=repository).values_list("pk", flat=True))
        repository_deleted.send(sender=Repository, repository_snapshot=repository_snapshot(repository), user=user)
        repository.delete()
    _sweep_unlinked_blobs(blob_ids)


def _sweep_unlinked_blobs(blob_ids: list[int]) -> None:
    cutoff = timezone.now()
    for blob_id in blob_ids:
        sweep_blob(blob_id, cutoff, require_unlinked=True)


def repository_delete_pending(*, namespace: Namespace) -> int:
    """Delete `namespace`'s pending repositories (pushes that never sent a manifest) with their uploads'
    staged bytes and the blobs only they linked; how many. Nobody ever saw one, so nothing is announced.
    Call inside the transaction that holds the namespace's row lock (organization deletion)."""
    repositories = list(Repository.objects.select_for_update().filter(namespace=namespace, is_pending=True))
    if not repositories:
        return 0
    blob_ids = list(Blob.objects.filter(repository_links__repository__in=repositories).values_list("pk", flat=True))
    for upload_id in BlobUpload.objects.filter(repository__in=repositories).values_list("pk", flat=True):
        storage.discard_staged(upload_id)  # a PATCH still writing finds its upload gone and writes nothing
    Repository.objects.filter(pk__in=[repository.pk for repository in repositories]).delete()
    _sweep_unlinked_blobs(blob_ids)
    return len(repositories)


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
        _sweep_unlinked_blobs(blob_ids)
        deleted += 1
    return deleted


def star_add(*, repository: Repository, user) -> bool:
    """Star a repository; returns False when it was already starred."""
    with transaction.atomic():
        _, created = Star.objects.get_or_create(repository=repository, user=user)
        if created:
            Repository.objects.filter(pk=repository.pk).update(star_count=F("star_count") + 1)
            repository.star_count += 1
    return created


def star_remove(*, repository: Repository, user) -> bool:
    with transaction.atomic():
        deleted, _ = Star.objects.filter(repository=repository, user=user).delete()
        if deleted:
            Repository.objects.filter(pk=repository.pk, star_count__gt=0).update(star_count=F("star_count") - 1)
            repository.star_count = max(0, repository.star_count - 1)
    return bool(deleted)


def collaborator_add(*, repository: Repository, username: str):
    if repository.namespace.user is None:
        raise ValidationError("Organization repositories use team permissions, not collaborators.", code="org")
    user = User.objects.filter(username=username.strip().lower(), is_active=True).first()
    if user is None:
        raise ValidationError(f"There is no user called “{username}”.", code="unknown_user")
    if user.pk == repository.namespace.user_id:
        raise ValidationError("The owner already has full access.", code="owner")
    collaborator, created = Collaborator.objects.get_or_create(repository=repository, user=user)
    if not created:
        raise ValidationError(f"{user.username} is already a collaborator.", code="duplicate")
    return collaborator


def collaborator_remove(*, repository: Repository, username: str) -> None:
    deleted, _ = Collaborator.objects.filter(repository=repository, user__username=username).delete()
    if not deleted:
        raise ValidationError(f"{username} is not a collaborator.", code="not_collaborator")


def team_permission_set(*, repository: Repository, team, permission: str):
    if repository.namespace.organization_id is None or team.organization_id != repository.namespace.organization_id:
        raise ValidationError("Only teams of the repository's organization can be given access.", code="team")
    if permission not in TeamPermission.Level.values:
        raise ValidationError("Permission must be read, write or admin.", code="permission")
    grant, _ = TeamPermission.objects.update_or_create(repository=repository, team=team,
                                                       defaults={"permission": permission})
    return grant


def team_permission_remove(*, repository: Repository, team) -> None:
    deleted, _ = TeamPermission.objects.filter(repository=repository, team=team).delete()
    if not deleted:
        raise ValidationError(f"Team {team.name} has no access to this repository.", code="not_granted")
