"""Hub API fixtures: an APIClient, JWT headers, personas' repositories and an organization with teams.

alice owns, bob collaborates on alice's repositories, charlie is a stranger; in alice's organization
reader/writer/admin are members of teams with read/write/admin on the organization's repository.
"""

import uuid

import pytest
from rest_framework.test import APIClient

from accounts.models import Namespace
from hub.api import issue_api_token
from repositories.models import Collaborator, TeamPermission
from tests.factories import RepositoryFactory, UserFactory, make_organization, team


@pytest.fixture(autouse=True)
def private_cache(settings):
    """A fresh in-memory cache per test: login throttles never leak between tests (Redis included)."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }


@pytest.fixture
def api():
    return APIClient()


def auth(user, token=None) -> dict[str, str]:
    """`Authorization: Bearer <jwt>` for `user` (optionally made from a personal access token)."""
    return {"HTTP_AUTHORIZATION": f"Bearer {issue_api_token(user=user, token=token)}"}


@pytest.fixture
def alice_repo(alice, bob):
    repository = RepositoryFactory(namespace=Namespace.objects.get(user=alice), name="app",
                                   description="alice's app")
    Collaborator.objects.create(repository=repository, user=bob)
    return repository


@pytest.fixture
def alice_private(alice, bob):
    repository = RepositoryFactory(namespace=Namespace.objects.get(user=alice), name="secret", is_private=True)
    Collaborator.objects.create(repository=repository, user=bob)
    return repository


class Org:
    """alice's organization, its private repository and one member per team permission level."""

    def __init__(self, owner):
        self.organization = make_organization(owner)
        self.name = self.organization.name
        self.namespace = Namespace.objects.get(organization=self.organization)
        self.repository = RepositoryFactory(namespace=self.namespace, name="service", is_private=True)
        self.members = {}
        self.teams = {}
        for level in ("read", "write", "admin"):
            member = UserFactory()
            group = team(self.organization, name={"read": "readers", "write": "writers", "admin": "admins"}[level])
            group.members.add(member)
            TeamPermission.objects.create(repository=self.repository, team=group, permission=level)
            self.members[level] = member
            self.teams[level] = group


@pytest.fixture
def org(alice):
    return Org(alice)
