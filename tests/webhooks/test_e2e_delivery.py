"""Delivery rules with the real Celery worker (and beat) of a live hub, against real receivers on loopback.

The in-process versions call the sweep themselves (test_sending.py); here pushes go through the
registry HTTP API of a live gunicorn, the worker sends on commit, and beat's sweep makes the retries
(every HUB_WEBHOOK_SWEEP_SECONDS, 10 s by default). Everything is polled with deadlines.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import socket
import tarfile
import threading
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from accounts.models import Namespace
from tests.conftest import PASSWORD
from tests.e2e.clients import Account, Target
from tests.factories import RepositoryFactory
from tests.live import start_hub, wait_until
from tests.webhooks.receiver import Answer, Receiver
from webhooks import payloads, services
from webhooks.models import Delivery, Webhook

pytestmark = pytest.mark.e2e

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DEADLINE = 60  # seconds: a retry waits for beat's sweep (10 s on the shared live hub)


# --- Pushing through the registry HTTP API --------------------------------------------------------


def _layer(text: str) -> bytes:
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        content = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def registry_push(hub, account: Account, repo: str, tag: str) -> str:
    """A fresh one-layer OCI image pushed as `repo:tag` (blobs, then the manifest PUT); its digest."""
    api = Target(kind="hub", host=hub.host, server=hub).api(account, repo)
    layer = _layer(f"{repo}:{tag} {uuid.uuid4()}\n")
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": []}, "comment": tag}).encode()
    descriptors = []
    for data in (config, layer):
        put = api.push_blob(data)
        assert put.status_code == 201, f"blob PUT: {put.status_code} {put.text[:500]}\n{hub.log()}"
        descriptors.append({"digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)})
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **descriptors[0]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **descriptors[1]}],
    }).encode()
    put = api.request("PUT", api.url(f"manifests/{tag}"), data=manifest, headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, f"manifest PUT: {put.status_code} {put.text[:500]}\n{hub.log()}"
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


# --- Fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def owner(live_user) -> Account:
    user = live_user()
    return Account(user.username, PASSWORD, user)


@pytest.fixture
def make_repo(owner, committed):
    def make(prefix: str = "hooked"):
        with committed():
            return RepositoryFactory(namespace=Namespace.objects.get(user=owner.user),
                                     name=f"{prefix}{uuid.uuid4().hex[:8]}")

    return make


@pytest.fixture
def make_hook(owner, committed):
    def make(repo, url: str, **kwargs) -> Webhook:
        kwargs.setdefault("name", "receiver")
        kwargs.setdefault("events", ["push"])
        with committed():
            return services.webhook_create(repository=repo, url=url, user=owner.user, **kwargs)

    return make


def repo_name(repo) -> str:
    return f"{repo.namespace.name}/{repo.name}"


def final_delivery(committed, hook: Webhook, *, timeout: float = DEADLINE, tag: str | None = None) -> Delivery:
    """Wait for the (only, or `tag`'s) delivery of `hook` to reach a final state; return it."""

    def done():
        with committed():
            deliveries = [d for d in Delivery.objects.filter(webhook_id=hook.pk, manual=False)
                          if tag is None or json.loads(d.body)["push_data"]["tag"] == tag]
            return deliveries[0] if len(deliveries) == 1 and deliveries[0].is_final else None

    return wait_until(done, timeout=timeout, message=f"a final delivery of webhook {hook.pk}")


class Listener:
    """A TCP listener that only counts the connections it accepts (to prove nothing was sent)."""

    def __init__(self, family: int, host: str):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        self.sock.close()


def ipv6_loopback_listener() -> Listener | None:
    if not socket.has_ipv6:
        return None
    try:
        return Listener(socket.AF_INET6, "::1")
    except OSError:
        return None


# --- The shared live hub ----------------------------------------------------------------------------


def test_500_then_200_is_retried_by_the_worker_and_succeeds(live_hub, owner, make_repo, make_hook, receiver,
                                                            committed):
    repo = make_repo()
    hook = make_hook(repo, receiver.url("/flaky"))
    receiver.answer(500, body=b"try later")
    registry_push(live_hub, owner, repo_name(repo), "v1")

    delivery = final_delivery(committed, hook)
    assert delivery.state == Delivery.State.SUCCEEDED, (delivery.error, live_hub.log())
    assert delivery.attempts == 2 and delivery.response_status == 200
    assert [entry["status"] for entry in delivery.attempt_log] == [500, 200]
    first, second = receiver.requests
    assert first.body == second.body == delivery.body.encode()
    assert first.headers["X-Hub-Delivery"] == second.headers["X-Hub-Delivery"] == str(delivery.pk)
    with committed():
        assert Webhook.objects.get(pk=hook.pk).consecutive_failures == 0


def test_404_is_not_retried(live_hub, owner, make_repo, make_hook, receiver, committed):
    repo = make_repo()
    hook = make_hook(repo, receiver.url("/gone"))
    receiver.default = Answer(status=404, body=b"no such hook")
    registry_push(live_hub, owner, repo_name(repo), "v1")

    delivery = final_delivery(committed, hook)
    assert delivery.state == Delivery.State.FAILED
    assert delivery.attempts == 1 and delivery.response_status == 404 and delivery.next_attempt_at is None
    assert "not retried" in delivery.error and delivery.response_body == "no such hook"

    # A barrier instead of a sleep: a test delivery answered 500 then 200 needs beat's sweep for its
    # retry, so once it is delivered a sweep has run since the 404 was recorded, and sent nothing more.
    receiver.default = Answer(status=200)
    receiver.answer(500)
    with committed():
        ping = services.webhook_ping(webhook=Webhook.objects.get(pk=hook.pk))

    def ping_delivered():
        with committed():
            return Delivery.objects.get(pk=ping.pk).state == Delivery.State.SUCCEEDED

    wait_until(ping_delivered, timeout=DEADLINE, message="the test delivery to be retried and delivered")
    sent = [r.headers["X-Hub-Delivery"] for r in receiver.requests]
    assert sent.count(str(delivery.pk)) == 1, sent
    with committed():
        delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.state == Delivery.State.FAILED


def test_refused_private_address_is_reported_not_contacted(live_hub, owner, make_repo, make_hook, receiver,
                                                           committed):
    repo = make_repo()
    private = make_hook(repo, "http://10.255.255.1/hook", name="private")
    control = make_hook(repo, receiver.url("/control"), name="control")
    # ::1 is loopback but outside the allowed 127.0.0.0/8: a listener there proves nothing connects.
    listener = ipv6_loopback_listener()
    loopback6 = make_hook(repo, f"http://[::1]:{listener.port}/hook", name="loopback6") if listener else None
    try:
        registry_push(live_hub, owner, repo_name(repo), "v1")
        assert final_delivery(committed, control).state == Delivery.State.SUCCEEDED

        refused = final_delivery(committed, private)
        assert refused.state == Delivery.State.FAILED and refused.attempts == 1
        assert refused.response_status is None and refused.next_attempt_at is None
        assert refused.error.startswith("Not sent: ") and "10.255.255.1 is a private address" in refused.error
        assert refused.attempt_log[0]["status"] is None
        if listener is not None:
            refused6 = final_delivery(committed, loopback6)
            assert refused6.state == Delivery.State.FAILED and refused6.response_status is None
            assert refused6.error.startswith("Not sent: ") and "::1 is a loopback address" in refused6.error
            assert listener.connections == 0
        with committed():
            # Reported on the webhook too: a failure counts towards turning it off.
            assert Webhook.objects.get(pk=private.pk).consecutive_failures == 1
    finally:
        if listener is not None:
            listener.close()
    assert [r.path for r in receiver.requests] == ["/control"]


def _login_session(hub, account: Account) -> requests.Session:
    session = requests.Session()
    page = session.get(f"{hub.url}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(f"{hub.url}/accounts/login/", timeout=10, allow_redirects=False, data={
        "csrfmiddlewaretoken": token, "login": account.username, "password": account.password})
    assert response.status_code == 302, f"login: {response.status_code}\n{response.text[:2000]}"
    return session


