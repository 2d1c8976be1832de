"""Repository operations with side effects."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Namespace
from repositories.models import Repository, validate_repository_name


def namespace_default_private(namespace: Namespace) -> bool:
    from django.conf import settings

    if namespace.user is not None:
        return namespace.user.default_private or settings.DEFAULT_REPOSITORY_PRIVATE
    if namespace.organization is not None:
        return namespace.organization.default_private or settings.DEFAULT_REPOSITORY_PRIVATE
    return False


def repository_create(*, namespace: Namespace, name: str, user=None, is_private: bool | None = None,
                      description: str = "", full_description: str = "") -> Repository:
    """Create a repository; the caller has checked the user may create in `namespace`."""
    validate_repository_name(name)
    if namespace.is_tombstone:
        raise ValidationError("This namespace no longer exists.", code="tombstone")
    if len(description) > 100:
        raise ValidationError("The short description is limited to 100 characters.", code="description")
    if is_private is None:
        is_private = namespace_default_private(namespace)
    try:
        with transaction.atomic():
            return Repository.objects.create(
                namespace=namespace, name=name, is_private=is_private, created_by=user,
                description=description, full_description=full_description,
            )
    except IntegrityError:
        raise ValidationError(f"{namespace.name}/{name} already exists.", code="taken") from None


def repository_get_or_create_for_push(*, namespace: Namespace, name: str, user) -> Repository:
    """The repository a push goes to, created on first push (the token already allowed it)."""
    repository = Repository.objects.filter(namespace=namespace, name=name).select_related("namespace").first()
    if repository is not None:
        return repository
    try:
        return repository_create(namespace=namespace, name=name, user=user)
    except ValidationError:
        # Lost a race with a concurrent first push: the repository exists now.
        return Repository.objects.select_related("namespace").get(namespace=namespace, name=name)
