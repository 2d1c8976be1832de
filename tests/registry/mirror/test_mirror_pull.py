"""Pull through a mirrored name with a fake upstream: misses fetch and store, hits do not, tags are
revalidated once per TTL, a failing upstream leaves cached content served (and said so), blobs are
verified before they are stored and served only under the repository they are linked to."""

from __future__ import annotations

import threading

import pytest
from django.db import connections

from registry.mirror.upstream import UpstreamRateLimited, UpstreamUnavailable
from registry.models import Blob, BlobUpload, Manifest, ManifestBlob, ManifestChild, RepositoryBlob, Tag
from repositories.models import Repository
from tests.registry.helpers import bearer, digest_of, token_for
from tests.registry.mirror.mirror_fakes import PREFIX, installed

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]  # the embedded defaults too: file locks, database cache


@pytest.fixture
def upstream(settings, private_cache):
    yield from installed(settings)


ACCEPT = {"HTTP_ACCEPT": "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json"}


def pull_auth(client, user, name):
    return bearer(token_for(client, user.username, f"repository:{name}:pull"))


def get_manifest(client, auth, name, reference, method="get"):
    return getattr(client, method)(f"/v2/{name}/manifests/{reference}", **auth, **ACCEPT)


def read_blob(client, auth, name, digest):
    response = client.get(f"/v2/{name}/blobs/{digest}", **auth)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


def test_miss_fetches_stores_and_links(client, alice, upstream):
    body = upstream.add_image("library/alpine", "3.20", layers=(b"the layer bytes",))
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)

    response = get_manifest(client, auth, name, "3.20")
    assert response.status_code == 200, response.content
    assert response.content == body
    assert response["Docker-Content-Digest"] == digest_of(body)
    assert response["X-Wharf-Mirror"] == "miss"
    repository = Repository.objects.get(namespace__name=PREFIX, name="library/alpine")
    assert repository.namespace.kind == "mirror" and repository.is_private
    assert Tag.objects.get(repository=repository, name="3.20").manifest.digest == digest_of(body)

    # Blobs: streamed on the first GET, stored, linked and then served from the store.
    layer = digest_of(b"the layer bytes")
    response, data = read_blob(client, auth, name, layer)
    assert response.status_code == 200 and data == b"the layer bytes"
    assert response["X-Wharf-Mirror"] == "miss"
    blob = Blob.objects.get(digest=layer)
    assert RepositoryBlob.objects.filter(repository=repository, blob=blob).exists()
    assert ManifestBlob.objects.filter(manifest__digest=digest_of(body), blob=blob).exists()  # GC keeps it
    response, data = read_blob(client, auth, name, layer)
    assert response.status_code == 200 and data == b"the layer bytes"
    assert "X-Wharf-Mirror" not in response
    assert upstream.count("blob") == 1

    # A hit within the TTL asks nothing upstream; a digest never does.
    assert get_manifest(client, auth, name, "3.20")["X-Wharf-Mirror"] == "hit"
    assert get_manifest(client, auth, name, digest_of(body))["X-Wharf-Mirror"] == "hit"
    assert upstream.count("manifest") == 1 and upstream.count("head") == 0


def test_docker_hub_official_short_name_is_the_same_repository(client, alice, upstream):
    upstream.add_image("library/busybox", "latest")
    auth = pull_auth(client, alice, f"{PREFIX}/busybox")
    assert get_manifest(client, auth, f"{PREFIX}/busybox", "latest").status_code == 200
    auth = pull_auth(client, alice, f"{PREFIX}/library/busybox")
    assert get_manifest(client, auth, f"{PREFIX}/library/busybox", "latest")["X-Wharf-Mirror"] == "hit"
    assert Repository.objects.filter(namespace__name=PREFIX).count() == 1


def test_tag_revalidated_once_per_ttl_and_moves(client, alice, upstream, settings):
    upstream.add_image("library/alpine", "latest", salt="one")
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, "latest")["X-Wharf-Mirror"] == "miss"

    settings.HUB_MIRROR_TTL_SECONDS = 0  # every request is due: a HEAD, no GET while it did not move
    assert get_manifest(client, auth, name, "latest")["X-Wharf-Mirror"] == "revalidated"
    assert upstream.count("head") == 1 and upstream.count("manifest") == 1

    moved = upstream.add_image("library/alpine", "latest", salt="two")
    response = get_manifest(client, auth, name, "latest")
    assert response["X-Wharf-Mirror"] == "miss" and response.content == moved
    assert upstream.count("head") == 2 and upstream.count("manifest") == 2

    settings.HUB_MIRROR_TTL_SECONDS = 300  # the first fetch marked the tag fresh for 300 s: no more HEADs
    assert get_manifest(client, auth, name, "latest")["X-Wharf-Mirror"] == "hit"
    assert upstream.count("head") == 2