def test_redeliver_sends_the_same_payload_again(live_hub, owner, make_repo, make_hook, receiver, committed):
    secret = f"redeliver-{uuid.uuid4().hex}"
    repo = make_repo()
    hook = make_hook(repo, receiver.url("/again"), secret=secret)
    registry_push(live_hub, owner, repo_name(repo), "v1")
    original = final_delivery(committed, hook)
    assert original.state == Delivery.State.SUCCEEDED

    # Through the JSON API, with a JWT from /v2/users/login.
    login = requests.post(f"{live_hub.url}/v2/users/login", timeout=10,
                          json={"username": owner.username, "password": owner.password})
    assert login.status_code == 200, login.text
    jwt = {"Authorization": f"Bearer {login.json()['token']}"}
    api = f"{live_hub.url}/v2/repositories/{repo_name(repo)}/webhooks/{hook.pk}/deliveries/"
    listed = requests.get(api, headers=jwt, timeout=10)
    assert listed.status_code == 200 and [d["id"] for d in listed.json()["results"]] == [str(original.pk)]
    response = requests.post(f"{api}{original.pk}/redeliver", headers=jwt, timeout=10)
    assert response.status_code == 202, response.text
    by_api = response.json()["id"]

    # Through the web page's redeliver button, with a session.
    session = _login_session(live_hub, owner)
    page = f"{live_hub.url}/r/{repo_name(repo)}/webhooks/{hook.pk}/deliveries/{original.pk}"
    response = session.post(f"{page}/redeliver", headers={"X-CSRFToken": session.cookies["csrftoken"]},
                            allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:2000]

    wait_until(lambda: len(receiver.requests) == 3, timeout=DEADLINE, message="two redeliveries")
    first, *again = receiver.requests
    assert first.headers["X-Hub-Delivery"] == str(original.pk)
    ids = {request.headers["X-Hub-Delivery"] for request in again}
    assert by_api in ids and len(ids) == 2 and str(original.pk) not in ids
    for request in receiver.requests:
        assert request.body == first.body  # byte for byte: the stored body, not a rebuilt one
        assert request.headers["X-Hub-Event"] == "push"
        assert payloads.verify(secret, request.body, request.headers["X-Hub-Signature-256"])

    def copies_recorded():
        with committed():
            copies = list(Delivery.objects.filter(redelivery_of=original.pk, state=Delivery.State.SUCCEEDED,
                                                  manual=True))
        return copies if len(copies) == 2 else None

    copies = wait_until(copies_recorded, timeout=30, message="the redeliveries to be recorded")
    assert {str(copy.pk) for copy in copies} == ids


