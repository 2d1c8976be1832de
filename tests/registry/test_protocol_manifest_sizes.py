"""end-7 manifest PUT: descriptor sizes are integers that fit, and agree with what is stored.

A size that overflows the database (or a sum of sizes that does) is the client's fault: 400
MANIFEST_INVALID, never a 500. A descriptor whose size differs from the stored blob's (or child
manifest's) is refused too, so no manifest promises sizes its content does not have.
"""

import json

import pytest

from registry.models import Manifest
from tests.registry.helpers import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    assert_error,
    config_blob,
    digest_of,
    image_manifest,
    index_manifest,
    push_blob,
    push_image,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

INT64_MAX = 2**63 - 1
KEEP = object()  # leave the size the helpers wrote


@pytest.fixture
def blobs(client, name, token):
    """A config and two layers pushed to the repository."""
    config, first, second = config_blob(), b"first layer" * 10, b"second layer" * 20
    for data in (config, first, second):
        push_blob(client, name, data, token)
    return config, first, second


def _manifest(config: bytes, layers: list[bytes], *, config_size=KEEP, layer_sizes=None, subject=None) -> bytes:
    document = json.loads(image_manifest(config, layers))
    if config_size is not KEEP:
        document["config"]["size"] = config_size
    for layer, size in zip(document["layers"], layer_sizes or [], strict=False):
        layer["size"] = size
    if subject is not None:
        document["subject"] = subject
    return json.dumps(document).encode()


def _put(client, name, auth, body: bytes, reference: str = "t", media_type: str = OCI_MANIFEST):
    return client.put(f"/v2/{name}/manifests/{reference}", data=body, content_type=media_type, **auth)


@pytest.mark.parametrize("sizes", [
    [INT64_MAX, INT64_MAX],  # each fits int64, their sum does not
    [INT64_MAX, 1],
    [INT64_MAX],
])
def test_layer_sizes_whose_sum_overflows_are_manifest_invalid(client, name, auth, blobs, sizes):
    config, first, second = blobs
    body = _manifest(config, [first, second][:len(sizes)], layer_sizes=sizes)
    assert_error(_put(client, name, auth, body), 400, "MANIFEST_INVALID")
    assert not Manifest.objects.exists()


@pytest.mark.parametrize("size", [
    2**63, 2**64, 10**30, -1, -(2**63) - 1, 1.5, 1e3, "12", None, True, [1], {"n": 1},
])
@pytest.mark.parametrize("where", ["config", "layer"])
def test_sizes_that_are_not_int64_counts_are_manifest_invalid(client, name, auth, blobs, size, where):
    config, first, _ = blobs
    body = (_manifest(config, [first], config_size=size) if where == "config"
            else _manifest(config, [first], layer_sizes=[size]))
    assert_error(_put(client, name, auth, body), 400, "MANIFEST_INVALID")
    assert not Manifest.objects.exists()


def test_a_size_with_more_digits_than_python_converts_is_manifest_invalid(client, name, auth, blobs):
    config, first, _ = blobs
    body = _manifest(config, [first]).replace(f'"size": {len(first)}'.encode(), b'"size": ' + b"9" * 5000)
    assert b"9" * 5000 in body
    assert_error(_put(client, name, auth, body), 400, "MANIFEST_INVALID")


@pytest.mark.parametrize("where", ["config", "layer"])
@pytest.mark.parametrize("delta", [-1, 1, 2**40])
def test_a_size_that_differs_from_the_stored_blob_is_refused(client, name, auth, blobs, where, delta):
    config, first, _ = blobs
    if where == "config":
        declared = len(config) + delta
        body, digest, stored = _manifest(config, [first], config_size=declared), digest_of(config), len(config)
    else:
        declared = len(first) + delta
        body, digest, stored = _manifest(config, [first], layer_sizes=[declared]), digest_of(first), len(first)
    error = assert_error(_put(client, name, auth, body), 400, "MANIFEST_INVALID")
    assert error["detail"] == {"digest": digest, "size": declared, "stored_size": stored}
    assert digest in error["message"] and str(declared) in error["message"] and str(stored) in error["message"]
    assert not Manifest.objects.exists()


