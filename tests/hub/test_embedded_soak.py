"""Soak on the embedded defaults (`manage.py serve`: SQLite, the wharf-fs:// broker): pushes, pulls and
webhook deliveries go on for about a minute while empty and torn messages are dropped into the
broker's queue folder. The site answers /healthz throughout, every push's webhook reaches the receiver
exactly once, malformed messages are set aside, and serve restarts no child."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.conftest import PASSWORD
from tests.hub.support import run_django
from tests.hub.test_serve import serve, stop
from tests.live import wait_until
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.e2e

SOAK_SECONDS = 30
INJECT_EVERY = 0.3  # seconds between two malformed messages dropped into the queue
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def create_hooked_repository(env: dict[str, str], username: str, receiver_url: str) -> None:
    run_django(env, (
        "from accounts.models import Namespace\n"
        "from tests.factories import RepositoryFactory, UserFactory\n"
        "from webhooks import services\n"
        f"user = UserFactory(username={username!r})\n"
        "repo = RepositoryFactory(namespace=Namespace.objects.get(user=user), name='soak')\n"
        f"services.webhook_create(repository=repo, name='soak', url={receiver_url!r}, events=['push'], user=user)\n"
    ))


class Registry:
    """Raw registry HTTP for one repository, with a bearer token for pull and push."""

    def __init__(self, url: str, repo: str, username: str):
        self.url, self.repo = url, repo
        self.session = requests.Session()
        challenge = self.session.get(f"{url}/v2/", timeout=10).headers["WWW-Authenticate"]
        params = dict(part.split("=", 1) for part in challenge.split(" ", 1)[1].replace('"', "").split(","))
        token = self.session.get(params["realm"], params={"service": params["service"],
                                                          "scope": f"repository:{repo}:pull,push"},
                                 auth=(username, PASSWORD), timeout=10).json()["token"]
        self.session.headers["Authorization"] = f"Bearer {token}"

    def push_blob(self, data: bytes) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        started = self.session.post(f"{self.url}/v2/{self.repo}/blobs/uploads/", timeout=30)
        assert started.status_code == 202, started.text
        location = requests.compat.urljoin(self.url, started.headers["Location"])
        put = self.session.put(location, params={"digest": digest}, data=data, timeout=30,
                               headers={"Content-Type": "application/octet-stream"})
        assert put.status_code == 201, put.text
        return {"digest": digest, "size": len(data)}

    def push_image(self, tag: str) -> str:
        content = f"soak {tag} {uuid.uuid4()}".encode()
        layer = gzip.compress(content, mtime=0)
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(content).hexdigest()]}
                             }).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **self.push_blob(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **self.push_blob(layer)}],
        }).encode()
        put = self.session.put(f"{self.url}/v2/{self.repo}/manifests/{tag}", data=manifest, timeout=30,
                               headers={"Content-Type": OCI_MANIFEST})
        assert put.status_code == 201, put.text
        return put.headers["Docker-Content-Digest"]

    def pull(self, tag: str) -> None:
        manifest = self.session.get(f"{self.url}/v2/{self.repo}/manifests/{tag}", timeout=30,
                                    headers={"Accept": OCI_MANIFEST})
        assert manifest.status_code == 200, manifest.text
        for layer in manifest.json()["layers"]:
            blob = self.session.get(f"{self.url}/v2/{self.repo}/blobs/{layer['digest']}", timeout=30)
            assert blob.status_code == 200 and "sha256:" + hashlib.sha256(blob.content).hexdigest() == layer["digest"]


class Background(threading.Thread):
    """Runs `step` every `interval` seconds until stopped; counts the runs and keeps the failures."""

    def __init__(self, step, interval: float):
        super().__init__(daemon=True)
        self.step, self.interval = step, interval
        self.runs, self.failures = 0, []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.interval):
            try:
                self.step()
                self.runs += 1
            except Exception as error:  # noqa: BLE001 - reported by the test
                self.failures.append(f"{time.strftime('%X')} {error!r}")

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def test_soak_pushes_pulls_and_webhooks_while_malformed_messages_are_injected(data_dir):
    receiver = Receiver()
    served = serve(data_dir.parent, prepare=False, HUB_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
                   HUB_WEBHOOK_BACKOFF_SECONDS="0.2", HUB_WEBHOOK_SWEEP_SECONDS="2", HUB_PULL_FLUSH_SECONDS="1")
    queue = served.data_dir / "celery" / "queue"
    injected: list[str] = []

    def inject() -> None:
        # Sorted before every real message, so the worker meets them first.
        name = f"00000000000000000_{uuid.uuid4()}.celery.msg"
        torn = len(injected) % 2
        (queue / name).write_bytes(b'{"body": "eyJ0YXNrIjog", "properties": {"deliv' if torn else b"")
        injected.append(name)

    def healthy() -> None:
        response = requests.get(f"{served.url}/healthz", timeout=5)
        assert response.status_code == 200, response.status_code

    try:
        username = f"soak{uuid.uuid4().hex[:8]}"
        create_hooked_repository(served.env, username, receiver.url("/soak"))
        registry = Registry(served.url, f"{username}/soak", username)
        injector, health = Background(inject, INJECT_EVERY), Background(healthy, 0.5)
        injector.start()
        health.start()
        pushed: list[str] = []
        deadline = time.monotonic() + SOAK_SECONDS
        try:
            while time.monotonic() < deadline:
                tag = f"t{len(pushed)}"
                registry.push_image(tag)
                pushed.append(tag)
                registry.pull(tag)
                if len(pushed) > 1:
                    registry.pull(pushed[-2])
        finally:
            injector.stop()
            health.stop()

        def delivered_tags() -> Counter:
            return Counter(json.loads(request.body)["push_data"]["tag"] for request in list(receiver.requests))

        wait_until(lambda: set(delivered_tags()) >= set(pushed), timeout=60, interval=0.5,
                   message=f"a webhook for every push ({len(pushed)}):\n{served.log()}")
        time.sleep(3)  # two sweeps of the delivery retries: no late second delivery
        deliveries = delivered_tags()
        assert len(pushed) >= 10, f"only {len(pushed)} pushes in {SOAK_SECONDS} s"
        assert set(deliveries) == set(pushed)
        assert [tag for tag, count in deliveries.items() if count != 1] == [], "a push's webhook came twice"
        assert health.failures == [] and health.runs >= SOAK_SECONDS, health.failures[:5]
        assert len(injected) >= SOAK_SECONDS * 2.5 and injector.failures == []
        wait_until(lambda: not any(name in os.listdir(queue) for name in injected), timeout=15,
                   message="the worker to take every injected message")
        set_aside = {path.name for path in (served.data_dir / "celery" / "malformed").iterdir()}
        assert set(injected) <= set_aside
        log = served.log_path.read_text(errors="replace")
        assert "restart" not in log and "Unrecoverable error" not in log, log[-4000:]
        assert served.process.poll() is None
    finally:
        receiver.close()
        assert stop(served) == []
    assert served.process.returncode == 0
    assert Path(served.data_dir / "celery" / "processing").is_dir()
