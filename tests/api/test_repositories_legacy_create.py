"""POST /v2/repositories/ with the namespace in the body (Docker Hub's older path): the same rules and
errors as POST /v2/namespaces/<ns>/repositories."""

import pytest

from accounts.services import access_token_create
from repositories.models import Repository
from tests.api.conftest import auth
from tests.factories import make_organization


def body(namespace: str, name: str = "web", **extra) -> dict:
    return {"namespace": namespace, "name": name, **extra}


@pytest.mark.parametrize("path", ["/v2/repositories/", "/v2/repositories"])
def test_owner_creates_a_repository(api, alice, path):
    response = api.post(path, body(alice.username, description="d", full_description="# hi", is_private=True),
                        format="json", **auth(alice))
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["namespace"], created["name"], created["description"], created["full_description"],
            created["is_private"]) == (alice.username, "web", "d", "# hi", True)
    assert Repository.objects.filter(namespace__name=alice.username, name="web", created_by=alice).exists()


def test_answer_is_the_same_repository_json_as_the_newer_path(api, alice):
    legacy = api.post("/v2/repositories/", body(alice.username, "one"), format="json", **auth(alice)).json()
    newer = api.post(f"/v2/namespaces/{alice.username}/repositories", {"name": "two"}, format="json",
                     **auth(alice)).json()
    assert set(legacy) == set(newer)
    assert legacy["permissions"] == {"read": True, "write": True, "admin": True}


def test_fields_docker_hub_clients_add_are_ignored(api, alice):
    response = api.post("/v2/repositories/", body(alice.username, registry="docker.io", is_private=False),
                        format="json", **auth(alice))
    assert response.status_code == 201


def test_visibility_defaults_to_the_namespace_default(api, alice):
    alice.default_private = True
    alice.save()
    response = api.post("/v2/repositories/", body(alice.username), format="json", **auth(alice))
    assert response.json()["is_private"] is True


def test_org_owner_creates_in_the_organization(api, alice, org):
    response = api.post("/v2/repositories/", body(org.name), format="json", **auth(alice))
    assert response.status_code == 201


def test_org_member_of_a_team_that_may_create(api, org):
    org.teams["write"].can_create_repositories = True
    org.teams["write"].save()
    response = api.post("/v2/repositories/", body(org.name), format="json", **auth(org.members["write"]))
    assert response.status_code == 201


def test_org_member_without_create_right_is_403(api, org):
    response = api.post("/v2/repositories/", body(org.name), format="json", **auth(org.members["admin"]))
    assert response.status_code == 403
    assert not Repository.objects.filter(namespace=org.namespace, name="web").exists()


def test_collaborator_cannot_create_in_the_owners_namespace(api, alice, bob, alice_repo):
    response = api.post("/v2/repositories/", body(alice.username), format="json", **auth(bob))
    assert response.status_code == 403


def test_stranger_cannot_create_in_someone_elses_namespace(api, alice, charlie):
    response = api.post("/v2/repositories/", body(alice.username), format="json", **auth(charlie))
    assert response.status_code == 403


def test_stranger_cannot_tell_whether_a_private_repository_exists(api, alice, charlie, alice_private):
    existing = api.post("/v2/repositories/", body(alice.username, "secret"), format="json", **auth(charlie))
    missing = api.post("/v2/repositories/", body(alice.username, "nothing"), format="json", **auth(charlie))
    assert (existing.status_code, existing.json()) == (missing.status_code, missing.json())


def test_staff_cannot_create_in_someone_elses_namespace(api, alice, staff):
    response = api.post("/v2/repositories/", body(alice.username), format="json", **auth(staff))
    assert response.status_code == 403


def test_staff_creates_an_official_image(api, staff):
    response = api.post("/v2/repositories/", body("library", "ubuntu"), format="json", **auth(staff))
    assert response.status_code == 201
    assert response.json()["namespace"] == "library"


def test_non_staff_cannot_create_an_official_image(api, alice):
    response = api.post("/v2/repositories/", body("library", "ubuntu"), format="json", **auth(alice))
    assert response.status_code == 403


def test_anonymous_create_is_401(api, alice):
    response = api.post("/v2/repositories/", body(alice.username), format="json")
    assert response.status_code == 401


def test_create_in_unknown_namespace_is_404(api, alice):
    response = api.post("/v2/repositories/", body("nosuchns"), format="json", **auth(alice))
    assert response.status_code == 404


def test_create_in_a_deleted_namespace_is_404(api, alice):
    gone = make_organization(alice)
    assert api.delete(f"/v2/orgs/{gone.name}/", **auth(alice)).status_code == 204
    response = api.post("/v2/repositories/", body(gone.name), format="json", **auth(alice))
    assert response.status_code == 404


def test_read_scoped_token_cannot_create(api, alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    response = api.post("/v2/repositories/", body(alice.username), format="json", **auth(alice, token))
    assert response.status_code == 403


def test_write_scoped_token_creates(api, alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:write")
    response = api.post("/v2/repositories/", body(alice.username), format="json", **auth(alice, token))
    assert response.status_code == 201


def test_invalid_name_is_a_field_error(api, alice):
    response = api.post("/v2/repositories/", body(alice.username, "Bad Name"), format="json", **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["name"]


def test_missing_fields_are_field_errors(api, alice):
    response = api.post("/v2/repositories/", {}, format="json", **auth(alice))
    assert response.json() == {"name": ["This field is required."], "namespace": ["This field is required."]}


def test_malformed_namespace_is_a_field_error(api, alice):
    response = api.post("/v2/repositories/", body("Not A Namespace"), format="json", **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["namespace"]


def test_too_long_description_is_a_field_error(api, alice):
    response = api.post("/v2/repositories/", body(alice.username, description="x" * 101), format="json",
                        **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["description"]


def test_taken_name_is_a_field_error(api, alice, alice_repo):
    response = api.post("/v2/repositories/", body(alice.username, "app"), format="json", **auth(alice))
    assert response.status_code == 400
    assert "already exists" in response.json()["name"][0]


def test_created_repository_is_listed(api, alice):
    api.post("/v2/repositories", body(alice.username), format="json", **auth(alice))
    listed = api.get(f"/v2/repositories/{alice.username}/").json()
    assert [r["name"] for r in listed["results"]] == ["web"]


def test_get_on_the_create_path_is_not_allowed(api, alice):
    assert api.get("/v2/repositories/", **auth(alice)).status_code == 405
