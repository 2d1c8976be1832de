"""Test helpers for the registry protocol: tokens, blobs and manifests made in Python."""

from __future__ import annotations

import base64
import hashlib
import json

from tests.conftest import PASSWORD

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic(username: str, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def token_for(client, username: str | None, *scopes: str, password: str = PASSWORD) -> str:
    headers = {"HTTP_AUTHORIZATION": basic(username, password)} if username else {}
    query = [("service", "127.0.0.1:8000")] + [("scope", s) for s in scopes]
    response = client.get("/token", query, **headers)
    assert response.status_code == 200, response.content
    return response.json()["token"]


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def config_blob(os_name: str = "linux", arch: str = "amd64", variant: str = "", salt: str = "") -> bytes:
    config = {"architecture": arch, "os": os_name, "rootfs": {"type": "layers", "diff_ids": []},
              "config": {"Cmd": ["/bin/sh"]}, "history": [{"created_by": f"test {salt}"}]}
    if variant:
        config["variant"] = variant
    return json.dumps(config, sort_keys=True).encode()


def image_manifest(config: bytes, layers: list[bytes], media_type: str = OCI_MANIFEST,
                   subject: dict | None = None, artifact_type: str | None = None,
                   config_type: str | None = None) -> bytes:
    docker = media_type == DOCKER_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": config_type or (DOCKER_CONFIG if docker else OCI_CONFIG),
                   "digest": digest_of(config), "size": len(config)},
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker else OCI_LAYER,
             "digest": digest_of(layer), "size": len(layer)}
            for layer in layers
        ],
    }
    if subject is not None:
        manifest["subject"] = subject
    if artifact_type:
        manifest["artifactType"] = artifact_type
    return json.dumps(manifest, indent=2).encode()


def index_manifest(children: list[tuple[bytes, str, str]], media_type: str = OCI_INDEX) -> bytes:
    """children: (manifest bytes, os, arch)."""
    child_type = DOCKER_MANIFEST if media_type == DOCKER_LIST else OCI_MANIFEST
    return json.dumps({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            {"mediaType": child_type, "digest": digest_of(body), "size": len(body),
             "platform": {"os": os_name, "architecture": arch}}
            for body, os_name, arch in children
        ],
    }).encode()


def push_blob(client, name: str, data: bytes, token: str) -> str:
    digest = digest_of(data)
    response = client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data=data,
                           content_type="application/octet-stream", **bearer(token))
    assert response.status_code == 201, response.content
    return digest


def push_manifest(client, name: str, reference: str, body: bytes, token: str, media_type: str = OCI_MANIFEST):
    response = client.put(f"/v2/{name}/manifests/{reference}", data=body, content_type=media_type, **bearer(token))
    assert response.status_code == 201, response.content
    return response


def push_image(client, name: str, token: str, tag: str = "latest", media_type: str = OCI_MANIFEST,
               arch: str = "amd64", salt: str = "") -> tuple[bytes, list[bytes]]:
    config = config_blob(arch=arch, salt=salt or tag)
    layer = f"layer {name} {tag} {arch} {salt}".encode() * 100
    push_blob(client, name, config, token)
    push_blob(client, name, layer, token)
    body = image_manifest(config, [layer], media_type=media_type)
    push_manifest(client, name, tag, body, token, media_type)
    return body, [config, layer]


# --- Protocol test helpers (test_protocol_*.py) ---------------------------------------------------

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
SERVICE = "127.0.0.1:8000"


def pull_push(client, user, name: str, actions: str = "pull,push") -> dict[str, str]:
    """Bearer headers for `user` (or anonymous when None) asking `actions` on `name`."""
    username = user.username if user is not None else None
    return bearer(token_for(client, username, f"repository:{name}:{actions}"))


def assert_error(response, status: int, code: str) -> dict:
    """The response is the spec's error envelope with `code`, at `status`, with the API header."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response[API_VERSION[0]] == API_VERSION[1]
    if response.wsgi_request.method == "HEAD":
        assert response.content == b""
        return {}
    body = response.json()
    assert list(body) == ["errors"]
    [error] = body["errors"]
    assert set(error) == {"code", "message", "detail"}
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"]
    return error


def start_upload(client, name: str, headers: dict[str, str]) -> str:
    response = client.post(f"/v2/{name}/blobs/uploads/", **headers)
    assert response.status_code == 202, response.content
    return response["Location"]


def make_access_token(user, scope: str) -> str:
    """A personal access token's secret (scope: repo:public_read, repo:read, repo:write, repo:admin)."""
    from accounts.services import access_token_create

    _, secret = access_token_create(user=user, label="test", scope=scope)
    return secret


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="r",service="s"` → ("Bearer", {"realm": "r", "service": "s"})."""
    import re

    scheme, _, rest = header.partition(" ")
    return scheme, dict(re.findall(r'(\w+)="([^"]*)"', rest))


def artifact_manifest(*, artifact_type: str, subject: dict | None = None, layers: list[bytes] = (),
                      annotations: dict | None = None) -> bytes:
    """An OCI artifact: the empty config `{}` and optional subject (the referrers API's shape)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(b"{}"), "size": 2},
        "layers": [{"mediaType": "application/octet-stream", "digest": digest_of(layer), "size": len(layer)}
                   for layer in layers] or [
            {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(b"{}"), "size": 2}],
    }
    if subject is not None:
        manifest["subject"] = subject
    if annotations:
        manifest["annotations"] = annotations
    return json.dumps(manifest).encode()


def descriptor(body: bytes, media_type: str = OCI_MANIFEST) -> dict:
    return {"mediaType": media_type, "digest": digest_of(body), "size": len(body)}


S3_CREDENTIALS = {"aws_access_key_id": "wharf-test", "aws_secret_access_key": "wharf-test-secret"}


def s3_store(endpoint: str, bucket: str):
    """An S3 blob store on `bucket` (moto), writing parts of S3's minimum size."""
    from registry.blobstore.s3 import MIN_PART_BYTES, S3BlobStore

    return S3BlobStore(bucket=bucket, endpoint_url=endpoint, region_name="us-east-1",
                       access_key=S3_CREDENTIALS["aws_access_key_id"],
                       secret_key=S3_CREDENTIALS["aws_secret_access_key"], part_size=MIN_PART_BYTES)
