"""Teams: create, members, the repository-creation right."""

import pytest
from django.urls import reverse

from accounts.models import Membership, Namespace, Team
from accounts.services import team_add_member
from repositories.permissions import Actor, may_create_repository


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def devs(organization):
    return Team.objects.create(organization=organization, name="devs")


def url(name, organization, team=None, **kwargs):
    if team is None:
        return reverse(f"accounts:{name}", kwargs={"name": organization.name, **kwargs})
    return reverse(f"accounts:{name}", kwargs={"name": organization.name, "team": team.name, **kwargs})


@pytest.mark.django_db
def test_create_team(client, alice, organization):
    client.force_login(alice)
    response = client.post(url("team_create", organization), {"name": "builders", "description": "CI",
                                                       "can_create_repositories": "on"})
    assert response["Location"] == f"/orgs/{organization.name}/teams/builders"
    team = Team.objects.get(organization=organization, name="builders")
    assert team.can_create_repositories


@pytest.mark.django_db
def test_create_team_refuses_duplicate_name(client, alice, organization, devs):
    client.force_login(alice)
    response = client.post(url("team_create", organization), {"name": "devs"})
    assert response.context["form"].errors["name"] == ["The organization already has a team called “devs”."]
    assert organization.teams.filter(name="devs").count() == 1


@pytest.mark.django_db
def test_create_team_refuses_bad_name(client, alice, organization):
    client.force_login(alice)
    response = client.post(url("team_create", organization), {"name": "dev team!"})
    assert response.context["form"].errors["name"] == ["Team names use 1–30 letters, digits, '-' or '_'."]
    assert organization.teams.count() == 1


@pytest.mark.django_db
def test_create_team_only_for_owners(client, bob, organization, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(bob)
    assert client.post(url("team_create", organization), {"name": "mine"}).status_code == 404
    assert not organization.teams.filter(name="mine").exists()


@pytest.mark.django_db
def test_add_member_by_username(client, alice, bob, organization, devs):
    client.force_login(alice)
    response = client.post(url("team_member_add", organization, devs), {"username": bob.username}, follow=True)
    assert messages_of(response) == [f"{bob.username} added to devs."]
    assert devs.members.filter(pk=bob.pk).exists()


@pytest.mark.django_db
def test_add_unknown_user_says_so(client, alice, organization, devs):
    client.force_login(alice)
    response = client.post(url("team_member_add", organization, devs), {"username": "nosuchperson"})
    assert response.status_code == 400
    assert response.context["add_form"].errors["username"] == ["There is no user called “nosuchperson”."]
    assert devs.members.count() == 0


@pytest.mark.django_db
def test_add_existing_member_says_so(client, alice, bob, organization, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(alice)
    response = client.post(url("team_member_add", organization, devs), {"username": bob.username})
    assert response.context["add_form"].errors["username"] == [f"{bob.username} is already a member of devs."]
    assert devs.members.count() == 1


@pytest.mark.django_db
def test_remove_member(client, alice, bob, organization, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(alice)
    response = client.post(url("team_member_remove", organization, devs, username=bob.username), follow=True)
    assert messages_of(response) == [f"{bob.username} removed from devs."]
    assert not devs.members.filter(pk=bob.pk).exists()


@pytest.mark.django_db
def test_remove_last_owner_refused(client, alice, organization):
    owners = organization.owners_team
    client.force_login(alice)
    response = client.post(url("team_member_remove", organization, owners, username=alice.username), follow=True)
    assert messages_of(response) == ["An organization needs at least one owner: add another owner first."]
    assert Membership.objects.filter(team=owners, user=alice).exists()


@pytest.mark.django_db
def test_members_cannot_add_members(client, bob, charlie, organization, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(bob)
    assert client.post(url("team_member_add", organization, devs), {"username": charlie.username}).status_code == 404
    assert not devs.members.filter(pk=charlie.pk).exists()


@pytest.mark.django_db
def test_team_page_visible_to_members_without_owner_controls(client, bob, organization, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(bob)
    response = client.get(url("team_detail", organization, devs))
    assert response.status_code == 200
    assert "Add a member" not in response.content.decode()


@pytest.mark.django_db
def test_grant_repository_creation_lets_members_create(client, alice, bob, organization, devs):
    team_add_member(team=devs, username=bob.username)
    namespace = Namespace.objects.get(organization=organization)
    assert not may_create_repository(Actor.for_user(bob), namespace)
    client.force_login(alice)
    client.post(url("team_detail", organization, devs), {"description": "Developers", "can_create_repositories": "on"})
    devs.refresh_from_db()
    assert devs.can_create_repositories
    assert may_create_repository(Actor.for_user(bob), namespace)


@pytest.mark.django_db
def test_owners_may_create_repositories(alice, organization):
    assert may_create_repository(Actor.for_user(alice), Namespace.objects.get(organization=organization))


@pytest.mark.django_db
def test_delete_team(client, alice, organization, devs):
    client.force_login(alice)
    response = client.post(url("team_delete", organization, devs))
    assert response["Location"] == f"/orgs/{organization.name}"
    assert not Team.objects.filter(pk=devs.pk).exists()


@pytest.mark.django_db
def test_owners_team_cannot_be_deleted(client, alice, organization):
    client.force_login(alice)
    response = client.post(url("team_delete", organization, organization.owners_team), follow=True)
    assert messages_of(response) == ["The owners team cannot be deleted."]
    assert organization.teams.filter(name="owners").exists()
