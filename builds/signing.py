"""Image signatures in cosign's "simple signing" format (REFERENCE.md §7, sigstore SIGNATURE_SPEC.md).

For a manifest digest `sha256:<hex>` in repository R we store, under tag `sha256-<hex>.sig` in R, an OCI
image manifest with config `{}` and ONE layer of media type
`application/vnd.dev.cosign.simplesigning.v1+json` (the payload), annotated with
`dev.cosignproject.cosign/signature` = base64 of the ECDSA P-256/SHA-256 DER signature of the exact
payload bytes. The key is the site's image-signing key (not the registry token key): `KEYS_DIR/
image-signing.key`, made on first use; its public half is served at `/signing-key.pub`.

Pushing goes through the registry's HTTP API (`RegistryHttpClient`), like any other client.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.exceptions import ImproperlyConfigured

from registry.oci.mediatypes import COSIGN_SIMPLE_SIGNING, OCI_CONFIG, OCI_MANIFEST

KEY_FILE = "image-signing.key"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"
HTTP_TIMEOUT = 60

_keys: dict[str, ec.EllipticCurvePrivateKey] = {}
_keys_lock = threading.Lock()


# --- The key --------------------------------------------------------------------------------------


def _create_key_file(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # fails if another process made the key first: theirs wins
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)


def image_signing_key(keys_dir: Path | str) -> ec.EllipticCurvePrivateKey:
    """The image-signing key in `keys_dir`, created on first use (ECDSA P-256)."""
    directory = Path(keys_dir)
    with _keys_lock:
        cached = _keys.get(str(directory))
        if cached is not None:
            return cached
        path = directory / KEY_FILE
        if not path.exists():
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_key_file(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ImproperlyConfigured(f"{path} must hold an EC P-256 private key")
        _keys[str(directory)] = key
        return key


def public_key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


# --- The format (pure) ------------------------------------------------------------------------------


def signature_tag(digest: str) -> str:
    """`sha256:<hex>` → `sha256-<hex>.sig` (cosign's tag for the signatures of that digest)."""
    algorithm, _, hexdigest = digest.partition(":")
    return f"{algorithm}-{hexdigest}.sig"


def simple_signing_payload(*, docker_reference: str, digest: str, optional: dict[str, str] | None) -> bytes:
    """The exact bytes that are signed and stored as the layer."""
    document = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": SIGNATURE_TYPE,
        },
        "optional": {str(k): str(v) for k, v in optional.items()} if optional is not None else None,
    }
    return json.dumps(document, separators=(",", ":")).encode()


def sign_payload(key: ec.EllipticCurvePrivateKey, payload: bytes) -> str:
    """base64 of the DER ECDSA-P256/SHA-256 signature of `payload`."""
    return base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()


def _descriptor(media_type: str, data: bytes, annotations: dict[str, str] | None = None) -> dict:
    descriptor: dict = {"mediaType": media_type, "size": len(data),
                        "digest": "sha256:" + hashlib.sha256(data).hexdigest()}
    if annotations:
        descriptor["annotations"] = annotations
    return descriptor


@dataclass(frozen=True)
class SignatureArtifact:
    """Everything pushed for one signature: two blobs and the manifest that names them."""

    tag: str
    payload: bytes
    config: bytes
    manifest: bytes

    @property
    def blobs(self) -> list[bytes]:
        return [self.config, self.payload]


def signature_artifact(*, key: ec.EllipticCurvePrivateKey, docker_reference: str, digest: str,
                       optional: dict[str, str] | None) -> SignatureArtifact:
    payload = simple_signing_payload(docker_reference=docker_reference, digest=digest, optional=optional)
    config = b"{}"
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": _descriptor(OCI_CONFIG, config),
        "layers": [_descriptor(COSIGN_SIMPLE_SIGNING, payload, {SIGNATURE_ANNOTATION: sign_payload(key, payload)})],
    }
    body = json.dumps(manifest, separators=(",", ":")).encode()
    return SignatureArtifact(tag=signature_tag(digest), payload=payload, config=config, manifest=body)


# --- Pushing it over HTTP ---------------------------------------------------------------------------


class RegistryPushError(RuntimeError):
    pass


class RegistryHttpClient:
    """Just enough of a registry client to push small blobs and a manifest with Basic → Bearer auth."""

    def __init__(self, *, base_url: str, repository: str, username: str, password: str):
        self.base_url = base_url.rstrip("/")
        self.repository = repository
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.headers["Authorization"] = self._bearer(username, password)

    def _bearer(self, username: str, password: str) -> str:
        probe = self.session.get(f"{self.base_url}/v2/", timeout=HTTP_TIMEOUT, allow_redirects=False)
        challenge = probe.headers.get("WWW-Authenticate", "")
        if probe.status_code == 200 or not challenge.lower().startswith("bearer "):
            raise RegistryPushError(f"unexpected answer to GET /v2/: {probe.status_code} {challenge!r}")
        params = dict(part.split("=", 1) for part in challenge[7:].split(",") if "=" in part)
        params = {k.strip(): v.strip().strip('"') for k, v in params.items()}
        response = self.session.get(params["realm"], auth=(username, password), timeout=HTTP_TIMEOUT,
                                    params={"service": params.get("service", ""),
                                            "scope": f"repository:{self.repository}:pull,push"})
        if response.status_code != 200:
            raise RegistryPushError(f"token request refused: {response.status_code}")
        return f"Bearer {response.json()['token']}"

    def push_blob(self, data: bytes) -> None:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        url = f"{self.base_url}/v2/{self.repository}/blobs"
        if self.session.head(f"{url}/{digest}", timeout=HTTP_TIMEOUT).status_code == 200:
            return
        response = self.session.post(f"{url}/uploads/", params={"digest": digest}, data=data, timeout=HTTP_TIMEOUT,
                                     headers={"Content-Type": "application/octet-stream"})
        if response.status_code != 201:
            raise RegistryPushError(f"blob upload of {digest}: {response.status_code} {response.text[:300]}")

    def put_manifest(self, reference: str, body: bytes, media_type: str) -> str:
        response = self.session.put(f"{self.base_url}/v2/{self.repository}/manifests/{reference}", data=body,
                                    headers={"Content-Type": media_type}, timeout=HTTP_TIMEOUT)
        if response.status_code != 201:
            raise RegistryPushError(f"manifest PUT {reference}: {response.status_code} {response.text[:300]}")
        return response.headers.get("Docker-Content-Digest", "")


def push_signature(client: RegistryHttpClient, artifact: SignatureArtifact) -> str:
    """Push the signature's blobs and manifest; returns the manifest digest."""
    for blob in artifact.blobs:
        client.push_blob(blob)
    return client.put_manifest(artifact.tag, artifact.manifest, OCI_MANIFEST)
