"""Profiles list the namespace's repositories: public ones for everyone, private ones for those allowed."""

import pytest

from accounts.models import Namespace
from tests.factories import RepositoryFactory

pytestmark = pytest.mark.django_db


def test_profile_lists_public_repositories(client, alice):
    repo = RepositoryFactory(namespace=Namespace.objects.get(user=alice), name="visible-app")
    response = client.get(f"/u/{alice.username}")
    assert response.status_code == 200
    assert repo.name in response.content.decode()


def test_profile_hides_private_repositories_from_strangers(client, alice, charlie):
    RepositoryFactory(namespace=Namespace.objects.get(user=alice), name="secret-app", is_private=True)
    client.force_login(charlie)
    assert "secret-app" not in client.get(f"/u/{alice.username}").content.decode()


def test_profile_shows_private_repositories_to_their_owner(client, alice):
    RepositoryFactory(namespace=Namespace.objects.get(user=alice), name="secret-app", is_private=True)
    client.force_login(alice)
    assert "secret-app" in client.get(f"/u/{alice.username}").content.decode()
