"""end-9 manifest DELETE by digest and by tag; who may delete."""

import pytest

from registry.models import Manifest, Tag
from registry.signals import tag_deleted
from repositories.models import Repository
from tests.registry.helpers import (
    API_VERSION,
    artifact_manifest,
    assert_error,
    descriptor,
    digest_of,
    pull_push,
    push_blob,
    push_image,
    push_manifest,
)

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def owner(client, alice, name, image):
    """Asked once the repository exists: a token for a missing one grants at most pull and push."""
    return pull_push(client, alice, name, "pull,push,delete")


@pytest.fixture
def image(client, name, token):
    body, _ = push_image(client, name, token, tag="v1")
    push_manifest(client, name, "latest", body, token)
    return body


def test_delete_by_digest_removes_the_manifest_and_its_tags(client, name, owner, image):
    response = client.delete(f"/v2/{name}/manifests/{digest_of(image)}", **owner)
    assert response.status_code == 202
    assert response[API_VERSION[0]] == API_VERSION[1]
    assert not Tag.objects.exists()
    assert_error(client.get(f"/v2/{name}/manifests/{digest_of(image)}", **owner), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"/v2/{name}/manifests/v1", **owner), 404, "MANIFEST_UNKNOWN")


def test_delete_by_digest_removes_signatures_and_referrers(client, name, token, owner, image):
    push_blob(client, name, b"{}", token)
    hexdigest = digest_of(image)[7:]
    signature = artifact_manifest(artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json")
    push_manifest(client, name, f"sha256-{hexdigest}.sig", signature, token)
    sbom = artifact_manifest(artifact_type="application/spdx+json", subject=descriptor(image))
    push_manifest(client, name, digest_of(sbom), sbom, token)
    unrelated, _ = push_image(client, name, token, tag="other")
    client.delete(f"/v2/{name}/manifests/{digest_of(image)}", **owner)
    assert set(Manifest.objects.values_list("digest", flat=True)) == {digest_of(unrelated)}
    assert list(Tag.objects.values_list("name", flat=True)) == ["other"]
    assert client.get(f"/v2/{name}/referrers/{digest_of(image)}", **owner).json()["manifests"] == []


def test_delete_by_tag_removes_only_the_tag(client, name, owner, image):
    response = client.delete(f"/v2/{name}/manifests/v1", **owner)
    assert response.status_code == 202
    assert list(Tag.objects.values_list("name", flat=True)) == ["latest"]
    assert client.get(f"/v2/{name}/manifests/{digest_of(image)}", **owner).status_code == 200
    assert client.get(f"/v2/{name}/manifests/latest", **owner).status_code == 200


def test_delete_unknown_tag(client, name, owner, image):
    assert_error(client.delete(f"/v2/{name}/manifests/nope", **owner), 404, "MANIFEST_UNKNOWN")


def test_delete_unknown_digest(client, name, owner, image):
    assert_error(client.delete(f"/v2/{name}/manifests/sha256:{'1' * 64}", **owner), 404, "MANIFEST_UNKNOWN")


def test_delete_sends_tag_deleted(client, alice, name, owner, image):
    events = []

    def receiver(sender, **kwargs):
        events.append(kwargs)

    tag_deleted.connect(receiver)
    try:
        client.delete(f"/v2/{name}/manifests/v1", **owner)
    finally:
        tag_deleted.disconnect(receiver)
    assert [(e["tag_name"], e["digest"], e["user"]) for e in events] == [("v1", digest_of(image), alice)]


@pytest.mark.parametrize("reference", ["v1", "digest"])
def test_collaborator_may_not_delete(client, bob, name, image, reference):
    Repository.objects.get(name="app").collaborators.create(user=bob)
    ref = digest_of(image) if reference == "digest" else reference
    response = client.delete(f"/v2/{name}/manifests/{ref}", **pull_push(client, bob, name, "pull,push,delete"))
    assert response.status_code in (401, 403)
    assert response.json()["errors"][0]["code"] in {"DENIED", "UNAUTHORIZED"}
    assert Tag.objects.count() == 2


def test_push_token_without_delete_may_not_delete(client, name, token, image):
    response = client.delete(f"/v2/{name}/manifests/v1", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code in (401, 403)
    assert Tag.objects.count() == 2


def test_anonymous_may_not_delete(client, name, image):
    assert_error(client.delete(f"/v2/{name}/manifests/v1"), 401, "UNAUTHORIZED")


def test_wildcard_scope_deletes(client, alice, name, image):
    response = client.delete(f"/v2/{name}/manifests/v1", **pull_push(client, alice, name, "*"))
    assert response.status_code == 202


def test_org_admin_team_may_delete(client, alice, bob):
    from tests.factories import make_organization, team

    organization = make_organization(alice)
    name = f"{organization.name}/svc"
    push_image(client, name, pull_push(client, alice, name)["HTTP_AUTHORIZATION"][7:], tag="v1")
    admins = team(organization)
    admins.memberships.create(user=bob)
    Repository.objects.get(name="svc").team_permissions.create(team=admins, permission="admin")
    response = client.delete(f"/v2/{name}/manifests/v1", **pull_push(client, bob, name, "delete"))
    assert response.status_code == 202
