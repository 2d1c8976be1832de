"""Helpers for the web page tests: repositories for the personas, pushes through the test client."""

from __future__ import annotations

from accounts.models import Membership, Namespace
from repositories.models import Collaborator, Repository, TeamPermission
from tests.factories import RepositoryFactory, library_namespace, make_organization, team
from tests.registry.helpers import push_image, token_for


def personal_repo(owner, *, private: bool = False, **kwargs) -> Repository:
    return RepositoryFactory(namespace=Namespace.objects.get(user=owner), is_private=private, **kwargs)


def official_repo(**kwargs) -> Repository:
    return RepositoryFactory(namespace=library_namespace(), **kwargs)


def org_repo_with_team(owner, member, level: str, *, private: bool = True) -> Repository:
    """An organization repository of `owner`'s org where `member` is in a team with `level`."""
    organization = make_organization(owner)
    repository = RepositoryFactory(namespace=Namespace.objects.get(organization=organization), is_private=private)
    if member is not None and level:
        group = team(organization)
        Membership.objects.create(team=group, user=member)
        TeamPermission.objects.create(repository=repository, team=group, permission=level)
    return repository


def add_collaborator(repository: Repository, user) -> None:
    Collaborator.objects.create(repository=repository, user=user)


def push(client, repository: Repository, user, tag: str = "latest", arch: str = "amd64") -> None:
    """Push a tiny image to `repository` as `user` through the registry API (the Django test client)."""
    name = repository.full_name
    token = token_for(client, user.username, f"repository:{name}:pull,push")
    push_image(client, name, token, tag=tag, arch=arch)


def page_url(repository: Repository, page: str = "") -> str:
    base = f"/_/{repository.name}" if repository.is_official else f"/r/{repository.namespace.name}/{repository.name}"
    return f"{base}/{page}" if page else base
