"""end-3 manifest GET/HEAD and end-7 manifest PUT: bytes, media types, Accept, subjects, artifacts, events."""

import json

import pytest

from registry.models import Manifest, Tag
from registry.signals import image_pushed
from repositories.models import Repository
from tests.registry.helpers import (
    API_VERSION,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    artifact_manifest,
    assert_error,
    config_blob,
    descriptor,
    digest_of,
    image_manifest,
    index_manifest,
    pull_push,
    push_blob,
    push_image,
    push_manifest,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

ALL_TYPES = [OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST]


def _push_of_type(client, name, token, media_type, tag="t"):
    """Push a manifest of `media_type` (an index gets two pushed children) and return its bytes."""
    if media_type in (OCI_MANIFEST, DOCKER_MANIFEST):
        body, _ = push_image(client, name, token, tag=tag, media_type=media_type)
        return body
    child_type = DOCKER_MANIFEST if media_type == DOCKER_LIST else OCI_MANIFEST
    children = []
    for arch in ("amd64", "arm64"):
        body, _ = push_image(client, name, token, tag=f"{tag}-{arch}", media_type=child_type, arch=arch)
        children.append((body, "linux", arch))
    index = index_manifest(children, media_type=media_type)
    push_manifest(client, name, tag, index, token, media_type)
    return index


@pytest.mark.parametrize("media_type", ALL_TYPES)
@pytest.mark.parametrize("by", ["tag", "digest"])
def test_get_serves_exact_bytes_and_media_type(client, name, token, auth, media_type, by):
    body = _push_of_type(client, name, token, media_type)
    reference = "t" if by == "tag" else digest_of(body)
    response = client.get(f"/v2/{name}/manifests/{reference}", **auth)
    assert response.status_code == 200
    assert response.content == body
    assert response["Content-Type"] == media_type
    assert response["Docker-Content-Digest"] == digest_of(body)
    assert response["Content-Length"] == str(len(body))
    assert response[API_VERSION[0]] == API_VERSION[1]


@pytest.mark.parametrize("media_type", ALL_TYPES)
def test_head_has_headers_and_no_body(client, name, token, auth, media_type):
    body = _push_of_type(client, name, token, media_type)
    response = client.head(f"/v2/{name}/manifests/t", **auth)
    assert response.status_code == 200
    assert response.content == b""
    assert response["Content-Type"] == media_type
    assert response["Docker-Content-Digest"] == digest_of(body)
    assert response["Content-Length"] == str(len(body))


def test_manifest_without_media_type_takes_the_content_type(client, name, token, auth):
    config = config_blob()
    layer = b"layer without media type"
    push_blob(client, name, config, token)
    push_blob(client, name, layer, token)
    document = json.loads(image_manifest(config, [layer]))
    del document["mediaType"]
    body = json.dumps(document).encode()
    push_manifest(client, name, "umoci", body, token, OCI_MANIFEST)
    response = client.get(f"/v2/{name}/manifests/umoci", **auth)
    assert response.content == body
    assert response["Content-Type"] == OCI_MANIFEST


def test_index_without_media_type_takes_the_content_type(client, name, token, auth):
    child, _ = push_image(client, name, token, tag="child")
    document = json.loads(index_manifest([(child, "linux", "amd64")]))
    del document["mediaType"]
    body = json.dumps(document).encode()
    push_manifest(client, name, "idx", body, token, OCI_INDEX)
    assert client.get(f"/v2/{name}/manifests/idx", **auth)["Content-Type"] == OCI_INDEX


# --- Accept -------------------------------------------------------------------------------------


def test_docker_only_client_gets_the_amd64_child_of_a_list(client, name, token, auth):
    index = _push_of_type(client, name, token, DOCKER_LIST)
    children = json.loads(index)["manifests"]
    amd64 = next(c for c in children if c["platform"]["architecture"] == "amd64")
    response = client.get(f"/v2/{name}/manifests/t", HTTP_ACCEPT=DOCKER_MANIFEST, **auth)
    assert response.status_code == 200
    assert response["Content-Type"] == DOCKER_MANIFEST
    assert response["Docker-Content-Digest"] == amd64["digest"]


def test_docker_only_client_asking_for_an_oci_index_of_oci_images(client, name, token, auth):
    _push_of_type(client, name, token, OCI_INDEX)
    response = client.get(f"/v2/{name}/manifests/t", HTTP_ACCEPT=DOCKER_MANIFEST, **auth)
    assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_docker_only_client_gets_a_docker_child_of_an_oci_index(client, name, token, auth):
    child, _ = push_image(client, name, token, tag="child", media_type=DOCKER_MANIFEST)
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {**descriptor(child, DOCKER_MANIFEST), "platform": {"os": "linux", "architecture": "amd64"}}]}
    push_manifest(client, name, "t", json.dumps(document).encode(), token, OCI_INDEX)
    response = client.get(f"/v2/{name}/manifests/t", HTTP_ACCEPT=DOCKER_MANIFEST, **auth)
    assert response.status_code == 200
    assert response.content == child


