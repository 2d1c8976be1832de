"""Repository list, detail, update and delete in both path styles, with every persona."""

import pytest

from accounts.models import Namespace
from repositories.models import Repository
from tests.api.conftest import auth
from tests.factories import RepositoryFactory

REPOSITORY_FIELDS = {
    "name", "namespace", "user", "repository_type", "status", "status_description", "description",
    "full_description", "is_private", "is_automated", "star_count", "pull_count", "last_updated",
    "date_registered", "collaborator_count", "has_starred", "permissions", "categories", "storage_size",
    "immutable_tags_settings",
}


def detail_paths(namespace, name):
    return [f"/v2/repositories/{namespace}/{name}/", f"/v2/repositories/{namespace}/{name}",
            f"/v2/namespaces/{namespace}/repositories/{name}", f"/v2/namespaces/{namespace}/repositories/{name}/"]


# --- detail ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", range(4))
def test_anonymous_sees_a_public_repository_in_every_path_style(api, alice, alice_repo, style):
    response = api.get(detail_paths(alice.username, "app")[style])
    assert response.status_code == 200
    body = response.json()
    assert set(body) == REPOSITORY_FIELDS
    assert body["name"] == "app" and body["namespace"] == alice.username and body["user"] == alice.username
    assert body["repository_type"] == "image" and body["status"] == 1 and body["status_description"] == "active"
    assert body["permissions"] == {"read": True, "write": False, "admin": False}
    assert body["collaborator_count"] == 1 and body["categories"] == [] and body["has_starred"] is False


def test_owner_has_every_permission(api, alice, alice_private):
    body = api.get(f"/v2/repositories/{alice.username}/secret/", **auth(alice)).json()
    assert body["permissions"] == {"read": True, "write": True, "admin": True}
    assert body["is_private"] is True


def test_collaborator_reads_and_writes_a_private_repository(api, alice, bob, alice_private):
    body = api.get(f"/v2/repositories/{alice.username}/secret/", **auth(bob)).json()
    assert body["permissions"] == {"read": True, "write": True, "admin": False}


def test_private_repository_and_missing_one_give_identical_404s(api, alice, charlie, alice_private):
    hidden = api.get(f"/v2/repositories/{alice.username}/secret/", **auth(charlie))
    missing = api.get(f"/v2/repositories/{alice.username}/nothing/", **auth(charlie))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.content == missing.content


def test_anonymous_gets_404_for_a_private_repository(api, alice, alice_private):
    assert api.get(f"/v2/repositories/{alice.username}/secret/").status_code == 404


def test_staff_does_not_see_other_peoples_private_repositories(api, alice, staff, alice_private):
    assert api.get(f"/v2/repositories/{alice.username}/secret/", **auth(staff)).status_code == 404


def test_official_image_in_library_namespace(api, staff):
    RepositoryFactory(namespace=Namespace.objects.get(name="library"), name="ubuntu")
    body = api.get("/v2/repositories/library/ubuntu/", **auth(staff)).json()
    assert body["namespace"] == "library"
    assert body["permissions"]["admin"] is True


# --- update ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", [0, 2])
def test_owner_patches_descriptions(api, alice, alice_repo, style):
    response = api.patch(detail_paths(alice.username, "app")[style],
                         {"description": "short", "full_description": "# README"}, format="json", **auth(alice))
    assert response.status_code == 200
    assert response.json()["full_description"] == "# README"
    alice_repo.refresh_from_db()
    assert alice_repo.description == "short"


def test_owner_makes_a_repository_private(api, alice, alice_repo):
    response = api.patch(f"/v2/repositories/{alice.username}/app", {"is_private": True}, format="json",
                         **auth(alice))
    assert response.json()["is_private"] is True


def test_team_admin_patches_an_org_repository(api, org):
    response = api.patch(f"/v2/repositories/{org.name}/service/", {"description": "x"}, format="json",
                         **auth(org.members["admin"]))
    assert response.status_code == 200


@pytest.mark.parametrize("level", ["read", "write"])
def test_team_read_or_write_cannot_patch(api, org, level):
    response = api.patch(f"/v2/repositories/{org.name}/service/", {"description": "x"}, format="json",
                         **auth(org.members[level]))
    assert response.status_code == 403