@pytest.mark.parametrize("failure", [UpstreamUnavailable("connection refused"), UpstreamRateLimited("429", 30)])
def test_failing_upstream_serves_cached_and_says_so(client, alice, upstream, settings, failure):
    body = upstream.add_image("library/alpine", "latest", layers=(b"cached layer",))
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    get_manifest(client, auth, name, "latest")
    read_blob(client, auth, name, digest_of(b"cached layer"))

    upstream.fail = failure
    settings.HUB_MIRROR_TTL_SECONDS = 0
    response = get_manifest(client, auth, name, "latest")
    assert response.status_code == 200 and response.content == body
    assert response["X-Wharf-Mirror"] == "stale"
    assert response["Warning"] == '110 - "stale: upstream unavailable"'
    response, data = read_blob(client, auth, name, digest_of(b"cached layer"))
    assert response.status_code == 200 and data == b"cached layer"

    # What was never cached cannot be served: 503 UNAVAILABLE, or 429 passed on.
    response = get_manifest(client, auth, name, "edge")
    expected = 429 if isinstance(failure, UpstreamRateLimited) else 503
    assert response.status_code == expected, response.content
    if expected == 429:
        assert response["Retry-After"] == "30"


def test_unknown_upstream_name_creates_nothing(client, alice, upstream):
    name = f"{PREFIX}/nobody/nothing"
    auth = pull_auth(client, alice, name)
    response = get_manifest(client, auth, name, "latest")
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert not Repository.objects.filter(namespace__name=PREFIX).exists()


def test_index_children_on_demand(client, alice, upstream):
    index, (_amd, arm) = upstream.add_index("library/alpine", "latest")
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, "latest").content == index
    repository = Repository.objects.get(namespace__name=PREFIX)
    assert not Manifest.objects.filter(repository=repository, digest=digest_of(arm)).exists()
    assert get_manifest(client, auth, name, digest_of(arm)).content == arm
    child = Manifest.objects.get(repository=repository, digest=digest_of(arm))
    assert ManifestChild.objects.filter(parent__digest=digest_of(index), child=child).exists()
    assert upstream.count("manifest") == 2


def test_tampered_blob_is_neither_stored_nor_served_again(client, alice, upstream):
    upstream.add_image("library/alpine", "latest", layers=(b"honest bytes",))
    digest = digest_of(b"honest bytes")
    upstream.tampered[digest] = b"evil bytes!!"
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    get_manifest(client, auth, name, "latest")
    response = client.get(f"/v2/{name}/blobs/{digest}", **auth)
    with pytest.raises(Exception, match="expected"):
        b"".join(response.streaming_content)
    assert not Blob.objects.filter(digest=digest).exists()
    response = client.head(f"/v2/{name}/blobs/{digest}", **auth)  # a HEAD asks the upstream, fetches nothing
    assert response.status_code == 200 and response["Content-Length"] == str(len(b"honest bytes"))
    assert not Blob.objects.filter(digest=digest).exists() and upstream.count("blob") == 1
    response = client.get(f"/v2/{name}/blobs/{digest}", **auth)  # a GET fetches it again: refused again
    with pytest.raises(Exception, match="expected"):
        b"".join(response.streaming_content)
    assert not Blob.objects.filter(digest=digest).exists()


def test_blob_of_another_repository_is_not_served_under_a_mirror_name(client, alice, upstream, alice_private):
    """A digest stored for someone's private repository is served under a mirror name only after the
    upstream proved it has those bytes (fetched and verified), never from the shared store alone."""
    upstream.add_image("library/alpine", "latest")
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    get_manifest(client, auth, name, "latest")
    secret = b"alice's private layer"
    push = bearer(token_for(client, alice.username, f"repository:{alice.username}/secret:pull,push"))
    response = client.post(f"/v2/{alice.username}/secret/blobs/uploads/?digest={digest_of(secret)}", data=secret,
                           content_type="application/octet-stream", **push)
    assert response.status_code == 201, response.content
    response = client.get(f"/v2/{name}/blobs/{digest_of(secret)}", **auth)
    assert response.status_code == 404  # no manifest of the mirror names it: the upstream is not even asked
    assert upstream.count("blob") == 0