# --- A hub of its own: turned off after 2 consecutive failures -----------------------------------


def _private_redis_url() -> dict[str, str]:
    """The dedicated hub must not share a queue with the shared live hub's worker (which would count
    failures against the default threshold): another Redis database, or (embedded) another data dir."""
    url = os.environ.get("REDIS_URL")
    if not url:
        return {}
    parts = urlsplit(url)
    return {"REDIS_URL": urlunsplit(parts._replace(path="/13"))}


@pytest.fixture(scope="module")
def strict_hub(django_db_setup, artifacts_dir, tmp_path_factory):
    """gunicorn and its own worker, disabling webhooks after 2 consecutive failed deliveries. Its beat
    does not sweep (its worker only sends what its pushes enqueue), so the shared hub's deliveries are
    never judged by this threshold. Its data dir is its own; start_hub gives it this process's encryption
    keys (tests.live.shared_encryption_keys), so it reads the webhooks made here."""
    hub = start_hub(artifacts_dir, HUB_WEBHOOK_DISABLE_AFTER="2", HUB_WEBHOOK_SWEEP_SECONDS="86400",
                    HUB_DATA_DIR=str(tmp_path_factory.mktemp("strict-hub")), **_private_redis_url())
    yield hub
    hub.stop()


def test_webhook_disabled_after_repeated_failures_stops_receiving(strict_hub, owner, make_repo, make_hook,
                                                                  committed):
    failing, control = Receiver(), Receiver()
    try:
        failing.default = Answer(status=404, body=b"nobody here")
        repo = make_repo()
        hook = make_hook(repo, failing.url("/broken"), name="broken")
        make_hook(repo, control.url("/control"), name="control")

        registry_push(strict_hub, owner, repo_name(repo), "v1")
        assert final_delivery(committed, hook, tag="v1").state == Delivery.State.FAILED
        with committed():
            first = Webhook.objects.get(pk=hook.pk)
        assert first.active and first.consecutive_failures == 1

        registry_push(strict_hub, owner, repo_name(repo), "v2")
        assert final_delivery(committed, hook, tag="v2").state == Delivery.State.FAILED

        def disabled():
            with committed():
                webhook = Webhook.objects.get(pk=hook.pk)
                return None if webhook.active else webhook

        webhook = wait_until(disabled, timeout=DEADLINE, message="the webhook to be disabled")
        assert webhook.consecutive_failures == 2 and webhook.disabled_at is not None
        assert webhook.disabled_reason.startswith("Disabled automatically after 2 consecutive failed deliveries."), \
            webhook.disabled_reason
        assert "404" in webhook.disabled_reason

        registry_push(strict_hub, owner, repo_name(repo), "v3")
        wait_until(lambda: len(control.requests) == 3, timeout=DEADLINE, message="the control webhook's 3 pushes")
        assert [json.loads(r.body)["push_data"]["tag"] for r in failing.requests] == ["v1", "v2"]
        with committed():
            assert Delivery.objects.filter(webhook_id=hook.pk).count() == 2
            assert not Webhook.objects.get(pk=hook.pk).active
    finally:
        failing.close()
        control.close()
