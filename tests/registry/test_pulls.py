"""Pull statistics as Docker Hub counts them, with the database buffer and with Redis."""

import os

import pytest
from django.utils import timezone

from registry import pulls
from registry.models import PendingPull, Tag
from repositories.models import PullStat, Repository
from tests.registry.helpers import (
    OCI_INDEX,
    artifact_manifest,
    descriptor,
    digest_of,
    index_manifest,
    pull_push,
    push_blob,
    push_image,
    push_manifest,
)

pytestmark = [pytest.mark.django_db]


@pytest.fixture(params=["database", "redis"])
def backend(request, settings):
    """Each test runs against both pull buffers; Redis only when the environment provides one."""
    with pulls.local_buffer.lock:  # pulls other tests never flushed must not count here
        pulls.local_buffer.counts.clear()
    PendingPull.objects.all().delete()
    if request.param == "database":
        settings.REDIS_URL = ""
    else:
        url = os.environ.get("HUB_TEST_REDIS_URL") or os.environ.get("REDIS_URL")
        if not url:
            pytest.skip("no Redis in this environment (REDIS_URL unset)")
        settings.REDIS_URL = url
        pulls._redis.cache_clear()
        pulls._redis().delete(pulls.REDIS_KEY, f"{pulls.REDIS_KEY}:flushing")
    yield request.param
    if request.param == "redis":
        pulls._redis().delete(pulls.REDIS_KEY, f"{pulls.REDIS_KEY}:flushing")
        pulls._redis.cache_clear()


@pytest.fixture
def auth(client, alice, name):
    return pull_push(client, alice, name)


@pytest.fixture
def image(client, name, auth):
    body, _ = push_image(client, name, auth["HTTP_AUTHORIZATION"][7:], tag="v1")
    return body


def _stats(tag: str = "") -> int:
    return sum(PullStat.objects.filter(tag=tag).values_list("count", flat=True))


def test_manifest_get_is_one_pull(client, backend, name, auth, image):
    client.get(f"/v2/{name}/manifests/v1", **auth)
    assert pulls.flush_pull_counters() == 1
    repository = Repository.objects.get(name="app")
    assert repository.pull_count == 1
    assert repository.last_pulled_at is not None
    stat = PullStat.objects.get(repository=repository, tag="v1")
    assert stat.count == 1
    assert stat.day == timezone.now().date()
    assert PullStat.objects.get(repository=repository, tag="").count == 1
    assert Tag.objects.get(name="v1").last_pulled_at is not None


def test_each_get_counts(client, backend, name, auth, image):
    for _ in range(3):
        client.get(f"/v2/{name}/manifests/v1", **auth)
    pulls.flush_pull_counters()
    assert Repository.objects.get(name="app").pull_count == 3
    assert _stats("v1") == 3 and _stats("") == 3


def test_head_is_not_a_pull(client, backend, name, auth, image):
    client.head(f"/v2/{name}/manifests/v1", **auth)
    assert pulls.flush_pull_counters() == 0
    assert Repository.objects.get(name="app").pull_count == 0
    assert not PullStat.objects.exists()
    assert Tag.objects.get(name="v1").last_pulled_at is None


def test_get_by_digest_counts_for_the_repository_only(client, backend, name, auth, image):
    client.get(f"/v2/{name}/manifests/{digest_of(image)}", **auth)
    pulls.flush_pull_counters()
    assert Repository.objects.get(name="app").pull_count == 1
    assert list(PullStat.objects.values_list("tag", "count")) == [("", 1)]
    assert Tag.objects.get(name="v1").last_pulled_at is None


def test_failed_get_is_not_a_pull(client, backend, name, auth, image):
    client.get(f"/v2/{name}/manifests/nope", **auth)
    assert pulls.flush_pull_counters() == 0


def test_index_then_child_is_one_pull(client, backend, name, auth):
    token = auth["HTTP_AUTHORIZATION"][7:]
    children = []
    for arch in ("amd64", "arm64"):
        body, _ = push_image(client, name, token, tag=f"only-{arch}", arch=arch)
        children.append((body, "linux", arch))
    index = index_manifest(children)
    push_manifest(client, name, "multi", index, token, OCI_INDEX)
    client.get(f"/v2/{name}/manifests/multi", **auth)
    client.get(f"/v2/{name}/manifests/{digest_of(children[1][0])}", **auth)
    assert pulls.flush_pull_counters() == 1
    assert Repository.objects.get(name="app").pull_count == 1
    assert _stats("multi") == 1


def test_child_by_digest_without_the_index_is_a_pull(client, backend, name, auth):
    token = auth["HTTP_AUTHORIZATION"][7:]
    body, _ = push_image(client, name, token, tag="child")
    push_manifest(client, name, "multi", index_manifest([(body, "linux", "amd64")]), token, OCI_INDEX)
    client.get(f"/v2/{name}/manifests/{digest_of(body)}", **auth)
    assert pulls.flush_pull_counters() == 1


def test_signature_tag_is_not_a_pull(client, backend, name, auth, image):
    token = auth["HTTP_AUTHORIZATION"][7:]
    push_blob(client, name, b"{}", token)
    signature = artifact_manifest(artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json")
    tag = f"sha256-{digest_of(image)[7:]}.sig"
    push_manifest(client, name, tag, signature, token)
    assert client.get(f"/v2/{name}/manifests/{tag}", **auth).status_code == 200
    assert pulls.flush_pull_counters() == 0


def test_referrer_is_not_a_pull(client, backend, name, auth, image):
    token = auth["HTTP_AUTHORIZATION"][7:]
    push_blob(client, name, b"{}", token)
    sbom = artifact_manifest(artifact_type="application/spdx+json", subject=descriptor(image))
    push_manifest(client, name, digest_of(sbom), sbom, token)
    assert client.get(f"/v2/{name}/manifests/{digest_of(sbom)}", **auth).status_code == 200
    assert pulls.flush_pull_counters() == 0


def test_flush_twice_counts_once(client, backend, name, auth, image):
    client.get(f"/v2/{name}/manifests/v1", **auth)
    pulls.flush_pull_counters()
    assert pulls.flush_pull_counters() == 0
    assert Repository.objects.get(name="app").pull_count == 1


def test_pulls_of_two_tags_are_kept_apart(client, backend, name, auth, image):
    push_manifest(client, name, "v2", image, auth["HTTP_AUTHORIZATION"][7:])
    client.get(f"/v2/{name}/manifests/v1", **auth)
    client.get(f"/v2/{name}/manifests/v2", **auth)
    client.get(f"/v2/{name}/manifests/v2", **auth)
    pulls.flush_pull_counters()
    assert (_stats("v1"), _stats("v2"), _stats("")) == (1, 2, 3)


def test_anonymous_pull_of_a_public_repository_counts(client, backend, name, image):
    client.get(f"/v2/{name}/manifests/v1", **pull_push(client, None, name, "pull"))
    assert pulls.flush_pull_counters() == 1