@pytest.mark.django_db(transaction=True)
def test_eight_clients_one_upstream_fetch(client, alice, upstream, settings):
    """Eight requests for one uncached blob at once: one fetches, seven wait for it to land."""
    settings.REDIS_URL = ""  # the per-node lock (a flock); the e2e test runs the Redis one
    layer = b"x" * 200_000
    upstream.add_image("library/alpine", "latest", layers=(layer,))
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    get_manifest(client, auth, name, "latest")
    upstream.blob_gate = threading.Event()
    results: list[bytes] = []

    def pull():
        from django.test import Client

        try:
            response, data = read_blob(Client(), auth, name, digest_of(layer))
            results.append(data if response.status_code == 200 else response.content)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=pull) for _ in range(8)]
    for thread in threads:
        thread.start()
    threading.Timer(0.5, upstream.blob_gate.set).start()
    for thread in threads:
        thread.join(30)
    assert results == [layer] * 8
    assert upstream.count("blob") == 1


def test_misses_spend_the_pullers_budget_before_fetching(client, alice, upstream, settings, tmp_path):
    from registry import ratelimits

    settings.REDIS_URL = ""
    settings.DATA_DIR = tmp_path  # the embedded counter store, empty
    settings.HUB_PULL_LIMIT_USER = 2
    for tag in ("one", "two", "three"):
        upstream.add_image("library/alpine", tag)
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    try:
        assert get_manifest(client, auth, name, "one", method="head").status_code == 200  # a HEAD miss counts
        assert get_manifest(client, auth, name, "two").status_code == 200
        response = get_manifest(client, auth, name, "three")
        assert response.status_code == 429 and response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert ("manifest", "library/alpine", "three") not in upstream.calls  # refused before fetching
    finally:
        ratelimits._counters_for.cache_clear()


def test_a_client_hanging_up_does_not_waste_the_fetch(client, alice, upstream):
    from registry.mirror import service

    layer = b"z" * 100_000
    upstream.add_image("library/alpine", "latest", layers=(layer,))
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    get_manifest(client, auth, name, "latest")
    repository = Repository.objects.get(namespace__name=PREFIX, name="library/alpine")
    chunks = iter(service.fetch_blob(repository=repository, prefix=PREFIX, digest=digest_of(layer)))
    assert len(next(chunks)) == 7  # the first chunk, then the client goes (the server closes the iterator)
    chunks.close()
    assert Blob.objects.filter(digest=digest_of(layer)).exists()
    _, data = read_blob(client, auth, name, digest_of(layer))
    assert data == layer and upstream.count("blob") == 1


def test_a_tag_deleted_upstream_goes_when_checked(client, alice, upstream, settings):
    upstream.add_image("library/alpine", "edge")
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, "edge").status_code == 200
    del upstream.manifests[("library/alpine", "edge")]
    settings.HUB_MIRROR_TTL_SECONDS = 0
    response = get_manifest(client, auth, name, "edge")
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert not Tag.objects.filter(repository__namespace__name=PREFIX, name="edge").exists()


LAYER = bytes(range(256)) * 40  # 10240 bytes, in the fake's 7-byte chunks


def _pulled_manifest(client, alice, upstream):
    upstream.add_image("library/alpine", "latest", layers=(LAYER,))
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, "latest").status_code == 200
    return name, auth


def ranged(client, auth, name, digest, value):
    response = client.get(f"/v2/{name}/blobs/{digest}", HTTP_RANGE=value, **auth)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return response, body


