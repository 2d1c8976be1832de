"""POST /v2/orgs/ (create an organization) and DELETE /v2/orgs/<org>/ (owners delete it)."""

import pytest

from accounts.models import Namespace, Organization
from accounts.services import access_token_create
from repositories.models import Repository
from tests.api.conftest import auth
from tests.factories import RepositoryFactory, make_organization, team, unique_name

# --- Create -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v2/orgs/", "/v2/orgs"])
def test_user_creates_an_organization(api, charlie, path):
    name = unique_name("org")
    response = api.post(path, {"orgname": name, "full_name": "Acme Corp", "company": "Acme",
                               "location": "Lyon"}, format="json", **auth(charlie))
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["orgname"], body["full_name"], body["company"], body["location"], body["type"]) == (
        name, "Acme Corp", "Acme", "Lyon", "Organization")


def test_creator_becomes_the_only_owner(api, charlie):
    name = unique_name("org")
    api.post("/v2/orgs/", {"orgname": name}, format="json", **auth(charlie))
    organization = Organization.objects.get(name=name)
    assert list(organization.owners_team.members.all()) == [charlie]


def test_created_organization_has_its_namespace(api, charlie):
    name = unique_name("org")
    api.post("/v2/orgs/", {"orgname": name}, format="json", **auth(charlie))
    assert Namespace.objects.get(name=name).kind == Namespace.Kind.ORGANIZATION


def test_name_is_accepted_for_orgname(api, charlie):
    name = unique_name("org")
    response = api.post("/v2/orgs/", {"name": name}, format="json", **auth(charlie))
    assert response.status_code == 201
    assert response.json()["orgname"] == name


def test_staff_creates_an_organization(api, staff):
    response = api.post("/v2/orgs/", {"orgname": unique_name("org")}, format="json", **auth(staff))
    assert response.status_code == 201


