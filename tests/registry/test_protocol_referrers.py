"""end-12 referrers API: an OCI index of the manifests whose subject is a digest."""

import pytest

from tests.registry.helpers import (
    API_VERSION,
    OCI_INDEX,
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

SBOM = "application/spdx+json"
SIG = "application/vnd.example.signature"


@pytest.fixture
def auth(client, alice, name):
    return pull_push(client, alice, name)


@pytest.fixture
def image(client, name, auth):
    token = auth["HTTP_AUTHORIZATION"][7:]
    body, _ = push_image(client, name, token)
    push_blob(client, name, b"{}", token)
    referrers = {}
    for artifact_type, note in [(SBOM, "sbom"), (SIG, "sig"), (SBOM, "sbom2")]:
        referrer = artifact_manifest(artifact_type=artifact_type, subject=descriptor(body),
                                     annotations={"note": note})
        push_manifest(client, name, digest_of(referrer), referrer, token)
        referrers[note] = referrer
    return body, referrers


def test_referrers_index(client, name, auth, image):
    body, referrers = image
    response = client.get(f"/v2/{name}/referrers/{digest_of(body)}", **auth)
    assert response.status_code == 200
    assert response[API_VERSION[0]] == API_VERSION[1]
    assert response["Content-Type"] == OCI_INDEX
    assert "OCI-Filters-Applied" not in response
    index = response.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    by_digest = {d["digest"]: d for d in index["manifests"]}
    assert set(by_digest) == {digest_of(r) for r in referrers.values()}
    sbom = by_digest[digest_of(referrers["sbom"])]
    assert sbom == {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest_of(referrers["sbom"]),
                    "size": len(referrers["sbom"]), "artifactType": SBOM, "annotations": {"note": "sbom"}}


def test_artifact_type_filter(client, name, auth, image):
    body, referrers = image
    response = client.get(f"/v2/{name}/referrers/{digest_of(body)}", {"artifactType": SBOM}, **auth)
    assert response.status_code == 200
    assert response["OCI-Filters-Applied"] == "artifactType"
    assert {d["digest"] for d in response.json()["manifests"]} == {
        digest_of(referrers["sbom"]), digest_of(referrers["sbom2"])}


def test_filter_matching_nothing(client, name, auth, image):
    body, _ = image
    response = client.get(f"/v2/{name}/referrers/{digest_of(body)}?artifactType=application/none", **auth)
    assert response.json()["manifests"] == []
    assert response["OCI-Filters-Applied"] == "artifactType"


def test_unknown_digest_is_an_empty_index(client, name, auth, image):
    response = client.get(f"/v2/{name}/referrers/sha256:{'7' * 64}", **auth)
    assert response.status_code == 200
    assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


@pytest.mark.parametrize("bad", ["sha256:abc", "latest", "sha256:" + "Q" * 64])
def test_bad_digest_is_400(client, name, auth, image, bad):
    assert_error(client.get(f"/v2/{name}/referrers/{bad}", **auth), 400, "DIGEST_INVALID")


def test_referrers_of_another_repository_are_not_listed(client, alice, name, image):
    body, _ = image
    other = f"{alice.username}/other"
    other_auth = pull_push(client, alice, other)
    push_image(client, other, other_auth["HTTP_AUTHORIZATION"][7:])
    assert client.get(f"/v2/{other}/referrers/{digest_of(body)}", **other_auth).json()["manifests"] == []


def test_referrers_of_private_repository_need_pull(client, alice, bob, name, image):
    from repositories.models import Repository

    Repository.objects.filter(name="app").update(is_private=True)
    body, _ = image
    response = client.get(f"/v2/{name}/referrers/{digest_of(body)}", **pull_push(client, bob, name, "pull"))
    assert_error(response, 401, "UNAUTHORIZED")
