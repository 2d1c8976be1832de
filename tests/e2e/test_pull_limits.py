"""Pull rate limits with real clients: skopeo shows the refusal, nodes share the counters through
Redis, and the embedded counters (a file of the data dir) survive a restart."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from tests.e2e.clients import ContainerClients  # noqa: E402
from tests.live import start_hub  # noqa: E402

pytest_plugins = ["tests.e2e.clients", "tests.e2e.images"]
pytestmark = [pytest.mark.e2e]
LIMIT = 3


def shared_redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("nodes share pull counters through Redis (tests/services.sh provides it)")
    url = urlunsplit(urlsplit(url)._replace(path="/15"))
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter("wharf:ratelimit:*"):
        client.delete(key)
    return url


@pytest.fixture
def two_nodes(django_db_setup, artifacts_dir):
    redis_url = shared_redis_url()
    nodes = [start_hub(artifacts_dir, with_worker=False, REDIS_URL=redis_url,
                       HUB_PULL_LIMIT_ANONYMOUS=str(LIMIT), HUB_PULL_LIMIT_USER="100") for _ in range(2)]
    yield nodes
    for node in nodes:
        node.stop()


def push_public(node, clients: ContainerClients, account, image, repo: str) -> None:
    clients.skopeo_push(image, f"{node.host}/{repo}:v1", creds=account.creds)


def test_skopeo_shows_the_limit_and_two_nodes_share_one_budget(two_nodes, live_user, test_images, tmp_path):
    from tests.conftest import PASSWORD

    user = live_user()
    repo = f"{user.username}/limited"
    hosts = [node.host for node in two_nodes]
    clients = ContainerClients(tmp_path / "clients", hosts)
    clients.skopeo_push(test_images.unique(), f"{hosts[0]}/{repo}:v1", creds=(user.username, PASSWORD))

    for number in range(LIMIT):  # anonymous, alternating between the nodes
        clients.skopeo_inspect(f"{hosts[number % 2]}/{repo}:v1", raw=True)
    refused = clients.skopeo_inspect(f"{hosts[LIMIT % 2]}/{repo}:v1", raw=True, check=False)
    assert refused.returncode != 0
    assert "toomanyrequests" in refused.stderr.lower() and "pull rate limit" in refused.stderr, refused.stderr

    # Signed in, the same address has the account's own budget.
    clients.skopeo_inspect(f"{hosts[0]}/{repo}:v1", raw=True, creds=(user.username, PASSWORD))
    # HEAD never counts, and says nothing is left for the address.
    token = requests.get(f"{two_nodes[1].url}/token", params={"scope": f"repository:{repo}:pull",
                                                             "service": hosts[1]}, timeout=10).json()["token"]
    head = requests.head(f"{two_nodes[1].url}/v2/{repo}/manifests/v1", timeout=10,
                         headers={"Authorization": f"Bearer {token}",
                                  "Accept": "application/vnd.oci.image.manifest.v1+json"})
    assert head.status_code == 200
    assert head.headers["ratelimit-remaining"] == "0;w=21600"


@pytest.mark.sqlite
def test_embedded_counters_survive_a_restart(django_db_setup, artifacts_dir, tmp_path, live_user, test_images):
    from tests.conftest import PASSWORD

    if os.environ.get("REDIS_URL"):
        pytest.skip("the embedded setup's counters: run by the SQLite suite (no Redis, database cache)")

    settings = {"REDIS_URL": "", "HUB_DATA_DIR": str(tmp_path / "data"), "HUB_PULL_LIMIT_ANONYMOUS": str(LIMIT)}
    hub = start_hub(artifacts_dir, with_worker=False, **settings)
    user = live_user()
    repo = f"{user.username}/kept"
    clients = ContainerClients(tmp_path / "clients", [hub.host])
    try:
        clients.skopeo_push(test_images.unique(), f"{hub.host}/{repo}:v1", creds=(user.username, PASSWORD))
        clients.skopeo_inspect(f"{hub.host}/{repo}:v1", raw=True)
        clients.skopeo_inspect(f"{hub.host}/{repo}:v1", raw=True)
    finally:
        hub.stop()
    hub = start_hub(artifacts_dir, with_worker=False, **settings)
    try:
        clients = ContainerClients(tmp_path / "clients-again", [hub.host])
        clients.skopeo_inspect(f"{hub.host}/{repo}:v1", raw=True)
        refused = clients.skopeo_inspect(f"{hub.host}/{repo}:v1", raw=True, check=False)
        assert refused.returncode != 0 and "pull rate limit" in refused.stderr, refused.stderr
    finally:
        hub.stop()
