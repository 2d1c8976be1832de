"""POST /v2/namespaces/<ns>/repositories: who may create where, and validation as field errors."""

import pytest

from accounts.models import Membership
from repositories.models import Repository
from tests.api.conftest import auth


@pytest.mark.parametrize("suffix", ["", "/"])
def test_owner_creates_a_repository(api, alice, suffix):
    response = api.post(f"/v2/namespaces/{alice.username}/repositories{suffix}",
                        {"name": "web", "description": "d", "is_private": True, "full_description": "# hi"},
                        format="json", **auth(alice))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "web" and body["is_private"] is True and body["full_description"] == "# hi"
    assert Repository.objects.filter(namespace__name=alice.username, name="web", created_by=alice).exists()


def test_stranger_cannot_create_in_someone_elses_namespace(api, alice, charlie):
    response = api.post(f"/v2/namespaces/{alice.username}/repositories", {"name": "web"}, format="json",
                        **auth(charlie))
    assert response.status_code == 403


def test_anonymous_create_is_401(api, alice):
    response = api.post(f"/v2/namespaces/{alice.username}/repositories", {"name": "web"}, format="json")
    assert response.status_code == 401


def test_create_in_unknown_namespace_is_404(api, alice):
    response = api.post("/v2/namespaces/nosuchns/repositories", {"name": "web"}, format="json", **auth(alice))
    assert response.status_code == 404


def test_invalid_name_is_a_field_error(api, alice):
    response = api.post(f"/v2/namespaces/{alice.username}/repositories", {"name": "Bad Name"}, format="json",
                        **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_missing_name_is_a_field_error(api, alice):
    response = api.post(f"/v2/namespaces/{alice.username}/repositories", {}, format="json", **auth(alice))
    assert response.json() == {"name": ["This field is required."]}


def test_taken_name_is_a_field_error(api, alice, alice_repo):
    response = api.post(f"/v2/namespaces/{alice.username}/repositories", {"name": "app"}, format="json",
                        **auth(alice))
    assert response.status_code == 400
    assert "already exists" in response.json()["name"][0]


def test_org_owner_creates_in_the_organization(api, alice, org):
    response = api.post(f"/v2/namespaces/{org.name}/repositories", {"name": "web"}, format="json", **auth(alice))
    assert response.status_code == 201


def test_org_member_without_create_right_is_403(api, org):
    response = api.post(f"/v2/namespaces/{org.name}/repositories", {"name": "web"}, format="json",
                        **auth(org.members["admin"]))
    assert response.status_code == 403


def test_org_member_of_a_team_that_may_create(api, org):
    org.teams["write"].can_create_repositories = True
    org.teams["write"].save()
    assert Membership.objects.filter(team=org.teams["write"]).exists()
    response = api.post(f"/v2/namespaces/{org.name}/repositories", {"name": "web"}, format="json",
                        **auth(org.members["write"]))
    assert response.status_code == 201


def test_staff_creates_an_official_image(api, staff):
    response = api.post("/v2/namespaces/library/repositories", {"name": "ubuntu"}, format="json", **auth(staff))
    assert response.status_code == 201
    assert response.json()["namespace"] == "library"


def test_non_staff_cannot_create_an_official_image(api, alice):
    response = api.post("/v2/namespaces/library/repositories", {"name": "ubuntu"}, format="json", **auth(alice))
    assert response.status_code == 403


def test_legacy_list_path_does_not_create(api, alice):
    response = api.post(f"/v2/repositories/{alice.username}/", {"name": "web"}, format="json", **auth(alice))
    assert response.status_code == 405


def test_read_scoped_token_cannot_create(api, alice):
    from accounts.services import access_token_create

    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    response = api.post(f"/v2/namespaces/{alice.username}/repositories", {"name": "web"}, format="json",
                        **auth(alice, token))
    assert response.status_code == 403


def test_created_repository_is_listed(api, alice):
    api.post(f"/v2/namespaces/{alice.username}/repositories", {"name": "web"}, format="json", **auth(alice))
    body = api.get(f"/v2/namespaces/{alice.username}/repositories").json()
    assert [r["name"] for r in body["results"]] == ["web"]
