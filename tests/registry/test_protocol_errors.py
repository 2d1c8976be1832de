"""The error envelope, the API-version header on every answer, 405s, and never a 500 for bad input."""

import json
import random

import pytest

from tests.registry.helpers import (
    API_VERSION,
    OCI_MANIFEST,
    assert_error,
    basic,
    digest_of,
    pull_push,
    push_image,
)

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def auth(client, alice, name):
    headers = pull_push(client, alice, name, "pull,push")
    push_image(client, name, headers["HTTP_AUTHORIZATION"][7:])
    return pull_push(client, alice, name, "pull,push,delete")


@pytest.mark.parametrize(("method", "path"), [
    ("get", "/v2/"),
    ("get", "/v2/_catalog"),
    ("get", "/v2/{name}/tags/list"),
    ("get", "/v2/{name}/manifests/latest"),
    ("head", "/v2/{name}/manifests/latest"),
    ("get", "/v2/{name}/manifests/nope"),
    ("get", "/v2/{name}/blobs/sha256:" + "0" * 64),
    ("head", "/v2/{name}/blobs/sha256:" + "0" * 64),
    ("post", "/v2/{name}/blobs/uploads/"),
    ("get", "/v2/{name}/blobs/uploads/nope"),
    ("get", "/v2/{name}/referrers/sha256:" + "0" * 64),
    ("delete", "/v2/{name}/manifests/nope"),
    ("get", "/v2/a/b/c/manifests/latest"),
    ("get", "/v2/{name}/unknown/thing"),
    ("post", "/v2/{name}/tags/list"),
    ("put", "/v2/{name}/blobs/sha256:" + "0" * 64),
])
@pytest.mark.parametrize("credentials", ["good", "none"])
def test_every_answer_has_the_api_version_header(client, name, auth, method, path, credentials):
    headers = auth if credentials == "good" else {}
    response = getattr(client, method)(path.format(name=name), **headers)
    assert response[API_VERSION[0]] == API_VERSION[1], (response.status_code, response.content[:200])
    if response.status_code >= 400 and method != "head":
        body = response.json()
        assert set(body["errors"][0]) == {"code", "message", "detail"}


@pytest.mark.parametrize(("method", "suffix", "allowed"), [
    ("post", "tags/list", {"GET"}),
    ("post", "manifests/latest", {"GET", "HEAD", "PUT", "DELETE"}),
    ("patch", "blobs/sha256:" + "0" * 64, {"GET", "HEAD", "DELETE"}),
    ("put", "blobs/uploads/", {"POST"}),
])
def test_wrong_method_is_405_unsupported(client, name, auth, method, suffix, allowed):
    response = getattr(client, method)(f"/v2/{name}/{suffix}", **auth)
    assert_error(response, 405, "UNSUPPORTED")
    assert set(response["Allow"].split(", ")) == allowed


def test_unknown_path_under_v2_is_a_registry_404(client):
    response = client.get("/v2/no/such/path/at/all")
    assert response.status_code == 404
    assert response[API_VERSION[0]] == API_VERSION[1]
    assert response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


# --- property-style: nasty input never gives a 500 ------------------------------------------------

NASTY_NAMES = ["", "a", "A", "a/b/c/d", "..", ".", "-", "a/..", "%00", "%2F", "a%2Fb", "x" * 300, "ü", "a b",
               "a/b%00", "_catalog", "library", "library/", "v2", "a__b", "a---b", "a._b", "\u202e", "%ff"]
NASTY_REFERENCES = ["", ".", "..", "-", "sha256:", "sha256:x", ":", "a" * 200, "sha512:" + "a" * 128,
                    "sha256:" + "A" * 64, "latest%00", "%ff", "tag:with:colons", "sha256:" + "0" * 64 + "0",
                    "ünï", "md5:" + "0" * 32, "sha256" + "0" * 64]
