"""End to end: skopeo pushes to a real gunicorn; a real Celery worker (with beat) delivers the webhook
to a receiver on loopback, signed, with Docker Hub's payload."""

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import uuid

import pytest

from accounts.models import Namespace
from tests.conftest import PASSWORD
from tests.factories import RepositoryFactory
from tests.live import wait_until
from webhooks import payloads, services
from webhooks.models import Delivery

pytestmark = pytest.mark.e2e

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _blob(layout, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_oci_layout(layout, tag: str) -> str:
    """A one-layer image in an OCI layout; returns the manifest digest."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        content = f"webhook e2e {uuid.uuid4()}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    layer = gzip.compress(tar_bytes.getvalue(), mtime=0)
    diff_id = "sha256:" + hashlib.sha256(tar_bytes.getvalue()).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **_blob(layout, config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **_blob(layout, layer)}],
    }).encode()
    descriptor = {"mediaType": OCI_MANIFEST, **_blob(layout, manifest),
                  "annotations": {"org.opencontainers.image.ref.name": tag}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return descriptor["digest"]


def test_skopeo_push_fires_a_signed_docker_hub_webhook(live_hub, live_user, committed, receiver, tmp_path):
    user = live_user()
    secret = f"e2e-secret-{uuid.uuid4().hex}"
    with committed():
        repo = RepositoryFactory(namespace=Namespace.objects.get(user=user), name="hooked")
        hook = services.webhook_create(repository=repo, name="receiver", url=receiver.url("/wharf"),
                                       events=["push"], secret=secret, user=user)
    layout = tmp_path / "layout"
    digest = write_oci_layout(layout, "v1")

    pushed = subprocess.run(
        ["skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", f"{user.username}:{PASSWORD}",
         f"oci:{layout}:v1", f"docker://{live_hub.host}/{user.username}/hooked:v1"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert pushed.returncode == 0, f"{pushed.stderr}\n{live_hub.log()}"

    request = wait_until(lambda: receiver.requests and receiver.requests[0], timeout=60,
                         message="the webhook delivery to reach the receiver")
    assert request.path == "/wharf"
    assert request.headers["X-Hub-Event"] == "push"
    assert request.headers["User-Agent"] == "Wharf-Hookshot/1.0"
    assert payloads.verify(secret, request.body, request.headers["X-Hub-Signature-256"])
    data = json.loads(request.body)
    assert list(data) == ["callback_url", "push_data", "repository"]
    assert data["push_data"]["tag"] == "v1" and data["push_data"]["pusher"] == user.username
    assert data["push_data"]["digest"] == digest and data["push_data"]["media_type"] == OCI_MANIFEST
    assert isinstance(data["push_data"]["pushed_at"], int) and data["push_data"]["images"] == []
    assert data["repository"]["repo_name"] == f"{user.username}/hooked"
    assert data["repository"]["repo_url"] == f"{live_hub.url}/r/{user.username}/hooked"
    delivery_id = request.headers["X-Hub-Delivery"]
    assert data["callback_url"] == f"{live_hub.url}/u/{user.username}/hooked/hook/{uuid.UUID(delivery_id).hex}/"

    def recorded():
        with committed():
            return Delivery.objects.filter(pk=delivery_id, webhook=hook, state=Delivery.State.SUCCEEDED).exists()

    wait_until(recorded, timeout=30, message="the delivery to be recorded as delivered")