@pytest.mark.parametrize(("value", "start", "end"), [
    ("bytes=100-199", 100, 199), ("bytes=5000-", 5000, 10239), ("bytes=-40", 10200, 10239),
    ("bytes=0-0", 0, 0), ("bytes=10000-99999", 10000, 10239),
])
def test_a_range_on_a_miss_is_answered_with_that_range_and_the_blob_is_stored(client, alice, upstream,
                                                                              value, start, end):
    name, auth = _pulled_manifest(client, alice, upstream)
    response, body = ranged(client, auth, name, digest_of(LAYER), value)
    assert response.status_code == 206, response.status_code
    assert body == LAYER[start:end + 1]
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(LAYER)}"
    assert response["Content-Length"] == str(end - start + 1)
    assert response["Docker-Content-Digest"] == digest_of(LAYER) and response["X-Wharf-Mirror"] == "miss"
    blob = Blob.objects.get(digest=digest_of(LAYER))  # fetched whole, verified and stored
    assert blob.size == len(LAYER)
    assert RepositoryBlob.objects.filter(repository__namespace__name=PREFIX, blob=blob).exists()
    # The same range again is a hit served from the store, as for any blob.
    response, again = ranged(client, auth, name, digest_of(LAYER), value)
    assert response.status_code == 206 and again == body and "X-Wharf-Mirror" not in response
    assert response["Content-Range"] == f"bytes {start}-{end}/{len(LAYER)}"
    _, whole = read_blob(client, auth, name, digest_of(LAYER))
    assert whole == LAYER and upstream.count("blob") == 1


def test_a_range_the_blob_cannot_satisfy_on_a_miss_is_416_and_the_blob_is_stored(client, alice, upstream):
    name, auth = _pulled_manifest(client, alice, upstream)
    response, _ = ranged(client, auth, name, digest_of(LAYER), "bytes=20000-")
    assert response.status_code == 416 and response["Content-Range"] == f"bytes */{len(LAYER)}"
    assert Blob.objects.filter(digest=digest_of(LAYER)).exists()
    response, body = ranged(client, auth, name, digest_of(LAYER), "bytes=1-2")
    assert response.status_code == 206 and body == LAYER[1:3] and upstream.count("blob") == 1


def test_a_range_on_a_miss_without_an_upstream_size_is_served_from_the_store(client, alice, upstream, monkeypatch):
    from tests.registry.mirror.mirror_fakes import FakeBlobStream

    name, auth = _pulled_manifest(client, alice, upstream)
    unsized = FakeBlobStream.__init__

    def no_size(self, *args, **kwargs):
        unsized(self, *args, **kwargs)
        self.size = None  # the upstream sent no Content-Length

    monkeypatch.setattr(FakeBlobStream, "__init__", no_size)
    response, body = ranged(client, auth, name, digest_of(LAYER), "bytes=300-301")
    assert response.status_code == 206 and body == LAYER[300:302]
    assert response["Content-Range"] == f"bytes 300-301/{len(LAYER)}"


def test_a_range_on_a_tampered_miss_stores_nothing(client, alice, upstream):
    name, auth = _pulled_manifest(client, alice, upstream)
    upstream.tampered[digest_of(LAYER)] = b"X" * len(LAYER)
    ranged(client, auth, name, digest_of(LAYER), "bytes=0-9")  # the rest is fetched after the range: refused
    assert not Blob.objects.filter(digest=digest_of(LAYER)).exists()
    assert not BlobUpload.objects.exists()


def test_a_head_on_a_miss_asks_the_upstream_and_fetches_nothing(client, alice, upstream):
    name, auth = _pulled_manifest(client, alice, upstream)
    response = client.head(f"/v2/{name}/blobs/{digest_of(LAYER)}", **auth)
    assert response.status_code == 200 and response.content == b""
    assert response["Content-Length"] == str(len(LAYER))
    assert response["Docker-Content-Digest"] == digest_of(LAYER) and response["X-Wharf-Mirror"] == "miss"
    assert upstream.count("head_blob") == 1 and upstream.count("blob") == 0
    assert not Blob.objects.filter(digest=digest_of(LAYER)).exists() and not BlobUpload.objects.exists()
    # A digest no manifest of the mirror names: unknown here, the upstream not asked, nothing stored.
    response = client.head(f"/v2/{name}/blobs/{digest_of(b'not upstream')}", **auth)
    assert response.status_code == 404 and upstream.count("head_blob") == 1
    # After a GET stored it, a HEAD is a hit: answered from the store, the upstream not asked.
    _, data = read_blob(client, auth, name, digest_of(LAYER))
    assert data == LAYER
    response = client.head(f"/v2/{name}/blobs/{digest_of(LAYER)}", **auth)
    assert response.status_code == 200 and response["Content-Length"] == str(len(LAYER))
    assert "X-Wharf-Mirror" not in response and upstream.count("head_blob") == 1


