"""Teams: create, members, the repository-creation right."""

import pytest
from django.urls import reverse

from accounts.models import Membership, Namespace, Team
from accounts.services import team_add_member
from repositories.permissions import Actor, may_create_repository
from tests.factories import make_organization


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.fixture
def org(alice):
    return make_organization(alice)


@pytest.fixture
def devs(org):
    return Team.objects.create(organization=org, name="devs")


def url(name, org, team=None, **kwargs):
    if team is None:
        return reverse(f"accounts:{name}", kwargs={"name": org.name, **kwargs})
    return reverse(f"accounts:{name}", kwargs={"name": org.name, "team": team.name, **kwargs})


@pytest.mark.django_db
def test_create_team(client, alice, org):
    client.force_login(alice)
    response = client.post(url("team_create", org), {"name": "builders", "description": "CI",
                                                       "can_create_repositories": "on"})
    assert response["Location"] == f"/orgs/{org.name}/teams/builders"
    team = Team.objects.get(organization=org, name="builders")
    assert team.can_create_repositories


@pytest.mark.django_db
def test_create_team_refuses_duplicate_name(client, alice, org, devs):
    client.force_login(alice)
    response = client.post(url("team_create", org), {"name": "devs"})
    assert response.context["form"].errors["name"] == ["The organization already has a team called “devs”."]
    assert org.teams.filter(name="devs").count() == 1


@pytest.mark.django_db
def test_create_team_refuses_bad_name(client, alice, org):
    client.force_login(alice)
    response = client.post(url("team_create", org), {"name": "dev team!"})
    assert response.context["form"].errors["name"] == ["Team names use 1–30 letters, digits, '-' or '_'."]
    assert org.teams.count() == 1


@pytest.mark.django_db
def test_create_team_only_for_owners(client, bob, org, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(bob)
    assert client.post(url("team_create", org), {"name": "mine"}).status_code == 404
    assert not org.teams.filter(name="mine").exists()


@pytest.mark.django_db
def test_add_member_by_username(client, alice, bob, org, devs):
    client.force_login(alice)
    response = client.post(url("team_member_add", org, devs), {"username": bob.username}, follow=True)
    assert messages_of(response) == [f"{bob.username} added to devs."]
    assert devs.members.filter(pk=bob.pk).exists()


@pytest.mark.django_db
def test_add_unknown_user_says_so(client, alice, org, devs):
    client.force_login(alice)
    response = client.post(url("team_member_add", org, devs), {"username": "nosuchperson"})
    assert response.status_code == 400
    assert response.context["add_form"].errors["username"] == ["There is no user called “nosuchperson”."]
    assert devs.members.count() == 0


@pytest.mark.django_db
def test_add_existing_member_says_so(client, alice, bob, org, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(alice)
    response = client.post(url("team_member_add", org, devs), {"username": bob.username})
    assert response.context["add_form"].errors["username"] == [f"{bob.username} is already a member of devs."]
    assert devs.members.count() == 1


@pytest.mark.django_db
def test_remove_member(client, alice, bob, org, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(alice)
    response = client.post(url("team_member_remove", org, devs, username=bob.username), follow=True)
    assert messages_of(response) == [f"{bob.username} removed from devs."]
    assert not devs.members.filter(pk=bob.pk).exists()


@pytest.mark.django_db
def test_remove_last_owner_refused(client, alice, org):
    owners = org.owners_team
    client.force_login(alice)
    response = client.post(url("team_member_remove", org, owners, username=alice.username), follow=True)
    assert messages_of(response) == ["An organization needs at least one owner: add another owner first."]
    assert Membership.objects.filter(team=owners, user=alice).exists()


@pytest.mark.django_db
def test_members_cannot_add_members(client, bob, charlie, org, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(bob)
    assert client.post(url("team_member_add", org, devs), {"username": charlie.username}).status_code == 404
    assert not devs.members.filter(pk=charlie.pk).exists()


@pytest.mark.django_db
def test_team_page_visible_to_members_without_owner_controls(client, bob, org, devs):
    team_add_member(team=devs, username=bob.username)
    client.force_login(bob)
    response = client.get(url("team_detail", org, devs))
    assert response.status_code == 200
    assert "Add a member" not in response.content.decode()


@pytest.mark.django_db
def test_grant_repository_creation_lets_members_create(client, alice, bob, org, devs):
    team_add_member(team=devs, username=bob.username)
    namespace = Namespace.objects.get(organization=org)
    assert not may_create_repository(Actor.for_user(bob), namespace)
    client.force_login(alice)
    client.post(url("team_detail", org, devs), {"description": "Developers", "can_create_repositories": "on"})
    devs.refresh_from_db()
    assert devs.can_create_repositories
    assert may_create_repository(Actor.for_user(bob), namespace)


@pytest.mark.django_db
def test_owners_may_create_repositories(alice, org):
    assert may_create_repository(Actor.for_user(alice), Namespace.objects.get(organization=org))


@pytest.mark.django_db
def test_delete_team(client, alice, org, devs):
    client.force_login(alice)
    response = client.post(url("team_delete", org, devs))
    assert response["Location"] == f"/orgs/{org.name}"
    assert not Team.objects.filter(pk=devs.pk).exists()


@pytest.mark.django_db
def test_owners_team_cannot_be_deleted(client, alice, org):
    client.force_login(alice)
    response = client.post(url("team_delete", org, org.owners_team), follow=True)
    assert messages_of(response) == ["The owners team cannot be deleted."]
    assert org.teams.filter(name="owners").exists()