def test_collaborator_cannot_patch(api, alice, bob, alice_repo):
    response = api.patch(f"/v2/repositories/{alice.username}/app/", {"description": "x"}, format="json",
                         **auth(bob))
    assert response.status_code == 403


def test_stranger_cannot_patch_a_public_repository(api, alice, charlie, alice_repo):
    response = api.patch(f"/v2/repositories/{alice.username}/app/", {"description": "x"}, format="json",
                         **auth(charlie))
    assert response.status_code == 403


def test_anonymous_patch_is_401(api, alice, alice_repo):
    response = api.patch(f"/v2/repositories/{alice.username}/app/", {"description": "x"}, format="json")
    assert response.status_code == 401


def test_stranger_patch_of_a_private_repository_is_404(api, alice, charlie, alice_private):
    response = api.patch(f"/v2/repositories/{alice.username}/secret/", {"description": "x"}, format="json",
                         **auth(charlie))
    assert response.status_code == 404


def test_too_long_description_is_a_field_error(api, alice, alice_repo):
    response = api.patch(f"/v2/repositories/{alice.username}/app/", {"description": "x" * 101}, format="json",
                         **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["description"]


def test_wrong_type_is_a_field_error(api, alice, alice_repo):
    response = api.patch(f"/v2/repositories/{alice.username}/app/", {"is_private": "perhaps"}, format="json",
                         **auth(alice))
    assert response.status_code == 400
    assert list(response.json()) == ["is_private"]


# --- delete ----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", [1, 3])
def test_owner_deletes_a_repository(api, alice, alice_repo, style):
    response = api.delete(detail_paths(alice.username, "app")[style], **auth(alice))
    assert response.status_code == 202
    assert not Repository.objects.filter(pk=alice_repo.pk).exists()


def test_collaborator_cannot_delete(api, alice, bob, alice_private):
    assert api.delete(f"/v2/repositories/{alice.username}/secret/", **auth(bob)).status_code == 403


def test_team_admin_deletes_an_org_repository(api, org):
    assert api.delete(f"/v2/repositories/{org.name}/service/", **auth(org.members["admin"])).status_code == 202


def test_team_write_cannot_delete_an_org_repository(api, org):
    assert api.delete(f"/v2/repositories/{org.name}/service/", **auth(org.members["write"])).status_code == 403


def test_anonymous_delete_is_401(api, alice, alice_repo):
    assert api.delete(f"/v2/repositories/{alice.username}/app/").status_code == 401


def test_counts_in_detail_and_lists_are_per_repository(api, alice, bob, charlie):
    """collaborator_count, storage_size and has_starred come from per-row subqueries: each row its own."""
    from registry.models import Blob, RepositoryBlob
    from repositories.models import Collaborator, Star

    namespace = Namespace.objects.get(user=alice)
    first = RepositoryFactory(namespace=namespace, name="one")
    second = RepositoryFactory(namespace=namespace, name="two")
    shared = Blob.objects.create(digest="sha256:" + "a" * 64, size=1000)
    own = Blob.objects.create(digest="sha256:" + "b" * 64, size=250)
    RepositoryBlob.objects.create(repository=first, blob=shared)
    RepositoryBlob.objects.create(repository=first, blob=own)
    RepositoryBlob.objects.create(repository=second, blob=shared)
    Collaborator.objects.create(repository=first, user=bob)
    Collaborator.objects.create(repository=first, user=charlie)
    Star.objects.create(repository=second, user=bob)
    listed = {item["name"]: item for item in
              api.get(f"/v2/repositories/{alice.username}/?page_size=100", **auth(bob)).json()["results"]}
    assert (listed["one"]["storage_size"], listed["one"]["collaborator_count"], listed["one"]["has_starred"]) == (
        1250, 2, False)
    assert (listed["two"]["storage_size"], listed["two"]["collaborator_count"], listed["two"]["has_starred"]) == (
        1000, 0, True)
    detail = api.get(f"/v2/repositories/{alice.username}/two/", **auth(charlie)).json()
    assert detail["storage_size"] == 1000 and detail["has_starred"] is False