def test_anonymous_create_is_401(api, db):
    response = api.post("/v2/orgs/", {"orgname": unique_name("org")}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize("scope", ["repo:read", "repo:write"])
def test_limited_access_token_cannot_create(api, charlie, scope):
    token, _ = access_token_create(user=charlie, label="ci", scope=scope)
    response = api.post("/v2/orgs/", {"orgname": unique_name("org")}, format="json", **auth(charlie, token))
    assert response.status_code == 403


def test_admin_access_token_creates(api, charlie):
    token, _ = access_token_create(user=charlie, label="ci", scope="repo:admin")
    response = api.post("/v2/orgs/", {"orgname": unique_name("org")}, format="json", **auth(charlie, token))
    assert response.status_code == 201


def test_an_admin_token_limited_to_one_repository_cannot_create(api, charlie):
    token, _ = access_token_create(user=charlie, label="build", scope="repo:admin",
                                   repository=RepositoryFactory(namespace=Namespace.objects.get(user=charlie)))
    response = api.post("/v2/orgs/", {"orgname": unique_name("org")}, format="json", **auth(charlie, token))
    assert response.status_code == 403


def test_missing_name_is_a_field_error(api, charlie):
    response = api.post("/v2/orgs/", {"full_name": "Acme"}, format="json", **auth(charlie))
    assert response.status_code == 400
    assert response.json() == {"orgname": ["This field is required."]}


def test_two_different_names_are_a_field_error(api, charlie):
    response = api.post("/v2/orgs/", {"orgname": unique_name("org"), "name": unique_name("org")},
                        format="json", **auth(charlie))
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_name_of_an_organization_is_taken(api, charlie, org):
    response = api.post("/v2/orgs/", {"orgname": org.name}, format="json", **auth(charlie))
    assert response.status_code == 400
    assert "already taken" in response.json()["orgname"][0]


def test_name_of_a_user_is_taken(api, charlie, alice):
    response = api.post("/v2/orgs/", {"orgname": alice.username}, format="json", **auth(charlie))
    assert response.status_code == 400
    assert "already taken" in response.json()["orgname"][0]


def test_error_names_the_field_the_caller_used(api, charlie, alice):
    response = api.post("/v2/orgs/", {"name": alice.username}, format="json", **auth(charlie))
    assert list(response.json()) == ["name"]


def test_reserved_name_is_a_field_error(api, charlie):
    response = api.post("/v2/orgs/", {"orgname": "library"}, format="json", **auth(charlie))
    assert response.status_code == 400
    assert "reserved" in response.json()["orgname"][0]


@pytest.mark.parametrize("name", ["Acme1234", "acme-corp", "abc", "a" * 31])
def test_malformed_name_is_a_field_error(api, charlie, name):
    response = api.post("/v2/orgs/", {"orgname": name}, format="json", **auth(charlie))
    assert response.status_code == 400
    assert list(response.json()) == ["orgname"]


def test_name_of_a_deleted_organization_is_not_reused(api, alice, charlie):
    gone = make_organization(alice)
    api.delete(f"/v2/orgs/{gone.name}/", **auth(alice))
    response = api.post("/v2/orgs/", {"orgname": gone.name}, format="json", **auth(charlie))
    assert response.status_code == 400
    assert "deleted account" in response.json()["orgname"][0]


def test_too_long_company_is_a_field_error(api, charlie):
    response = api.post("/v2/orgs/", {"orgname": unique_name("org"), "company": "x" * 101}, format="json",
                        **auth(charlie))
    assert response.status_code == 400
    assert list(response.json()) == ["company"]


# --- Delete -----------------------------------------------------------------------------------


@pytest.fixture
def empty_org(organization, charlie):
    """alice's organization without repositories; charlie is a member of one of its teams."""
    team(organization, name="devs").members.add(charlie)
    return organization


@pytest.mark.parametrize("suffix", ["/", ""])
def test_owner_deletes_an_organization(api, alice, empty_org, suffix):
    response = api.delete(f"/v2/orgs/{empty_org.name}{suffix}", **auth(alice))
    assert response.status_code == 204
    assert not Organization.objects.filter(pk=empty_org.pk).exists()


def test_deleted_organization_leaves_a_tombstone(api, alice, empty_org):
    api.delete(f"/v2/orgs/{empty_org.name}/", **auth(alice))
    assert Namespace.objects.get(name=empty_org.name).is_tombstone


def test_deleted_organization_is_gone_from_the_api(api, alice, empty_org):
    api.delete(f"/v2/orgs/{empty_org.name}/", **auth(alice))
    assert api.get(f"/v2/orgs/{empty_org.name}/").status_code == 404


def test_team_member_cannot_delete(api, charlie, empty_org):
    assert api.delete(f"/v2/orgs/{empty_org.name}/", **auth(charlie)).status_code == 403
    assert Organization.objects.filter(pk=empty_org.pk).exists()


def test_team_admin_of_a_repository_cannot_delete(api, org):
    assert api.delete(f"/v2/orgs/{org.name}/", **auth(org.members["admin"])).status_code == 403


def test_stranger_cannot_delete(api, bob, empty_org):
    assert api.delete(f"/v2/orgs/{empty_org.name}/", **auth(bob)).status_code == 403


def test_staff_who_is_not_an_owner_cannot_delete(api, staff, empty_org):
    assert api.delete(f"/v2/orgs/{empty_org.name}/", **auth(staff)).status_code == 403


def test_anonymous_delete_is_401(api, empty_org):
    assert api.delete(f"/v2/orgs/{empty_org.name}/").status_code == 401


def test_delete_unknown_organization_is_404(api, alice):
    assert api.delete("/v2/orgs/nosuchorg/", **auth(alice)).status_code == 404


def test_delete_a_users_namespace_is_404(api, alice, bob):
    assert api.delete(f"/v2/orgs/{bob.username}/", **auth(alice)).status_code == 404


@pytest.mark.parametrize("scope", ["repo:read", "repo:write"])
def test_limited_access_token_cannot_delete(api, alice, empty_org, scope):
    token, _ = access_token_create(user=alice, label="ci", scope=scope)
    assert api.delete(f"/v2/orgs/{empty_org.name}/", **auth(alice, token)).status_code == 403


def test_organization_with_repositories_is_refused(api, alice, org):
    response = api.delete(f"/v2/orgs/{org.name}/", **auth(alice))
    assert response.status_code == 400
    assert "repositories" in response.json()["detail"][0]


def test_refused_delete_keeps_the_organization_and_its_repositories(api, alice, org):
    api.delete(f"/v2/orgs/{org.name}/", **auth(alice))
    assert Organization.objects.filter(pk=org.organization.pk).exists()
    assert Repository.objects.filter(pk=org.repository.pk).exists()
