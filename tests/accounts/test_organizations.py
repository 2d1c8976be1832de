"""Organization pages: create, view, leave, settings, delete."""

import pytest
from django.urls import reverse

from accounts.models import Namespace, Organization, Team
from accounts.services import team_add_member
from repositories.models import Repository


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


@pytest.mark.django_db
def test_create_organization_makes_caller_owner(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:org_create"), {"name": "acmecorp", "full_name": "Acme Corp"})
    assert response["Location"] == "/orgs/acmecorp"
    organization = Organization.objects.get(name="acmecorp")
    assert organization.full_name == "Acme Corp"
    assert organization.is_owner(alice)
    assert Namespace.objects.get(name="acmecorp").organization == organization


@pytest.mark.django_db
def test_create_organization_refuses_taken_name(client, alice, bob):
    client.force_login(alice)
    response = client.post(reverse("accounts:org_create"), {"name": bob.username})
    assert response.context["form"].errors["name"] == [
        f"“{bob.username}” is already taken. Please choose another name."
    ]
    assert not Organization.objects.exists()


@pytest.mark.django_db
def test_create_organization_refuses_reserved_name(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:org_create"), {"name": "library"})
    assert response.context["form"].errors["name"] == ["“library” is reserved. Please choose another name."]
    assert not Organization.objects.exists()


@pytest.mark.django_db
def test_create_organization_refuses_uppercase_and_keeps_input(client, alice):
    client.force_login(alice)
    response = client.post(reverse("accounts:org_create"), {"name": "AcmeCorp", "full_name": "Acme"})
    assert response.context["form"].errors["name"] == ["Use lowercase letters only."]
    assert b'value="AcmeCorp"' in response.content
    assert not Organization.objects.exists()


@pytest.mark.django_db
def test_create_organization_requires_login(client):
    response = client.get(reverse("accounts:org_create"))
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.django_db
def test_org_list_shows_my_organizations(client, alice, organization):
    client.force_login(alice)
    response = client.get(reverse("accounts:org_list"))
    assert f'href="/orgs/{organization.name}"' in response.content.decode()


@pytest.mark.django_db
def test_org_list_empty_state(client, charlie):
    client.force_login(charlie)
    response = client.get(reverse("accounts:org_list"))
    assert "You are not in any organization yet" in response.content.decode()


@pytest.mark.django_db
def test_org_page_lists_teams_and_members(client, alice, organization):
    client.force_login(alice)
    html = client.get(reverse("accounts:org_detail", kwargs={"name": organization.name})).content.decode()
    assert "owners" in html
    assert alice.username in html


@pytest.mark.django_db
def test_org_page_hidden_from_non_members(client, charlie, organization):
    client.force_login(charlie)
    assert client.get(reverse("accounts:org_detail", kwargs={"name": organization.name})).status_code == 404


@pytest.mark.django_db
def test_org_settings_only_for_owners(client, bob, organization):
    team = Team.objects.create(organization=organization, name="devs")
    team_add_member(team=team, username=bob.username)
    client.force_login(bob)
    assert client.get(reverse("accounts:org_settings", kwargs={"name": organization.name})).status_code == 404


@pytest.mark.django_db
def test_org_settings_save(client, alice, organization):
    client.force_login(alice)
    response = client.post(
        reverse("accounts:org_settings", kwargs={"name": organization.name}),
        {"full_name": "Acme Inc", "website": "https://acme.example", "company": "", "location": "", "email": ""},
    )
    assert response.status_code == 302
    organization.refresh_from_db()
    assert organization.full_name == "Acme Inc"


@pytest.mark.django_db
def test_member_leaves_organization(client, alice, bob, organization):
    team = Team.objects.create(organization=organization, name="devs")
    team_add_member(team=team, username=bob.username)
    client.force_login(bob)
    response = client.post(reverse("accounts:org_leave", kwargs={"name": organization.name}), follow=True)
    assert messages_of(response) == [f"You have left the organization “{organization.name}”."]
    assert not organization.is_member(bob)


@pytest.mark.django_db
def test_last_owner_cannot_leave(client, alice, organization):
    client.force_login(alice)
    response = client.post(reverse("accounts:org_leave", kwargs={"name": organization.name}), follow=True)
    assert messages_of(response) == ["You are the last owner: add another owner or delete the organization."]
    assert organization.is_owner(alice)


@pytest.mark.django_db
def test_delete_refused_while_repositories_remain(client, alice, organization):
    Repository.objects.create(namespace=Namespace.objects.get(organization=organization), name="app")
    client.force_login(alice)
    response = client.post(reverse("accounts:org_delete", kwargs={"name": organization.name}),
                           {"confirm": organization.name})
    assert response.status_code == 400
    assert response.context["delete_form"].non_field_errors() == [
        "Delete or transfer the organization's repositories first: an organization with "
        "repositories cannot be deleted."
    ]
    assert Organization.objects.filter(pk=organization.pk).exists()


@pytest.mark.django_db
def test_delete_refused_without_typed_name(client, alice, organization):
    client.force_login(alice)
    response = client.post(reverse("accounts:org_delete", kwargs={"name": organization.name}), {"confirm": "wrong"})
    assert response.context["delete_form"].errors["confirm"] == [
        f"That does not match. Type “{organization.name}” exactly."]
    assert Organization.objects.filter(pk=organization.pk).exists()


@pytest.mark.django_db
def test_delete_without_repositories_tombstones_name(client, alice, organization):
    client.force_login(alice)
    response = client.post(reverse("accounts:org_delete", kwargs={"name": organization.name}),
                           {"confirm": organization.name})
    assert response["Location"] == reverse("accounts:org_list")
    assert not Organization.objects.filter(name=organization.name).exists()
    assert Namespace.objects.get(name=organization.name).is_tombstone


@pytest.mark.django_db
def test_delete_by_non_owner_refused(client, bob, organization):
    team = Team.objects.create(organization=organization, name="devs")
    team_add_member(team=team, username=bob.username)
    client.force_login(bob)
    response = client.post(reverse("accounts:org_delete", kwargs={"name": organization.name}),
                           {"confirm": organization.name})
    assert response.status_code == 404
    assert Organization.objects.filter(pk=organization.pk).exists()
