"""Repositories' side of accounts' announcements (accounts/events.py); connected in RepositoriesConfig.ready()."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from repositories.models import Repository
from repositories.services import repository_delete, repository_delete_pending


def on_user_deleting(sender, *, namespace, user, **kwargs) -> None:
    """The user's repositories go through the repository service: webhooks get repository_delete, unshared blobs go."""
    for repository in Repository.objects.filter(namespace=namespace).select_related("namespace"):
        repository_delete(repository=repository, user=user)


def on_organization_deleting(sender, *, namespace, **kwargs) -> None:
    """An organization with repositories cannot be deleted; its pending ones (a push that never sent its
    manifest, which nobody can see or delete) go with it."""
    # Locked, so a first manifest cannot make one visible between this check and the deletion.
    if Repository.objects.select_for_update().filter(namespace=namespace, is_pending=False).exists():
        raise ValidationError(
            "Delete or transfer the organization's repositories first: an organization with "
            "repositories cannot be deleted.",
            code="has_repositories",
        )
    repository_delete_pending(namespace=namespace)