def test_several_accept_values_joined_by_commas(client, name, token, auth):
    index = _push_of_type(client, name, token, OCI_INDEX)
    accept = ", ".join([DOCKER_MANIFEST, f"{OCI_MANIFEST}; q=0.9", DOCKER_LIST, OCI_INDEX])
    response = client.get(f"/v2/{name}/manifests/t", HTTP_ACCEPT=accept, **auth)
    assert response.content == index


def test_accept_is_case_insensitive_and_ignores_parameters(client, name, token, auth):
    body = _push_of_type(client, name, token, OCI_MANIFEST)
    response = client.get(f"/v2/{name}/manifests/t", HTTP_ACCEPT=OCI_MANIFEST.upper() + ";q=1", **auth)
    assert response.content == body


def test_wildcard_accept(client, name, token, auth):
    body = _push_of_type(client, name, token, DOCKER_MANIFEST)
    assert client.get(f"/v2/{name}/manifests/t", HTTP_ACCEPT="*/*", **auth).content == body


def test_oci_only_client_cannot_read_a_docker_manifest(client, name, token, auth):
    _push_of_type(client, name, token, DOCKER_MANIFEST)
    response = client.get(f"/v2/{name}/manifests/t", HTTP_ACCEPT=OCI_MANIFEST, **auth)
    assert_error(response, 404, "MANIFEST_UNKNOWN")


# --- lookups that fail ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "head"])
@pytest.mark.parametrize("reference", ["missing", "sha256:" + "0" * 64])
def test_unknown_manifest(client, name, token, auth, method, reference):
    _push_of_type(client, name, token, OCI_MANIFEST)
    response = getattr(client, method)(f"/v2/{name}/manifests/{reference}", **auth)
    assert_error(response, 404, "MANIFEST_UNKNOWN")


def test_unknown_repository_for_its_owner(client, alice):
    name = f"{alice.username}/never"
    response = client.get(f"/v2/{name}/manifests/latest", **pull_push(client, alice, name))
    assert_error(response, 404, "NAME_UNKNOWN")


# Neither a tag nor a digest: nothing can be stored under it, so it is unknown (404), as the OCI
# conformance suite (".INVALID_MANIFEST_NAME") and the reference registry (whose route does not
# match such a reference) answer. Only a PUT, which would store something, says why (400).
INVALID_REFERENCES = [
    ".INVALID_MANIFEST_NAME", "-bad", "a" * 129, "has%20space", "%E2%9C%93", "a%00b", "sha256:zz",
    "sha256:baddigeststring", "sha256:" + "a" * 63, "md5:" + "a" * 32, ":", "sha256:",
]


