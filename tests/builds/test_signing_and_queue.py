"""The signature format (pure) and the per-namespace concurrency limit (counted in the database)."""

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from builds import constants
from builds.lifecycle import build_claim
from builds.models import Build
from builds.services import builds_trigger
from builds.signing import signature_artifact, signature_tag

DIGEST = "sha256:" + "ab" * 32


def test_signature_artifact_is_cosign_simple_signing():
    key = ec.generate_private_key(ec.SECP256R1())
    artifact = signature_artifact(key=key, docker_reference="hub.example/alice/app", digest=DIGEST,
                                  optional={"commit": "c" * 40, "build": "7"})
    assert artifact.tag == signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"
    manifest = json.loads(artifact.manifest)
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["digest"] == "sha256:" + hashlib.sha256(b"{}").hexdigest()
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert layer["digest"] == "sha256:" + hashlib.sha256(artifact.payload).hexdigest()
    payload = json.loads(artifact.payload)
    assert payload == {"critical": {"identity": {"docker-reference": "hub.example/alice/app"},
                                    "image": {"docker-manifest-digest": DIGEST},
                                    "type": "cosign container image signature"},
                       "optional": {"commit": "c" * 40, "build": "7"}}
    signature = base64.b64decode(layer["annotations"]["dev.cosignproject.cosign/signature"])
    key.public_key().verify(signature, artifact.payload, ec.ECDSA(hashes.SHA256()))


@pytest.mark.django_db
def test_concurrency_limit_keeps_excess_builds_queued(linked, settings):
    settings.HUB_BUILD_CONCURRENCY_PER_NAMESPACE = 1
    source, _ = linked
    first = builds_trigger(source=source, ref="refs/heads/main", commit="a" * 40, trigger="generic")[0]
    second = builds_trigger(source=source, ref="refs/heads/main", commit="b" * 40, trigger="generic")[0]
    assert build_claim(first.pk).state == constants.CLONING
    assert build_claim(second.pk) is None
    assert Build.objects.get(pk=second.pk).state == constants.QUEUED
    Build.objects.filter(pk=first.pk).update(state=constants.SUCCESS)
    assert build_claim(second.pk).state == constants.CLONING
