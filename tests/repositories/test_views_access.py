"""Collaborators (personal repositories), team permissions (organization repositories) and settings."""

import pytest
from django.test import Client

from accounts.models import Membership
from registry.models import Tag
from repositories.models import Collaborator, Repository, TeamPermission
from tests.factories import team
from tests.repositories.pages_support import add_collaborator, org_repo_with_team, page_url, personal_repo, push

pytestmark = pytest.mark.django_db


def as_user(user):
    client = Client()
    client.force_login(user)
    return client


def test_collaborators_page_empty_state(alice):
    repo = personal_repo(alice)
    html = as_user(alice).get(page_url(repo, "collaborators")).content.decode()
    assert "No collaborators yet" in html


def test_add_and_remove_collaborator(alice, bob):
    repo = personal_repo(alice)
    response = as_user(alice).post(page_url(repo, "collaborators"), {"username": bob.username}, follow=True)
    assert Collaborator.objects.filter(repository=repo, user=bob).exists()
    assert f"{bob.username} can now pull and push" in response.content.decode()
    response = as_user(alice).post(page_url(repo, f"collaborators/{bob.username}/remove"), follow=True)
    assert not Collaborator.objects.filter(repository=repo, user=bob).exists()
    assert f"Removed {bob.username}" in response.content.decode()


def test_unknown_collaborator_error_keeps_input(alice):
    repo = personal_repo(alice)
    response = as_user(alice).post(page_url(repo, "collaborators"), {"username": "nobodyhere"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "There is no user called" in html
    assert 'value="nobodyhere"' in html


@pytest.mark.parametrize("persona", ["collaborator", "stranger"])
def test_only_admins_manage_collaborators(alice, bob, charlie, persona):
    repo = personal_repo(alice)
    add_collaborator(repo, bob)
    user = bob if persona == "collaborator" else charlie
    assert as_user(user).get(page_url(repo, "collaborators")).status_code == 404
    assert as_user(user).post(page_url(repo, "collaborators"), {"username": charlie.username}).status_code == 404


def test_org_repository_collaborators_redirects_to_permissions(alice):
    repo = org_repo_with_team(alice, None, "")
    response = as_user(alice).get(page_url(repo, "collaborators"))
    assert response.status_code == 302 and response["Location"].endswith("/permissions")


def test_grant_and_remove_team_permission(alice, bob):
    repo = org_repo_with_team(alice, None, "")
    organization = repo.namespace.organization
    group = team(organization, name="devs")
    Membership.objects.create(team=group, user=bob)
    owner = as_user(alice)
    html = owner.get(page_url(repo, "permissions")).content.decode()
    assert "Only the owners team has access" in html
    response = owner.post(page_url(repo, "permissions"), {"team": "devs", "permission": "write"}, follow=True)
    assert TeamPermission.objects.get(repository=repo, team=group).permission == "write"
    assert "Team devs now has read &amp; write access" in response.content.decode()
    assert as_user(bob).get(page_url(repo)).status_code == 200
    owner.post(page_url(repo, "permissions/devs/remove"))
    assert not TeamPermission.objects.filter(repository=repo).exists()
    assert as_user(bob).get(page_url(repo)).status_code == 404


def test_permissions_page_without_teams_says_create_one(alice):
    repo = org_repo_with_team(alice, None, "")
    assert "Create a team" in as_user(alice).get(page_url(repo, "permissions")).content.decode()


@pytest.mark.parametrize(("level", "status"), [("read", 404), ("write", 404), ("admin", 200)])
def test_team_level_and_permissions_page(alice, bob, level, status):
    repo = org_repo_with_team(alice, bob, level)
    assert as_user(bob).get(page_url(repo, "permissions")).status_code == status
    assert as_user(bob).get(page_url(repo, "settings")).status_code == status


def test_settings_update_descriptions(alice):
    repo = personal_repo(alice)
    response = as_user(alice).post(page_url(repo, "settings"),
                                   {"description": "Short", "full_description": "# Long"}, follow=True)
    repo.refresh_from_db()
    assert (repo.description, repo.full_description) == ("Short", "# Long")
    assert "Saved the descriptions" in response.content.decode()


def test_settings_description_too_long_keeps_input(alice):
    repo = personal_repo(alice)
    response = as_user(alice).post(page_url(repo, "settings"), {"description": "x" * 101, "full_description": "kept"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "at most 100 characters" in html and "kept</textarea>" in html


def test_change_visibility(alice, charlie):
    repo = personal_repo(alice)
    response = as_user(alice).post(page_url(repo, "settings/visibility"), {"visibility": "private"}, follow=True)
    repo.refresh_from_db()
    assert repo.is_private
    assert "is now private" in response.content.decode()
    assert as_user(charlie).get(page_url(repo)).status_code == 404


def test_delete_needs_the_exact_name(alice, client):
    repo = personal_repo(alice)
    response = as_user(alice).post(page_url(repo, "delete"), {"confirm": repo.name})
    assert response.status_code == 400
    assert "Nothing was deleted" in response.content.decode()
    assert Repository.objects.filter(pk=repo.pk).exists()


def test_delete_repository(alice, client):
    repo = personal_repo(alice)
    push(client, repo, alice, tag="v1")
    response = as_user(alice).post(page_url(repo, "delete"), {"confirm": repo.full_name}, follow=True)
    assert not Repository.objects.filter(pk=repo.pk).exists()
    assert not Tag.objects.filter(repository_id=repo.pk).exists()
    assert f"Deleted {repo.full_name}" in response.content.decode()
    assert as_user(alice).get(page_url(repo)).status_code == 404


def test_collaborator_cannot_delete(alice, bob):
    repo = personal_repo(alice)
    add_collaborator(repo, bob)
    assert as_user(bob).post(page_url(repo, "delete"), {"confirm": repo.full_name}).status_code == 404
    assert Repository.objects.filter(pk=repo.pk).exists()