@pytest.mark.parametrize("method", ["get", "head"])
@pytest.mark.parametrize("reference", INVALID_REFERENCES)
def test_read_by_an_invalid_reference_is_manifest_unknown(client, name, token, auth, method, reference):
    _push_of_type(client, name, token, OCI_MANIFEST)
    response = getattr(client, method)(f"/v2/{name}/manifests/{reference}", **auth)
    assert_error(response, 404, "MANIFEST_UNKNOWN")
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("reference", INVALID_REFERENCES)
def test_delete_by_an_invalid_reference_is_manifest_unknown(client, alice, name, token, reference):
    _push_of_type(client, name, token, OCI_MANIFEST)
    response = client.delete(f"/v2/{name}/manifests/{reference}", **pull_push(client, alice, name, "*"))
    assert_error(response, 404, "MANIFEST_UNKNOWN")
    assert Manifest.objects.count() == 1


@pytest.mark.parametrize("reference", [".INVALID_MANIFEST_NAME", "a%00b"])
def test_an_invalid_reference_in_an_unknown_repository_is_name_unknown(client, alice, reference):
    name = f"{alice.username}/never"
    response = client.get(f"/v2/{name}/manifests/{reference}", **pull_push(client, alice, name))
    assert_error(response, 404, "NAME_UNKNOWN")


@pytest.mark.parametrize(("reference", "code"), [
    ("sha256:baddigeststring", "DIGEST_INVALID"), ("sha256:" + "a" * 63, "DIGEST_INVALID"),
    (".INVALID_MANIFEST_NAME", "TAG_INVALID"), ("a%00b", "TAG_INVALID"),
])
def test_put_by_an_invalid_reference_is_still_400(client, name, token, auth, reference, code):
    body = _push_of_type(client, name, token, OCI_MANIFEST)
    response = client.put(f"/v2/{name}/manifests/{reference}", data=body, content_type=OCI_MANIFEST, **auth)
    assert_error(response, 400, code)


# --- PUT ---------------------------------------------------------------------------------------------


def test_put_answers_location_and_digest(client, name, token, auth):
    config, layer = config_blob(), b"a layer"
    push_blob(client, name, config, token)
    push_blob(client, name, layer, token)
    body = image_manifest(config, [layer])
    response = client.put(f"/v2/{name}/manifests/v1", data=body, content_type=OCI_MANIFEST, **auth)
    assert response.status_code == 201
    assert response["Location"] == f"/v2/{name}/manifests/{digest_of(body)}"
    assert response["Docker-Content-Digest"] == digest_of(body)
    assert response[API_VERSION[0]] == API_VERSION[1]
    assert "OCI-Subject" not in response


def test_put_by_digest(client, name, token, auth):
    body, _ = push_image(client, name, token, tag="x")
    response = client.put(f"/v2/{name}/manifests/{digest_of(body)}", data=body, content_type=OCI_MANIFEST, **auth)
    assert response.status_code == 201
    assert response["Docker-Content-Digest"] == digest_of(body)


def test_put_by_mismatching_digest(client, name, token, auth):
    body, _ = push_image(client, name, token, tag="x")
    response = client.put(f"/v2/{name}/manifests/{digest_of(b'other')}", data=body,
                          content_type=OCI_MANIFEST, **auth)
    assert_error(response, 400, "DIGEST_INVALID")
    assert not Manifest.objects.filter(digest=digest_of(b"other")).exists()


def test_put_with_subject_answers_oci_subject(client, name, token, auth):
    push_blob(client, name, b"{}", token)
    subject = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "5" * 64, "size": 100}  # need not exist
    body = artifact_manifest(artifact_type="application/vnd.example.sbom", subject=subject)
    response = client.put(f"/v2/{name}/manifests/{digest_of(body)}", data=body, content_type=OCI_MANIFEST, **auth)
    assert response.status_code == 201
    assert response["OCI-Subject"] == subject["digest"]


