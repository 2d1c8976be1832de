"""The docker CLI's exact requests: login (GET with offline_token), refresh grant (POST), push, pull."""

from urllib.parse import urlencode

import pytest
from django.conf import settings

from tests.registry.helpers import (
    DOCKER_CONFIG,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    basic,
    config_blob,
    digest_of,
    image_manifest,
    parse_challenge,
)

pytestmark = [pytest.mark.django_db]

DOCKER_ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX])


def _login(client, user) -> str:
    """`docker login`: GET /v2/ (challenged), then GET /token with Basic and offline_token=true."""
    challenge = client.get("/v2/")
    assert challenge.status_code == 401
    _, params = parse_challenge(challenge["WWW-Authenticate"])
    assert params["realm"].endswith("/token")
    query = urlencode({"account": user.username, "client_id": "docker", "offline_token": "true",
                       "service": params["service"]})
    response = client.get(f"/token?{query}", HTTP_AUTHORIZATION=basic(user.username))
    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"]
    assert body["token"] == body["access_token"]
    return body["refresh_token"]


def _refresh(client, refresh_token: str, *scopes: str) -> str:
    """Every later token: POST grant_type=refresh_token, as the CLI does once it holds one."""
    response = client.post("/token", {
        "grant_type": "refresh_token", "refresh_token": refresh_token, "service": settings.REGISTRY_SERVICE,
        "client_id": "docker", "access_type": "offline", "scope": " ".join(scopes),
    })
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["expires_in"] >= 60
    return body["access_token"]


def test_login_push_pull(client, alice):
    refresh = _login(client, alice)
    name = f"{alice.username}/app"
    token = _refresh(client, refresh, f"repository:{name}:pull,push")
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    config = config_blob(salt="docker-cli")
    layer = b"docker cli layer " * 512
    for blob in (layer, config):
        digest = digest_of(blob)
        head = client.head(f"/v2/{name}/blobs/{digest}", **auth)
        assert head.status_code == 404
        mount = client.post(f"/v2/{name}/blobs/uploads/?mount={digest}&from=library/busybox", **auth)
        assert mount.status_code == 202  # nothing to mount from: a normal upload starts
        location = mount["Location"]
        patch = client.patch(location, data=blob, content_type="application/octet-stream", **auth)
        assert patch.status_code == 202
        assert patch["Range"] == f"0-{len(blob) - 1}"
        separator = "&" if "?" in patch["Location"] else "?"
        put = client.put(f"{patch['Location']}{separator}digest={digest}", **auth)
        assert put.status_code == 201
        assert put["Docker-Content-Digest"] == digest
        assert client.head(f"/v2/{name}/blobs/{digest}", **auth).status_code == 200

    manifest = image_manifest(config, [layer], media_type=DOCKER_MANIFEST, config_type=DOCKER_CONFIG)
    put = client.put(f"/v2/{name}/manifests/latest", data=manifest, content_type=DOCKER_MANIFEST, **auth)
    assert put.status_code == 201
    assert put["Docker-Content-Digest"] == digest_of(manifest)

    # docker pull: a fresh pull token from the same refresh token, manifest by tag, then blobs.
    pull = {"HTTP_AUTHORIZATION": f"Bearer {_refresh(client, refresh, f'repository:{name}:pull')}"}
    got = client.get(f"/v2/{name}/manifests/latest", HTTP_ACCEPT=DOCKER_ACCEPT, **pull)
    assert got.status_code == 200
    assert got.content == manifest
    assert got["Content-Type"] == DOCKER_MANIFEST
    for blob in (config, layer):
        response = client.get(f"/v2/{name}/blobs/{digest_of(blob)}", **pull)
        assert b"".join(response.streaming_content) == blob


def test_refresh_grant_is_capped_by_permission(client, alice, bob):
    refresh = _login(client, bob)
    name = f"{alice.username}/app"
    token = _refresh(client, refresh, f"repository:{name}:pull,push")
    response = client.post(f"/v2/{name}/blobs/uploads/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403


def test_cross_repository_mount_with_two_scopes(client, alice):
    refresh = _login(client, alice)
    source, target = f"{alice.username}/base", f"{alice.username}/derived"
    source_auth = {"HTTP_AUTHORIZATION": f"Bearer {_refresh(client, refresh, f'repository:{source}:pull,push')}"}
    layer = b"shared base layer"
    client.post(f"/v2/{source}/blobs/uploads/?digest={digest_of(layer)}", data=layer,
                content_type="application/octet-stream", **source_auth)
    token = _refresh(client, refresh, f"repository:{target}:pull,push", f"repository:{source}:pull")
    response = client.post(f"/v2/{target}/blobs/uploads/?mount={digest_of(layer)}&from={source}",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 201
    assert response["Location"] == f"/v2/{target}/blobs/{digest_of(layer)}"
