"""Repository names and namespaces: library/, root pushes, other namespaces, creation on first push."""

import pytest

from accounts.models import Membership
from repositories.models import Repository
from tests.factories import make_organization, team
from tests.registry.helpers import (
    assert_error,
    basic,
    pull_push,
    push_image,
    token_for,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def _token(headers):
    return headers["HTTP_AUTHORIZATION"][7:]


def test_staff_push_to_a_root_name_creates_a_library_repository(client, staff):
    push_image(client, "ubuntu", _token(pull_push(client, staff, "ubuntu")))
    repository = Repository.objects.get(name="ubuntu")
    assert repository.namespace.name == "library"
    assert repository.is_official


@pytest.mark.parametrize("path", ["ubuntu", "library/ubuntu"])
def test_root_name_is_library(client, staff, path):
    body, _ = push_image(client, "ubuntu", _token(pull_push(client, staff, "ubuntu")))
    response = client.get(f"/v2/{path}/manifests/latest", **pull_push(client, None, path, "pull"))
    assert response.status_code == 200
    assert response.content == body


def test_non_staff_root_push_is_denied_with_dockers_message(client, alice):
    response = client.post("/v2/ubuntu/blobs/uploads/", **pull_push(client, alice, "ubuntu"))
    error = assert_error(response, 403, "DENIED")
    assert error["message"] == (
        f'You cannot push a "root" repository. Please rename your repository to {alice.username}/ubuntu'
    )
    assert not Repository.objects.filter(name="ubuntu").exists()


def test_non_staff_root_manifest_push_is_denied(client, alice):
    response = client.put("/v2/ubuntu/manifests/latest", data=b"{}", content_type="application/json",
                          HTTP_AUTHORIZATION=basic(alice.username))
    error = assert_error(response, 403, "DENIED")
    assert "Please rename your repository to" in error["message"]


def test_push_into_someone_elses_namespace_is_denied(client, alice, bob):
    name = f"{bob.username}/app"
    response = client.post(f"/v2/{name}/blobs/uploads/", **pull_push(client, alice, name))
    assert_error(response, 403, "DENIED")
    assert not Repository.objects.filter(name="app").exists()


def test_push_into_a_missing_namespace_is_denied(client, alice):
    name = "nobodyhere/app"
    response = client.post(f"/v2/{name}/blobs/uploads/", **pull_push(client, alice, name))
    assert_error(response, 403, "DENIED")


def test_first_push_creates_a_public_repository(client, alice):
    name = f"{alice.username}/new"
    push_image(client, name, _token(pull_push(client, alice, name)))
    repository = Repository.objects.get(name="new")
    assert repository.namespace.user == alice
    assert not repository.is_private
    assert repository.created_by == alice


def test_first_push_honours_default_private(client, alice):
    alice.default_private = True
    alice.save()
    name = f"{alice.username}/new"
    push_image(client, name, _token(pull_push(client, alice, name)))
    assert Repository.objects.get(name="new").is_private


def test_org_member_with_create_permission_creates_by_push(client, alice, bob):
    organization = make_organization(alice)
    creators = team(organization, can_create_repositories=True)
    Membership.objects.create(team=creators, user=bob)
    name = f"{organization.name}/svc"
    push_image(client, name, _token(pull_push(client, bob, name)))
    assert Repository.objects.get(name="svc").namespace.organization == organization


def test_org_member_without_create_permission_is_denied(client, alice, bob):
    organization = make_organization(alice)
    readers = team(organization, can_create_repositories=False)
    Membership.objects.create(team=readers, user=bob)
    name = f"{organization.name}/svc"
    response = client.post(f"/v2/{name}/blobs/uploads/", **pull_push(client, bob, name))
    assert_error(response, 403, "DENIED")
    assert not Repository.objects.filter(name="svc").exists()


def test_org_owner_creates_by_push(client, alice):
    organization = make_organization(alice)
    name = f"{organization.name}/svc"
    push_image(client, name, _token(pull_push(client, alice, name)))
    assert Repository.objects.filter(name="svc").exists()


def test_collaborator_pushes_to_an_existing_repository(client, alice, bob):
    name = f"{alice.username}/app"
    push_image(client, name, _token(pull_push(client, alice, name)))
    Repository.objects.get(name="app").collaborators.create(user=bob)
    push_image(client, name, token_for(client, bob.username, f"repository:{name}:pull,push"), tag="bob")


@pytest.mark.parametrize("name", [
    "a/b/c",
    "alice/app/extra",
    "Alice/app",
    "alice/App",
    "UBUNTU",
    "alice/-app",
    "alice/app-",
    "alice/a..b",
    "x" * 256,
])
@pytest.mark.parametrize("suffix", ["manifests/latest", "tags/list", "blobs/uploads/", "blobs/sha256:" + "a" * 64])
def test_invalid_names(client, alice, name, suffix):
    method = client.post if suffix.endswith("uploads/") else client.get
    response = method(f"/v2/{name}/{suffix}", HTTP_AUTHORIZATION=basic(alice.username))
    assert_error(response, 400, "NAME_INVALID")


@pytest.mark.parametrize("path", ["/v2/alice//app/tags/list", "/v2//app/manifests/latest", "/v2/alice/app//tags/list"])
def test_empty_name_components_are_invalid(client, alice, path):
    assert_error(client.get(path, HTTP_AUTHORIZATION=basic(alice.username)), 400, "NAME_INVALID")