def test_an_index_child_whose_size_differs_from_the_stored_manifest_is_refused(client, name, token, auth):
    child, _ = push_image(client, name, token, tag="child")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest_of(child), "size": len(child) + 1,
         "platform": {"os": "linux", "architecture": "amd64"}}]}
    error = assert_error(_put(client, name, auth, json.dumps(index).encode(), media_type=OCI_INDEX),
                         400, "MANIFEST_INVALID")
    assert error["detail"] == {"digest": digest_of(child), "size": len(child) + 1, "stored_size": len(child)}
    assert not Manifest.objects.filter(media_type=OCI_INDEX).exists()


def test_an_index_child_with_an_overflowing_size_is_manifest_invalid(client, name, token, auth):
    child, _ = push_image(client, name, token, tag="child")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest_of(child), "size": size,
         "platform": {"os": "linux", "architecture": "amd64"}} for size in (INT64_MAX, 2**64)]}
    assert_error(_put(client, name, auth, json.dumps(index).encode(), media_type=OCI_INDEX), 400, "MANIFEST_INVALID")


def test_a_subject_stored_here_with_another_size_is_refused(client, name, token, auth, blobs):
    subject_body, _ = push_image(client, name, token, tag="subject")
    config, first, _ = blobs
    subject = {"mediaType": OCI_MANIFEST, "digest": digest_of(subject_body), "size": len(subject_body) + 7}
    error = assert_error(_put(client, name, auth, _manifest(config, [first], subject=subject), reference="sig"),
                         400, "MANIFEST_INVALID")
    assert error["detail"]["stored_size"] == len(subject_body)


@pytest.mark.parametrize("size", [INT64_MAX, 2**63, -1])
def test_a_subject_not_stored_here_still_needs_an_int64_size(client, name, auth, blobs, size):
    config, first, _ = blobs
    subject = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "5" * 64, "size": size}
    response = _put(client, name, auth, _manifest(config, [first], subject=subject), reference="sig")
    if size == INT64_MAX:  # may be pushed later (the spec allows either order): nothing to compare yet
        assert response.status_code == 201, response.content
    else:
        assert_error(response, 400, "MANIFEST_INVALID")


def test_an_index_whose_children_add_up_past_int64_is_manifest_invalid(client, name, token, auth):
    children = []
    for arch in ("amd64", "arm64"):
        body, _ = push_image(client, name, token, tag=arch, arch=arch)
        children.append((body, "linux", arch))
    # Stored totals are sums of real blob sizes; a database edited by hand (or a future bug) must
    # still not turn an index push into a 500.
    Manifest.objects.filter(digest__in=[digest_of(body) for body, _, _ in children]).update(total_size=INT64_MAX)
    response = _put(client, name, auth, index_manifest(children), reference="multi", media_type=OCI_INDEX)
    assert_error(response, 400, "MANIFEST_INVALID")
    assert not Manifest.objects.filter(media_type=OCI_INDEX).exists()


def test_matching_sizes_are_stored_with_their_totals(client, name, auth, blobs):
    config, first, second = blobs
    body = _manifest(config, [first, second])
    assert _put(client, name, auth, body).status_code == 201
    manifest = Manifest.objects.get(digest=digest_of(body))
    assert manifest.total_size == len(config) + len(first) + len(second)
    assert manifest.platforms[0]["size"] == len(first) + len(second)


def test_layer_media_type_does_not_matter_for_the_size_check(client, name, auth, blobs):
    config, first, _ = blobs
    document = json.loads(_manifest(config, [first], layer_sizes=[len(first) + 1]))
    document["layers"][0]["mediaType"] = "application/vnd.example.anything"
    document["config"]["mediaType"] = OCI_CONFIG
    assert_error(_put(client, name, auth, json.dumps(document).encode()), 400, "MANIFEST_INVALID")
    assert OCI_LAYER  # the default layer type is covered above
