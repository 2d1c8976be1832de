"""Repository operations with side effects."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts import audit
from accounts.models import Namespace, User
from repositories.immutability import clean_rules
from repositories.models import Collaborator, Repository, Star, TeamPermission, validate_repository_name
from repositories.signals import repositories_deleting, repository_deleted


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
            created = Repository.objects.create(namespace=namespace, name=name, is_pending=pending, **values)
            audit.record("repo.create", account=namespace, name=f"{namespace.name}/{name}", actor=user,
                         data={"is_private": is_private, **({"by_push": True} if pending else {})})
            return created
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


def repository_set_immutable_tags(*, repository: Repository, enabled: bool, rules: object = ()) -> Repository:
    """Docker Hub's three choices: off; on with no rules (every tag); on with rules (the tags they match).
    Rules are checked (repositories/immutability.py); ValidationError names the first bad one."""
    cleaned = clean_rules(list(rules) if isinstance(rules, tuple) else rules) if enabled else []
    repository.immutable_tags = bool(enabled)
    repository.immutable_tags_rules = cleaned
    with transaction.atomic():
        repository.save(update_fields=["immutable_tags", "immutable_tags_rules", "updated_at"])
        audit.record("repo.immutable_tags", account=repository.namespace, name=repository.full_name,
                     data={"enabled": bool(enabled), "rules": cleaned})
    return repository


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
    was_private = repository.is_private
    if is_private is not None:
        repository.is_private = is_private
        fields.append("is_private")
    if fields:
        with transaction.atomic():
            repository.save(update_fields=[*fields, "updated_at"])
            if is_private is not None and is_private != was_private:
                audit.record("repo.change_privacy", account=repository.namespace, name=repository.full_name,
                             data={"is_private": is_private})
            if set(fields) - {"is_private"}:
                audit.record("repo.update", account=repository.namespace, name=repository.full_name,
                             data={"fields": sorted(set(fields) - {"is_private"})})
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


def _announce_deleting(repositories: list[Repository]) -> list:
    """Tell the apps above (registry) these rows are about to go; what they want done once they are gone."""
    responses = repositories_deleting.send(sender=Repository, repositories=repositories)
    return [after for _, after in responses if callable(after)]


def repository_delete(*, repository: Repository, user=None) -> None:
    """Delete a repository: its tags, manifests and the blobs no other repository uses.

    Pulls of it then fail with NAME_UNKNOWN (or the same 401 a stranger gets).
    """
    with transaction.atomic():
        after_deletion = _announce_deleting([repository])
        repository_deleted.send(sender=Repository, repository_snapshot=repository_snapshot(repository), user=user)
        audit.record("repo.delete", account=repository.namespace, name=repository.full_name, actor=user)
        repository.delete()
    for after in after_deletion:
        after()


def repository_delete_pending(*, namespace: Namespace) -> int:
    """Delete `namespace`'s pending repositories (pushes that never sent a manifest) with their uploads'
    staged bytes and the blobs only they linked; how many. Nobody ever saw one, so nothing is announced.
    Call inside the transaction that holds the namespace's row lock (organization deletion)."""
    repositories = list(Repository.objects.select_for_update().filter(namespace=namespace, is_pending=True))
    if not repositories:
        return 0
    after_deletion = _announce_deleting(repositories)
    Repository.objects.filter(pk__in=[repository.pk for repository in repositories]).delete()
    for after in after_deletion:
        after()
    return len(repositories)


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
    with transaction.atomic():
        collaborator, created = Collaborator.objects.get_or_create(repository=repository, user=user)
        if not created:
            raise ValidationError(f"{user.username} is already a collaborator.", code="duplicate")
        audit.record("repo.collaborator.add", account=repository.namespace, name=repository.full_name,
                     data={"collaborator": user.username})
    return collaborator


def collaborator_remove(*, repository: Repository, username: str) -> None:
    with transaction.atomic():
        deleted, _ = Collaborator.objects.filter(repository=repository, user__username=username).delete()
        if not deleted:
            raise ValidationError(f"{username} is not a collaborator.", code="not_collaborator")
        audit.record("repo.collaborator.remove", account=repository.namespace, name=repository.full_name,
                     data={"collaborator": username})


def team_permission_set(*, repository: Repository, team, permission: str):
    if repository.namespace.organization_id is None or team.organization_id != repository.namespace.organization_id:
        raise ValidationError("Only teams of the repository's organization can be given access.", code="team")
    if permission not in TeamPermission.Level.values:
        raise ValidationError("Permission must be read, write or admin.", code="permission")
    with transaction.atomic():
        grant, _ = TeamPermission.objects.update_or_create(repository=repository, team=team,
                                                           defaults={"permission": permission})
        audit.record("repo.team_permission.set", account=repository.namespace, name=repository.full_name,
                     data={"team": team.name, "permission": permission})
    return grant


def team_permission_remove(*, repository: Repository, team) -> None:
    with transaction.atomic():
        deleted, _ = TeamPermission.objects.filter(repository=repository, team=team).delete()
        if not deleted:
            raise ValidationError(f"Team {team.name} has no access to this repository.", code="not_granted")
        audit.record("repo.team_permission.remove", account=repository.namespace, name=repository.full_name,
                     data={"team": team.name})