NASTY_BODIES = [b"", b"{", b"null", b"0", b"[]", b'"x"', b"\xff\xfe", b"{}" * 1000,
                json.dumps({"schemaVersion": 2}).encode(),
                json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": None, "layers": None}).encode(),
                json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": [{}]}).encode(),
                json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                            "config": {"mediaType": "a/b", "digest": "sha256:" + "0" * 64, "size": 10**30},
                            "layers": []}).encode(),
                json.dumps({"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST,
                            "digest": "sha256:" + "0" * 64, "size": 1, "platform": "x"}]}).encode(),
                b"[" * 5000 + b"]" * 5000]
NASTY_HEADERS = [{}, {"HTTP_RANGE": "bytes=0-0,5-9"}, {"HTTP_RANGE": "bytes=99999999999999999999-"},
                 {"HTTP_CONTENT_RANGE": "0-99999999999999999999"}, {"HTTP_ACCEPT": ",,,;;;"},
                 {"HTTP_AUTHORIZATION": "Bearer"}, {"HTTP_AUTHORIZATION": "Basic !!!"},
                 {"HTTP_AUTHORIZATION": "Bearer " + "a." * 3000}, {"HTTP_AUTHORIZATION": "Digest x"}]


def test_nasty_urls_never_give_500(client, name, auth):
    rng = random.Random(1234)  # deterministic: a failure reproduces
    suffixes = ["manifests/{ref}", "blobs/{ref}", "tags/list?n={ref}&last={ref}", "referrers/{ref}?artifactType={ref}",
                "blobs/uploads/{ref}", "blobs/uploads/?digest={ref}&mount={ref}&from={name}"]
    for _ in range(400):
        target = rng.choice([*NASTY_NAMES, name])
        reference = rng.choice([*NASTY_REFERENCES, "latest"])
        suffix = rng.choice(suffixes).format(ref=reference, name=rng.choice(NASTY_NAMES))
        method = rng.choice(["get", "head", "put", "patch", "post", "delete"])
        headers = {**rng.choice([auth, {}]), **rng.choice(NASTY_HEADERS)}
        response = client.generic(method.upper(), f"/v2/{target}/{suffix}", data=rng.choice(NASTY_BODIES),
                                  content_type=rng.choice([OCI_MANIFEST, "application/octet-stream", ""]), **headers)
        assert response.status_code < 500, (method, target, suffix, headers, response.status_code)


def test_nasty_manifest_bodies_never_give_500(client, name, auth):
    for body in NASTY_BODIES:
        for content_type in [OCI_MANIFEST, "application/vnd.docker.distribution.manifest.list.v2+json",
                             "application/json", "text/plain", ""]:
            response = client.put(f"/v2/{name}/manifests/t", data=body, content_type=content_type, **auth)
            assert response.status_code == 400, (body[:50], content_type, response.content[:200])


def test_nasty_upload_sequences_never_give_500(client, name, auth):
    rng = random.Random(99)
    for _ in range(60):
        location = client.post(f"/v2/{name}/blobs/uploads/", **auth)["Location"]
        data = rng.randbytes(rng.randint(0, 64))
        for _ in range(rng.randint(1, 4)):
            start = rng.choice([0, 1, len(data), -1])
            headers = {"HTTP_CONTENT_RANGE": f"{start}-{start + len(data) - 1}"} if rng.random() < 0.5 else {}
            response = client.patch(location, data=data, content_type="application/octet-stream",
                                    **headers, **auth)
            assert response.status_code < 500, response.content
        digest = rng.choice([digest_of(data), digest_of(data * 2), "sha256:zz", ""])
        response = client.put(f"{location}?digest={digest}", data=rng.choice([b"", data]),
                              content_type="application/octet-stream", **auth)
        assert response.status_code < 500, response.content


def test_nasty_token_requests_never_give_500(client, alice):
    for query in [{"scope": "repository"}, {"scope": "repository:a:b:c:d"}, {"scope": ":::"},
                  {"scope": "repository:%00:pull"}, {"service": "x" * 5000}, {"scope": "registry:catalog:*"},
                  {"scope": "repository:UPPER/x:pull"}, {"offline_token": "true"}]:
        for headers in [{}, {"HTTP_AUTHORIZATION": basic(alice.username)}, {"HTTP_AUTHORIZATION": "Basic ???"}]:
            assert client.get("/token", query, **headers).status_code < 500
