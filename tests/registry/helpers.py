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