def test_oci_artifact_with_empty_config(client, name, token, auth):
    empty = push_blob(client, name, b"{}", token)
    assert empty == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    payload = b"artifact payload"
    push_blob(client, name, payload, token)
    body = artifact_manifest(artifact_type="application/vnd.example.thing", layers=[payload])
    push_manifest(client, name, "artifact", body, token)
    manifest = Manifest.objects.get(digest=digest_of(body))
    assert manifest.artifact_type == "application/vnd.example.thing"
    assert manifest.platforms == []
    response = client.get(f"/v2/{name}/manifests/artifact", **auth)
    assert response.content == body


def test_index_with_a_missing_child(client, name, token, auth):
    child, _ = push_image(client, name, token, tag="child")
    missing = image_manifest(config_blob(arch="s390x"), [b"nowhere"])
    body = index_manifest([(child, "linux", "amd64"), (missing, "linux", "s390x")])
    response = client.put(f"/v2/{name}/manifests/multi", data=body, content_type=OCI_INDEX, **auth)
    error = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert error["detail"]["digest"] == digest_of(missing)


@pytest.mark.parametrize("missing", ["config", "layer"])
def test_manifest_with_a_missing_blob(client, name, token, auth, missing):
    config, layer = config_blob(salt=missing), f"layer {missing}".encode()
    push_blob(client, name, layer if missing == "config" else config, token)
    body = image_manifest(config, [layer])
    response = client.put(f"/v2/{name}/manifests/t", data=body, content_type=OCI_MANIFEST, **auth)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


def test_manifest_naming_a_blob_of_another_repository(client, alice, name, token, auth):
    other = f"{alice.username}/other"
    _, blobs = push_image(client, other, pull_push(client, alice, other)["HTTP_AUTHORIZATION"][7:])
    body = image_manifest(*[blobs[0], [blobs[1]]])
    response = client.put(f"/v2/{name}/manifests/t", data=body, content_type=OCI_MANIFEST, **auth)
    assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("body", [
    b"not json",
    b"",
    b"[]",
    b'{"schemaVersion": 1}',
    b'{"schemaVersion": 3, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
    b'{"schemaVersion": "2", "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
    json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:zz", "size": 1,
                "mediaType": "application/vnd.oci.image.config.v1+json"}, "layers": []}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:" + "a" * 64,
                "size": -1, "mediaType": "application/vnd.oci.image.config.v1+json"}, "layers": []}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": "nope", "layers": []}).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"digest": "x"}]}).encode(),
    b'{"schemaVersion": 2, "schemaVersion": 2}',
    "\udcff".encode("utf-8", "surrogatepass"),
])
def test_invalid_manifests_are_refused(client, name, token, auth, body):
    response = client.put(f"/v2/{name}/manifests/t", data=body, content_type=OCI_MANIFEST, **auth)
    assert_error(response, 400, "MANIFEST_INVALID")
    assert not Manifest.objects.exists()


def test_media_type_contradicting_content_type(client, name, token, auth):
    body = _push_of_type(client, name, token, OCI_MANIFEST)
    response = client.put(f"/v2/{name}/manifests/t2", data=body, content_type=DOCKER_MANIFEST, **auth)
    assert_error(response, 400, "MANIFEST_INVALID")


@pytest.mark.parametrize("reference", ["-bad", "a" * 129, "has%20space"])
def test_invalid_tag(client, name, token, auth, reference):
    body = _push_of_type(client, name, token, OCI_MANIFEST)
    response = client.put(f"/v2/{name}/manifests/{reference}", data=body, content_type=OCI_MANIFEST, **auth)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] in {"TAG_INVALID", "MANIFEST_INVALID"}


def test_oversized_manifest_is_413(client, name, token, auth, settings):
    body = b"{" + b" " * settings.REGISTRY_MAX_MANIFEST_BYTES + b"}"
    response = client.put(f"/v2/{name}/manifests/big", data=body, content_type=OCI_MANIFEST, **auth)
    assert_error(response, 413, "MANIFEST_INVALID")


