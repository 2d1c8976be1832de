"""Image signatures in cosign's "simple signing" format (REFERENCE.md §7, sigstore SIGNATURE_SPEC.md).

For a manifest digest `sha256:<hex>` in repository R we store, under tag `sha256-<hex>.sig` in R, an OCI
image manifest with config `{}` and ONE layer of media type
`application/vnd.dev.cosign.simplesigning.v1+json` (the payload), annotated with
`dev.cosignproject.cosign/signature` = base64 of the ECDSA P-256/SHA-256 DER signature of the exact
payload bytes. The key is the site's image-signing key (not the registry token key): `KEYS_DIR/
image-signing.key`, made on first use; its public half is served at `/signing-key.pub`.

The hub signs and stores the signature itself (`builds.lifecycle.build_sign`), when the build worker
asks it to: the key never leaves the hub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lib.keyfiles import load_or_create_p256_key
from oci.mediatypes import COSIGN_SIMPLE_SIGNING, OCI_CONFIG, OCI_MANIFEST

KEY_FILE = "image-signing.key"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIGNATURE_TYPE = "cosign container image signature"

_keys: dict[str, ec.EllipticCurvePrivateKey] = {}
_keys_lock = threading.Lock()


# --- The key --------------------------------------------------------------------------------------


def image_signing_key(keys_dir: Path | str) -> ec.EllipticCurvePrivateKey:
    """The image-signing key in `keys_dir`, created on first use (ECDSA P-256)."""
    directory = Path(keys_dir)
    with _keys_lock:
        cached = _keys.get(str(directory))
        if cached is None:
            cached = _keys[str(directory)] = load_or_create_p256_key(directory / KEY_FILE)
        return cached


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
