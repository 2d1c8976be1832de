"""Stateless web nodes: three gunicorn nodes with data dirs of their own (no shared disk), one PostgreSQL,
one Redis and one S3 endpoint (moto), behind HAProxy round-robin with no stickiness (tests/cluster.py).

Every request of an upload may land on another node; the clients must not notice, the bytes must be
exact, and a node that dies in the middle of a push costs the client a retry, never the data.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from tests.cluster import start_cluster  # noqa: E402
from tests.e2e.clients import Account, ContainerClients, Target  # noqa: E402
from tests.e2e.images import build_large_image  # noqa: E402
from tests.e2e.test_blob_write_once_race import race_two_patches  # noqa: E402
from tests.live import private_broker, wait_until  # noqa: E402
from tests.live import test_database_url as database_url  # noqa: E402

pytest_plugins = ["tests.e2e.clients", "tests.e2e.images"]
pytestmark = [pytest.mark.e2e]

MIB = 1024 * 1024
UPLOAD_ID = re.compile(r"/blobs/uploads/([0-9a-f-]{36})")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def s3(s3_server):
    return s3_server


@pytest.fixture(scope="module")
def cluster(django_db_setup, s3, tmp_path_factory, artifacts_dir):
    from django.conf import settings

    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        pytest.skip("nodes of a cluster share PostgreSQL (SQLite is one machine's database)")
    if not os.environ.get("REDIS_URL"):
        pytest.skip("nodes of a cluster share Redis (tests/services.sh provides it)")
    bucket = s3.make_bucket()
    shared = {
        "DJANGO_SETTINGS_MODULE": "tests.settings",  # the fast password hasher of the committed test users
        "HUB_TEST_LIVE": "1",
        "DATABASE_URL": database_url(),
        "HUB_PULL_FLUSH_SECONDS": "1",
        **private_broker(artifacts_dir),
        **s3.environment(bucket),
    }
    running = start_cluster(artifacts_dir / f"cluster-{uuid.uuid4().hex[:8]}", shared, nodes=3)
    running.start_worker()
    running.bucket = bucket
    yield running
    running.stop()


@pytest.fixture
def target(cluster) -> Target:
    """The cluster as the client harness's registry: the balancer's address."""
    return Target(kind="hub", host=cluster.host, server=cluster)


@pytest.fixture
def account(live_user) -> Account:
    from tests.conftest import PASSWORD

    user = live_user()
    return Account(user.username, PASSWORD, user)


@pytest.fixture
def clients(target, tmp_path) -> ContainerClients:
    return ContainerClients(tmp_path / "clients", [target.host])


def uploads_spread(cluster, since: dict[str, int]) -> dict[str, set[str]]:
    """Upload id → the nodes that served one of its requests, from the access logs written after `since`."""
    spread: dict[str, set[str]] = {}
    for node in cluster.nodes:
        for upload_id in UPLOAD_ID.findall(node.access_log()[since.get(node.name, 0):]):
            spread.setdefault(upload_id, set()).add(node.name)
    return spread


def log_marks(cluster) -> dict[str, int]:
    return {node.name: len(node.access_log()) for node in cluster.nodes}


def bucket_object(cluster, s3, digest: str) -> dict:
    algorithm, hexdigest = digest.split(":")
    return s3.client().get_object(Bucket=cluster.bucket, Key=f"blobs/{algorithm}/{hexdigest[:2]}/{hexdigest}")


def layer_digests_in(directory: Path) -> list[str]:
    """The layer digests of the image skopeo copied to `directory`, each checked against its bytes."""
    manifest = json.loads((directory / "manifest.json").read_text())
    digests = [layer["digest"] for layer in manifest["layers"]]
    for digest in digests:  # skopeo verified them while copying; check the bytes it kept too
        assert sha256((directory / digest.split(":")[1]).read_bytes()) == digest
    return digests


def assert_same_content(directory: Path, image) -> None:
    """The image in `directory` has `image`'s layers: skopeo compresses uncompressed layers when it
    pushes, so compare what they unpack to (the config's diff_ids), byte for byte."""
    manifest = json.loads((directory / "manifest.json").read_text())
    config = json.loads((directory / manifest["config"]["digest"].split(":")[1]).read_bytes())
    assert config["rootfs"]["diff_ids"] == image.config["rootfs"]["diff_ids"]
    for digest, diff_id in zip(layer_digests_in(directory), config["rootfs"]["diff_ids"], strict=True):
        hasher = hashlib.sha256()
        with gzip.open(directory / digest.split(":")[1]) as unpacked:
            while chunk := unpacked.read(MIB):
                hasher.update(chunk)
        assert f"sha256:{hasher.hexdigest()}" == diff_id


KEY_FILES = {"secret_key", "encryption.key", "registry-token.key", "registry-token.crt", "image-signing.key"}


def test_every_node_holds_the_first_nodes_keys_and_made_none_of_its_own(cluster):
    first = cluster.nodes[0].data_dir / "keys"
    assert {path.name for path in first.iterdir()} >= KEY_FILES, "the first node made its keys at start"
    for node in cluster.nodes[1:]:
        keys = node.data_dir / "keys"
        assert {path.name for path in keys.iterdir()} == {path.name for path in first.iterdir()}
        for name in KEY_FILES:
            assert (keys / name).read_bytes() == (first / name).read_bytes(), f"{node.name} has a {name} of its own"


def test_skopeo_pushes_and_pulls_through_any_node(cluster, target, account, clients, test_images, tmp_path, s3):
    image = test_images.unique()
    ref = target.ref(target.repo(account))
    marks = log_marks(cluster)
    clients.skopeo_push(image, ref, creds=account.creds)

    spread = uploads_spread(cluster, marks)
    assert len(spread) >= len(image.layer_digests), f"uploads seen in the access logs: {spread}"
    assert any(len(nodes) > 1 for nodes in spread.values()), f"no upload crossed nodes: {spread}"
    assert {name for nodes in spread.values() for name in nodes} == {node.name for node in cluster.nodes}

    clients.skopeo_pull_dir(ref, tmp_path / "pulled", creds=account.creds)
    assert layer_digests_in(tmp_path / "pulled") == image.layer_digests
    for digest in image.layer_digests:
        assert sha256(bucket_object(cluster, s3, digest)["Body"].read()) == digest


def test_pulls_through_every_node_are_counted_once_each(cluster, target, account, clients, test_images, committed):
    from repositories.models import Repository

    repo = target.repo(account)
    clients.skopeo_push(test_images.unique(), target.ref(repo), creds=account.creds)
    for _ in range(4):  # four manifest GETs: round-robin spreads them over the nodes
        clients.skopeo_inspect(target.ref(repo), creds=account.creds, raw=True)

    def counted() -> int:
        with committed():
            return Repository.objects.get(namespace__name=account.username, name=repo.split("/")[1]).pull_count

    wait_until(lambda: counted() >= 4, timeout=30, message="the worker to flush the pulls every node counted")
    time.sleep(2)  # another flush: nothing may be counted twice
    assert counted() == 4


def test_podman_pushes_docker_format_and_pulls_through_any_node(cluster, target, account, clients, test_images):
    image = test_images.unique()
    ref = target.ref(target.repo(account))
    clients.podman_login(target.host, *account.creds)
    clients.load(image, "localhost/scaleout:latest")
    marks = log_marks(cluster)
    clients.podman_push("localhost/scaleout:latest", ref, format="v2s2")
    spread = uploads_spread(cluster, marks)
    assert any(len(nodes) > 1 for nodes in spread.values()), f"no upload crossed nodes: {spread}"

    clients.run(["podman", "rmi", "-f", "localhost/scaleout:latest"])
    clients.podman_pull(ref)
    inspected = clients.run(["podman", "image", "inspect", ref]).json()[0]
    assert inspected["RootFS"]["Layers"] == image.config["rootfs"]["diff_ids"]


def test_a_chunked_upload_moves_between_nodes_with_chunks_of_any_size(cluster, target, account, s3):
    api = target.api(account, target.repo(account))
    # Smaller and larger than an S3 part (5 MiB): small ones are gathered, large ones cross a part.
    sizes = [1 * MIB, 300 * 1024, 3 * MIB + 7, 7 * MIB, 1, 2 * MIB]
    data = os.urandom(sum(sizes))
    location = api.start_upload()
    upload_id = UPLOAD_ID.search(location).group(1)
    offset = 0
    for size in sizes:
        # A new connection each time: round-robin sends each PATCH to the next node.
        response = requests.patch(location, data=data[offset:offset + size], timeout=60, headers={
            **api.headers, "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + size - 1}"})
        assert response.status_code == 202, response.text
        offset += size
        assert response.headers["Range"] == f"0-{offset - 1}"
        location = api.absolute(response.headers["Location"])

    stale = requests.patch(location, data=b"x" * 10, timeout=60, headers={
        **api.headers, "Content-Type": "application/octet-stream", "Content-Range": "0-9"})
    assert stale.status_code == 416, "a chunk at an offset already written must be refused on every node"
    status = requests.get(location, headers=api.headers, timeout=30)
    assert (status.status_code, status.headers["Range"]) == (204, f"0-{len(data) - 1}")

    put = requests.put(location, params={"digest": sha256(data)}, headers=api.headers, timeout=60)
    assert put.status_code == 201, put.text
    assert cluster.nodes_serving(upload_id) == {node.name for node in cluster.nodes}
    fetched = requests.get(api.url(f"blobs/{sha256(data)}"), headers=api.headers, timeout=60)
    assert fetched.status_code == 200 and sha256(fetched.content) == sha256(data)
    assert sha256(bucket_object(cluster, s3, sha256(data))["Body"].read()) == sha256(data)
    leftovers = s3.client().list_objects_v2(Bucket=cluster.bucket, Prefix=f"blobs/_uploads/{upload_id}")
    assert leftovers.get("KeyCount", 0) == 0, "the upload's parts were left in the bucket"


def test_monolithic_uploads_through_the_balancer(cluster, target, account, s3):
    api = target.api(account, target.repo(account))
    one_request = os.urandom(6 * MIB + 3)
    response = requests.post(api.url("blobs/uploads/"), params={"digest": sha256(one_request)}, data=one_request,
                             headers={**api.headers, "Content-Type": "application/octet-stream"}, timeout=60)
    assert response.status_code == 201, response.text

    post_then_put = os.urandom(2 * MIB)
    location = api.start_upload()
    response = requests.put(location, params={"digest": sha256(post_then_put)}, data=post_then_put,
                            headers={**api.headers, "Content-Type": "application/octet-stream"}, timeout=60)
    assert response.status_code == 201, response.text
    for data in (one_request, post_then_put):
        assert sha256(bucket_object(cluster, s3, sha256(data))["Body"].read()) == sha256(data)
        assert api.head_blob(sha256(data)).headers["Content-Length"] == str(len(data))


def test_a_wrong_digest_is_refused_whichever_node_hashed_the_chunks(cluster, target, account, s3):
    api = target.api(account, target.repo(account))
    data = os.urandom(6 * MIB)
    location = api.start_upload()
    for start in (0, 3 * MIB):
        response = requests.patch(location, data=data[start:start + 3 * MIB], timeout=60, headers={
            **api.headers, "Content-Type": "application/octet-stream",
            "Content-Range": f"{start}-{start + 3 * MIB - 1}"})
        assert response.status_code == 202
        location = api.absolute(response.headers["Location"])
    lie = sha256(data[:-1] + bytes([data[-1] ^ 1]))
    response = requests.put(location, params={"digest": lie}, headers=api.headers, timeout=60)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert api.head_blob(lie).status_code == 404


def test_racing_patches_on_two_nodes_never_overwrite_a_stored_blob(cluster, target, account, live_user, s3):
    from tests.conftest import PASSWORD

    layer = os.urandom(256 * 1024)
    victim = target.api(account, target.repo(account))
    assert victim.push_blob(layer).status_code == 201
    before = bucket_object(cluster, s3, sha256(layer))
    attacker_user = live_user()
    attacker_account = Account(attacker_user.username, PASSWORD, attacker_user)
    attacker = target.api(attacker_account, target.repo(attacker_account))
    statuses = []
    deadline = time.monotonic() + 20
    while len(statuses) < 20 and time.monotonic() < deadline:
        location = attacker.start_upload()
        # Two connections to the balancer: round-robin gives each PATCH a different node.
        patches = race_two_patches(attacker, location, layer, os.urandom(len(layer)), gap=0)
        put = attacker.request("PUT", location, params={"digest": sha256(layer)})
        assert put.status_code in (201, 400, 404), put.text
        statuses.append((*patches, put.status_code))
    after = bucket_object(cluster, s3, sha256(layer))
    assert sha256(after["Body"].read()) == sha256(layer)
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"]), \
        f"the stored object was rewritten; statuses {statuses}"
    assert len(statuses) >= 5, f"only {len(statuses)} rounds in 20 s"


@pytest.mark.parametrize("stray", ["the same bytes", "other bytes"])
def test_a_stray_object_in_the_bucket_is_verified_from_s3_before_a_push_publishes_over_it(
        cluster, target, account, s3, stray):
    """An object with no row (a publish whose transaction failed) is re-read from S3 by the node taking
    the PUT, inside a gevent worker, and kept only if it hashes to its name."""
    data = os.urandom(3 * MIB)
    algorithm, hexdigest = sha256(data).split(":")
    stored = data if stray == "the same bytes" else os.urandom(len(data))
    s3.client().put_object(Bucket=cluster.bucket, Key=f"blobs/{algorithm}/{hexdigest[:2]}/{hexdigest}", Body=stored)
    api = target.api(account, target.repo(account))
    assert api.push_blob(data).status_code == 201
    assert sha256(bucket_object(cluster, s3, sha256(data))["Body"].read()) == sha256(data)
    assert sha256(api.get_blob(sha256(data)).content) == sha256(data)


def test_uploads_of_one_blob_racing_on_every_node_publish_it_once(cluster, target, account, s3):
    data = os.urandom(MIB)
    apis = [target.api(account, target.repo(account)) for _ in range(6)]
    results: list[int] = []
    threads = [threading.Thread(target=lambda api=api: results.append(api.push_blob(data).status_code))
               for api in apis]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == [201] * 6
    assert sha256(bucket_object(cluster, s3, sha256(data))["Body"].read()) == sha256(data)
    assert apis[0].head_blob(sha256(data)).headers["Content-Length"] == str(len(data))


def test_a_node_killed_mid_push_costs_a_retry_not_the_image(cluster, target, account, clients, tmp_path):
    image = build_large_image(tmp_path / "large", 96)
    ref = target.ref(target.repo(account))
    outcome: dict[str, object] = {}

    def push() -> None:
        outcome["first"] = clients.skopeo_push(image, ref, creds=account.creds, check=False)

    pusher = threading.Thread(target=push)
    pusher.start()
    victim = wait_until(lambda: next(iter(cluster.balancer.busy_servers(min_age_seconds=1)), None),
                        timeout=60, interval=0.05, message="a node to be serving the push")
    cluster.node(victim).kill()
    pusher.join(timeout=180)
    first = outcome["first"]
    assert first.returncode != 0, "the node was killed while it streamed the layer: the client must have seen it"
    # The client's retry (a new upload, on the surviving nodes) succeeds.
    clients.skopeo_push(image, ref, creds=account.creds)
    survivors = {node.name for node in cluster.nodes if node.alive}
    wait_until(lambda: cluster.balancer.servers_up() == survivors, timeout=15, message="haproxy to drop the node")
    clients.skopeo_pull_dir(ref, tmp_path / "pulled", creds=account.creds)
    assert_same_content(tmp_path / "pulled", image)
    print(f"killed {victim} mid-push; the first push exited {first.returncode}:\n{first.stderr[-600:]}")

    # A node started later, with the first node's keys and nothing else, serves the same content.
    late = cluster.start_node()
    late_clients = ContainerClients(tmp_path / "late-clients", [late.host])
    late_clients.skopeo_pull_dir(ref.replace(cluster.host, late.host), tmp_path / "late", creds=account.creds)
    assert_same_content(tmp_path / "late", image)