def test_a_four_mebibyte_manifest_is_accepted(client, name, token, auth):
    config, layer = config_blob(), b"layer"
    push_blob(client, name, config, token)
    push_blob(client, name, layer, token)
    document = json.loads(image_manifest(config, [layer]))
    document["annotations"] = {"padding": ""}
    base = len(json.dumps(document).encode())
    document["annotations"]["padding"] = "x" * (4 * 1024 * 1024 - base)
    body = json.dumps(document).encode()
    assert len(body) == 4 * 1024 * 1024
    push_manifest(client, name, "big", body, token)


# --- what a push records -------------------------------------------------------------------------------


def test_push_records_platforms_size_pusher_and_time(client, alice, name, token):
    from django.utils import timezone

    before = timezone.now()
    _, blobs = push_image(client, name, token, tag="v1", arch="arm64")
    tag = Tag.objects.get(name="v1")
    assert tag.pushed_by == alice
    assert before <= tag.pushed_at <= timezone.now()
    manifest = tag.manifest
    assert manifest.media_type == OCI_MANIFEST
    assert manifest.total_size == sum(len(b) for b in blobs)
    assert [(p["os"], p["architecture"]) for p in manifest.platforms] == [("linux", "arm64")]
    assert manifest.pushed_by == alice
    assert Repository.objects.get(name="app").last_pushed_at is not None


def test_index_records_child_platforms_and_total_size(client, name, token):
    index = _push_of_type(client, name, token, OCI_INDEX, tag="multi")
    manifest = Manifest.objects.get(digest=digest_of(index))
    assert sorted(p["architecture"] for p in manifest.platforms) == ["amd64", "arm64"]
    children = Manifest.objects.filter(digest__in=[p["digest"] for p in manifest.platforms])
    assert manifest.total_size == sum(child.total_size for child in children)
    assert manifest.total_size > 0


@pytest.fixture
def pushes():
    events = []

    def receiver(sender, **kwargs):
        events.append(kwargs)

    image_pushed.connect(receiver)
    yield events
    image_pushed.disconnect(receiver)


def test_image_pushed_fires_once_per_tag_push(client, alice, name, token, pushes):
    body, _ = push_image(client, name, token, tag="v1")
    assert len(pushes) == 1
    event = pushes[0]
    assert event["tag"].name == "v1"
    assert event["manifest"].digest == digest_of(body)
    assert event["pusher"] == alice
    assert event["repository"].name == "app"
    push_manifest(client, name, "v2", body, token)
    assert [e["tag"].name for e in pushes] == ["v1", "v2"]


def test_image_pushed_not_for_a_push_by_digest(client, name, token, pushes):
    config, layer = config_blob(), b"digest only"
    push_blob(client, name, config, token)
    push_blob(client, name, layer, token)
    body = image_manifest(config, [layer])
    push_manifest(client, name, digest_of(body), body, token)
    assert pushes == []


def test_image_pushed_not_for_signature_tags(client, name, token, pushes):
    body, _ = push_image(client, name, token, tag="v1")
    pushes.clear()
    push_blob(client, name, b"{}", token)
    signature = artifact_manifest(artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json")
    push_manifest(client, name, f"sha256-{digest_of(body)[7:]}.sig", signature, token)
    assert pushes == []


def test_image_pushed_not_for_manifests_with_a_subject(client, name, token, pushes):
    body, _ = push_image(client, name, token, tag="v1")
    pushes.clear()
    push_blob(client, name, b"{}", token)
    sbom = artifact_manifest(artifact_type="application/spdx+json", subject=descriptor(body))
    push_manifest(client, name, "sbom", sbom, token)
    assert pushes == []


def test_retagging_moves_the_tag(client, name, token, auth):
    first, _ = push_image(client, name, token, tag="latest", salt="one")
    second, _ = push_image(client, name, token, tag="latest", salt="two")
    assert first != second
    assert client.get(f"/v2/{name}/manifests/latest", **auth).content == second
    assert client.get(f"/v2/{name}/manifests/{digest_of(first)}", **auth).content == first
