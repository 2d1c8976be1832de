"""Storage quotas against a live gunicorn: skopeo prints the refusal, a PATCH past the quota is answered
before its body is read, and concurrent pushes are counted exactly (those that fit, no more)."""

from __future__ import annotations

import hashlib
import socket
import threading

import pytest

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from tests.e2e.clients import Account, ContainerClients, RegistryApi, Target  # noqa: E402
from tests.live import start_hub  # noqa: E402

pytest_plugins = ["tests.e2e.clients", "tests.e2e.images"]
pytestmark = [pytest.mark.e2e]
MIB = 1024 * 1024
QUOTA = 3 * MIB + MIB // 2  # room for three 1 MiB blobs, not four


@pytest.fixture(scope="module")
def quota_hub(django_db_setup, artifacts_dir):
    hub = start_hub(artifacts_dir, with_worker=False, HUB_NAMESPACE_QUOTA_BYTES=str(QUOTA))
    yield hub
    hub.stop()


@pytest.fixture
def account(live_user):
    from tests.conftest import PASSWORD

    user = live_user()
    return Account(user.username, PASSWORD)


def usage_of(committed, name: str) -> int:
    from accounts.models import Namespace
    from registry.services.quotas import namespace_usage

    with committed():
        return namespace_usage(namespace_id=Namespace.objects.get(name=name).pk)


def test_skopeo_prints_the_quota_refusal(quota_hub, account, test_images, tmp_path, committed):
    clients = ContainerClients(tmp_path / "clients", [quota_hub.host])
    refused = clients.skopeo_push(test_images.large(4), f"{quota_hub.host}/{account.username}/big:v1",
                                  creds=account.creds, check=False)
    assert refused.returncode != 0
    assert "denied: storage quota exceeded" in refused.stderr, refused.stderr
    assert "used of 3.5 MiB" in refused.stderr and "broken pipe" not in refused.stderr, refused.stderr
    assert usage_of(committed, account.username) < MIB  # the refused layer's bytes are gone
    # What fits still goes in.
    clients.skopeo_push(test_images.unique(), f"{quota_hub.host}/{account.username}/small:v1",
                        creds=account.creds)


def test_a_patch_past_the_quota_is_answered_before_its_body_is_sent(quota_hub, account):
    target = Target(kind="hub", host=quota_hub.host, server=quota_hub)
    api = target.api(account, f"{account.username}/raw")
    location = api.start_upload()
    path = location.split(quota_hub.host, 1)[1]
    host, port = quota_hub.host.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=60) as sock:  # generous: a loaded CI host
        sock.sendall((f"PATCH {path} HTTP/1.1\r\nHost: {quota_hub.host}\r\n"
                      f"Authorization: {api.headers['Authorization']}\r\n"
                      f"Content-Type: application/octet-stream\r\nContent-Length: {100 * MIB}\r\n\r\n").encode())
        answer = b""
        # Until the error JSON is complete, however the body is framed (Content-Length or chunked).
        while b"\r\n\r\n" not in answer or b"}]}" not in answer.split(b"\r\n\r\n", 1)[1]:
            chunk = sock.recv(65536)  # no body byte was sent: the answer comes all the same
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert b'"code": "DENIED"' in answer and b"storage quota exceeded" in answer and b"100 MiB more" in answer


@pytest.mark.sqlite
@pytest.mark.parametrize("round_", range(3))  # a race: three fresh namespaces, three chances to show it
def test_concurrent_pushes_that_do_not_all_fit(quota_hub, live_user, committed, round_):
    """Six 1 MiB blobs pushed at once into two repositories of one namespace: exactly three fit.

    Every PATCH passes the check made before its bytes are read (nothing is stored yet); the check
    under the namespace's lock, when the bytes are recorded, refuses the fourth and later ones.
    """
    from tests.conftest import PASSWORD

    account = Account(live_user().username, PASSWORD)
    target = Target(kind="hub", host=quota_hub.host, server=quota_hub)
    apis = [target.api(account, f"{account.username}/{('left', 'right')[n % 2]}") for n in range(6)]
    blobs = [bytes([round_ * 6 + n]) * MIB for n in range(6)]
    locations = [api.start_upload() for api in apis]  # all of them before any byte: all pass the start check
    barrier = threading.Barrier(len(apis))
    results: list[tuple[int, str]] = [(0, "")] * len(apis)

    def push(n: int, api: RegistryApi) -> None:
        barrier.wait()
        patch = api.request("PATCH", locations[n], data=blobs[n], headers={
            "Content-Type": "application/octet-stream", "Content-Range": f"0-{MIB - 1}"})
        if patch.status_code != 202:
            results[n] = (patch.status_code, patch.text)
            return
        digest = "sha256:" + hashlib.sha256(blobs[n]).hexdigest()
        put = api.request("PUT", api.absolute(patch.headers["Location"]), params={"digest": digest})
        results[n] = (put.status_code, put.text)

    threads = [threading.Thread(target=push, args=(n, api)) for n, api in enumerate(apis)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(status for status, _ in results) == [201, 201, 201, 403, 403, 403], results
    for status, text in results:
        if status == 403:
            assert '"code": "DENIED"' in text and "storage quota exceeded" in text, text
    assert usage_of(committed, account.username) == 3 * MIB