def test_a_head_on_a_miss_when_the_upstream_is_down_is_unavailable(client, alice, upstream):
    name, auth = _pulled_manifest(client, alice, upstream)
    upstream.fail = UpstreamUnavailable("down")
    response = client.head(f"/v2/{name}/blobs/{digest_of(LAYER)}", **auth)
    assert response.status_code == 503 and not Blob.objects.filter(digest=digest_of(LAYER)).exists()


def test_a_blob_fetch_reads_only_the_manifests_naming_it(client, alice, upstream, monkeypatch):
    """Linking a fetched blob to the manifests that name it does not re-read the repository's manifests:
    the links recorded when each manifest was stored say which (a constant number of queries)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from registry.mirror import service

    shared = b"a base layer many tags share"
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    naming = []
    for number in range(12):
        layers = (shared, f"own layer {number}".encode()) if number % 4 == 0 else (f"own {number}".encode(),)
        body = upstream.add_image("library/alpine", f"t{number}", layers=layers)
        assert get_manifest(client, auth, name, f"t{number}").status_code == 200
        if number % 4 == 0:
            naming.append(digest_of(body))

    parsed = []
    real_parse = service.parse_manifest
    monkeypatch.setattr(service, "parse_manifest", lambda *a, **k: parsed.append(a) or real_parse(*a, **k))
    response, data = read_blob(client, auth, name, digest_of(shared))
    assert response.status_code == 200 and data == shared
    assert parsed == []  # no manifest was parsed again
    linked = set(ManifestBlob.objects.filter(blob__digest=digest_of(shared))
                 .values_list("manifest__digest", flat=True))
    assert linked == set(naming)

    repository = Repository.objects.get(namespace__name=PREFIX, name="library/alpine")
    blob = Blob.objects.get(digest=digest_of(shared))
    with CaptureQueriesContext(connection) as queries:
        service._link_to_manifests(repository, blob)  # nothing pending any more: one query
    assert len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]) <= 2


def test_the_migration_records_what_older_mirrored_manifests_still_miss(client, alice, upstream):
    """registry migration 0005 fills MirrorPendingLink for manifests stored before it existed."""
    import importlib

    from django.apps import apps

    from registry.models import MirrorPendingLink

    migration = importlib.import_module("registry.migrations.0005_mirror_pending_link")
    index, (amd, arm) = upstream.add_index("library/alpine", "latest")
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, "latest").status_code == 200
    assert get_manifest(client, auth, name, digest_of(amd)).status_code == 200
    expected = set(MirrorPendingLink.objects.values_list("manifest__digest", "digest", "is_child"))
    assert (digest_of(index), digest_of(arm), True) in expected
    assert any(d == digest_of(amd) and not child for d, _, child in expected)
    MirrorPendingLink.objects.all().delete()
    migration.record_pending(apps, None)
    assert set(MirrorPendingLink.objects.values_list("manifest__digest", "digest", "is_child")) == expected


def test_a_digest_is_never_revalidated(client, alice, upstream, settings):
    """Digests are immutable: even with every tag due for a check, a pull by digest asks nothing upstream,
    and keeps being served while the upstream is down (never stale: it cannot have changed)."""
    index, (amd, _arm) = upstream.add_index("library/alpine", "latest")
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, "latest").status_code == 200
    assert get_manifest(client, auth, name, digest_of(amd))["X-Wharf-Mirror"] == "miss"  # the child, once
    settings.HUB_MIRROR_TTL_SECONDS = 0
    upstream.fail = UpstreamUnavailable("down")
    for digest in (digest_of(index), digest_of(amd)):
        for method in ("get", "head"):
            response = get_manifest(client, auth, name, digest, method=method)
            assert response.status_code == 200 and response["X-Wharf-Mirror"] == "hit", (digest, method)
    assert upstream.count("head") == 0 and upstream.count("manifest") == 2
    assert get_manifest(client, auth, name, "latest")["X-Wharf-Mirror"] == "stale"  # a tag is checked


def test_a_tag_due_for_a_check_is_asked_once_whoever_pulls(client, alice, bob, upstream):
    """HUB_MIRROR_TTL_SECONDS (300 here): once the tag's check is due, one request asks with a HEAD and the
    others, whoever they are, are served what is cached until the TTL runs out again."""
    from django.core.cache import cache

    from registry.mirror import service

    upstream.add_image("library/alpine", "latest")
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, "latest")["X-Wharf-Mirror"] == "miss"
    assert get_manifest(client, auth, name, "latest")["X-Wharf-Mirror"] == "hit"
    repository = Repository.objects.get(namespace__name=PREFIX, name="library/alpine")
    cache.delete(service._check_key(repository, "latest"))  # the TTL ran out
    states = [get_manifest(client, pull_auth(client, user, name), name, "latest")["X-Wharf-Mirror"]
              for user in (bob, alice, bob, alice)]
    assert states == ["revalidated", "hit", "hit", "hit"]
    assert upstream.count("head") == 1 and upstream.count("manifest") == 1


def test_names_of_any_depth_and_other_registries_keep_their_own_names(client, alice, upstream, settings):
    """ghcr/org/team/tool is the upstream's org/team/tool; a one-component name is Docker Hub's official
    image only on a Docker Hub mirror."""
    from registry.mirror import service
    from registry.mirror.config import Mirror
    from tests.registry.mirror.mirror_fakes import FakeUpstream

    settings.HUB_MIRRORS = {**settings.HUB_MIRRORS, "ghcr": Mirror(prefix="ghcr", url="https://ghcr.io")}
    ghcr = service._clients["ghcr"] = FakeUpstream()
    try:
        for upstream_name in ("org/team/tool", "a/b/c/d/e", "tool"):
            body = ghcr.add_image(upstream_name, "v1", layers=(f"{upstream_name} layer".encode(),))
            name = f"ghcr/{upstream_name}"
            auth = pull_auth(client, alice, name)
            response = get_manifest(client, auth, name, "v1")
            assert response.status_code == 200 and response.content == body, (name, response.content)
            _, data = read_blob(client, auth, name, digest_of(f"{upstream_name} layer".encode()))
            assert data == f"{upstream_name} layer".encode()
            assert ("manifest", upstream_name, "v1") in ghcr.calls
            assert Repository.objects.filter(namespace__name="ghcr", name=upstream_name).exists()
        assert not Repository.objects.filter(namespace__name="ghcr", name="library/tool").exists()
        assert upstream.calls == []  # dockerhub's upstream never asked for ghcr's names
    finally:
        service._clients.pop("ghcr", None)


@pytest.mark.parametrize("method", ["get", "head"])
def test_a_blob_no_manifest_names_is_never_asked_upstream(client, alice, bob, upstream, method):
    """A blob is fetched only when a manifest of that mirrored repository names it: a manifest miss
    spends the puller's pull limit, so nobody fills the cache (or spends the upstream's budget) with blob
    requests around it, nor probes the upstream for arbitrary digests."""
    upstream.add_image("library/alpine", "latest", layers=(b"named layer",))
    upstream.add_image("library/alpine", "other", layers=(b"a layer of a tag nobody pulled",))
    name = f"{PREFIX}/library/alpine"
    assert get_manifest(client, pull_auth(client, alice, name), name, "latest").status_code == 200
    auth = pull_auth(client, bob, name)
    for digest in (digest_of(b"a layer of a tag nobody pulled"), digest_of(b"nowhere")):
        response = getattr(client, method)(f"/v2/{name}/blobs/{digest}", **auth)
        assert response.status_code == 404, response.status_code
        if method == "get":
            assert response.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert upstream.count("blob") == 0 and upstream.count("head_blob") == 0
    assert not Blob.objects.exists()
    if method == "get":  # what the pulled manifest names is fetched (or asked with a HEAD) as before
        response, data = read_blob(client, auth, name, digest_of(b"named layer"))
        assert response.status_code == 200 and data == b"named layer" and upstream.count("blob") == 1
    else:
        response = client.head(f"/v2/{name}/blobs/{digest_of(b'named layer')}", **auth)
        assert response.status_code == 200 and upstream.count("head_blob") == 1


def test_a_blob_landing_while_its_manifest_is_stored_is_linked(client, alice, upstream, monkeypatch):
    """The race of a blob fetch and a manifest naming it: the manifest read the repository's blobs before
    the blob landed, the blob's fetch read the pending rows before the manifest's were committed. The
    manifest's store checks again after its commit, so the reference is recorded (garbage collection
    keeps the blob) and no pending row is left behind."""
    from registry.mirror import service
    from registry.models import MirrorPendingLink

    shared = b"a layer two tags share"
    upstream.add_image("library/alpine", "one", layers=(shared,))
    two = upstream.add_image("library/alpine", "two", layers=(shared,))
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, "one").status_code == 200
    assert read_blob(client, auth, name, digest_of(shared))[1] == shared

    real, stale = service._linked_blobs, [True]

    def read_before_the_blob_landed(repository, digests):
        if stale.pop() if stale else False:
            return []
        return real(repository, digests)

    monkeypatch.setattr(service, "_linked_blobs", read_before_the_blob_landed)
    assert get_manifest(client, auth, name, "two").status_code == 200
    assert not stale  # the stale read happened
    assert ManifestBlob.objects.filter(manifest__digest=digest_of(two), blob__digest=digest_of(shared)).exists()
    assert not MirrorPendingLink.objects.filter(manifest__digest=digest_of(two), digest=digest_of(shared)).exists()


def test_a_child_landing_while_its_index_is_stored_is_linked(client, alice, upstream, monkeypatch):
    from registry.mirror import service
    from registry.models import MirrorPendingLink

    index, (_amd, arm) = upstream.add_index("library/alpine", "latest")
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, digest_of(arm)).status_code == 200  # the child first (by digest)

    real, stale = service._stored_children, [True]

    def read_before_the_child_landed(repository, digests):
        if stale.pop() if stale else False:
            return {}
        return real(repository, digests)

    monkeypatch.setattr(service, "_stored_children", read_before_the_child_landed)
    assert get_manifest(client, auth, name, "latest").content == index
    assert not stale
    assert ManifestChild.objects.filter(parent__digest=digest_of(index), child__digest=digest_of(arm)).exists()
    assert not MirrorPendingLink.objects.filter(manifest__digest=digest_of(index), digest=digest_of(arm)).exists()


def test_garbage_collection_keeps_what_mirrored_tags_need_and_takes_the_rest(client, alice, upstream, settings):
    """Mirrored tags, index edges and blob references are recorded like a push's: garbage collection (no
    grace period here) keeps a pulled image whole, takes it once the upstream dropped its tag, and the
    next pull fetches it again."""
    from datetime import timedelta

    from registry.services.gc import collect_garbage

    index, (_amd, arm) = upstream.add_index("library/alpine", "latest")
    name = f"{PREFIX}/library/alpine"
    auth = pull_auth(client, alice, name)
    assert get_manifest(client, auth, name, "latest").status_code == 200
    assert get_manifest(client, auth, name, digest_of(arm)).status_code == 200
    arm_layer = digest_of(b"arm64 layer")
    assert read_blob(client, auth, name, arm_layer)[1] == b"arm64 layer"
    child = Manifest.objects.get(digest=digest_of(arm))
    assert read_blob(client, auth, name, child.config_digest)[0].status_code == 200

    report = collect_garbage(grace=timedelta(0))
    assert report.manifests_deleted == 0 and report.blobs_deleted == 0
    assert set(Manifest.objects.values_list("digest", flat=True)) == {digest_of(index), digest_of(arm)}
    assert set(Blob.objects.values_list("digest", flat=True)) == {arm_layer, child.config_digest}

    del upstream.manifests[("library/alpine", "latest")]  # the upstream dropped the tag: so does the mirror
    settings.HUB_MIRROR_TTL_SECONDS = 0
    assert get_manifest(client, auth, name, "latest").status_code == 404
    report = collect_garbage(grace=timedelta(0))
    assert report.manifests_deleted == 2 and report.blobs_deleted == 2
    assert not Manifest.objects.exists() and not Blob.objects.exists()

    upstream.manifests[("library/alpine", "latest")] = (index, "application/vnd.oci.image.index.v1+json")
    assert get_manifest(client, auth, name, "latest")["X-Wharf-Mirror"] == "miss"
    assert get_manifest(client, auth, name, digest_of(arm))["X-Wharf-Mirror"] == "miss"
    response, data = read_blob(client, auth, name, arm_layer)
    assert data == b"arm64 layer" and response["X-Wharf-Mirror"] == "miss"
