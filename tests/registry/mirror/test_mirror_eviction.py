"""HUB_MIRROR_MAX_BYTES: the least recently pulled mirrored repositories go, their blobs with them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from registry.blobstore import blob_store
from registry.mirror import eviction
from registry.mirror.eviction import evict_mirrors, mirror_usage
from registry.models import Blob
from registry.tasks import evict_mirrors_task
from repositories.models import Repository
from tests.registry.helpers import bearer, digest_of, token_for
from tests.registry.mirror.mirror_fakes import PREFIX, installed

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream(settings, private_cache):
    eviction.forget_marks()
    yield from installed(settings)
    eviction.forget_marks()


def gone_quiet(*names: str, days: int = 2) -> None:
    """These mirrored repositories were last used `days` ago: no activity marks, old timestamps."""
    then = timezone.now() - timedelta(days=days)
    Repository.objects.filter(namespace__name=PREFIX, name__in=names).update(
        last_pulled_at=then, upstream_checked_at=then, created_at=then)
    for repository in Repository.objects.filter(namespace__name=PREFIX, name__in=names):
        cache.delete(eviction._active_key(repository.pk))
    eviction.forget_marks()


def pull(client, user, name: str, digests: list[str]) -> None:
    auth = bearer(token_for(client, user.username, f"repository:{PREFIX}/{name}:pull"))
    assert client.get(f"/v2/{PREFIX}/{name}/manifests/latest", **auth).status_code == 200
    for digest in digests:
        response = client.get(f"/v2/{PREFIX}/{name}/blobs/{digest}", **auth)
        assert response.status_code == 200
        b"".join(response.streaming_content)


def test_least_recently_pulled_go_first(client, alice, upstream, settings):
    old_layer, new_layer = b"o" * 5000, b"n" * 7000
    upstream.add_image("library/old", "latest", layers=(old_layer,))
    upstream.add_image("library/new", "latest", layers=(new_layer,))
    pull(client, alice, "library/old", [digest_of(old_layer)])
    pull(client, alice, "library/new", [digest_of(new_layer)])
    gone_quiet("library/old", days=2)
    gone_quiet("library/new", days=1)
    assert mirror_usage() == 12_000
    assert evict_mirrors(max_bytes=0) == []  # no bound: nothing goes
    assert evict_mirrors(max_bytes=20_000) == []

    settings.HUB_MIRROR_MAX_BYTES = 9000
    assert evict_mirrors_task() == 1
    assert list(Repository.objects.filter(namespace__name=PREFIX).values_list("name", flat=True)) == ["library/new"]
    assert not Blob.objects.filter(digest=digest_of(old_layer)).exists()
    assert not blob_store.exists(digest_of(old_layer))
    assert blob_store.exists(digest_of(new_layer))
    assert mirror_usage() == 7000

    pull(client, alice, "library/old", [digest_of(old_layer)])  # evicted content is fetched again
    assert upstream.count("blob") == 3


def _two_repositories(client, alice, upstream):
    busy_layer, other_layer = b"b" * 6000, b"q" * 6000
    upstream.add_image("library/busy", "latest", layers=(busy_layer,))
    upstream.add_image("library/other", "latest", layers=(other_layer,))
    pull(client, alice, "library/busy", [digest_of(busy_layer)])
    pull(client, alice, "library/other", [digest_of(other_layer)])
    gone_quiet("library/busy", days=3)  # the least recently used: the first to go when quiet
    gone_quiet("library/other", days=1)
    return busy_layer, other_layer


def test_a_repository_being_pulled_is_not_evicted(client, alice, upstream):
    """A client was just served the manifest and is about to ask for its blobs: eviction passes it by."""
    busy_layer, _ = _two_repositories(client, alice, upstream)
    auth = bearer(token_for(client, alice.username, f"repository:{PREFIX}/library/busy:pull"))
    assert client.get(f"/v2/{PREFIX}/library/busy/manifests/latest", **auth).status_code == 200  # a hit
    assert evict_mirrors(max_bytes=7000) == [f"{PREFIX}/library/other"]  # the other one goes instead
    response = client.get(f"/v2/{PREFIX}/library/busy/blobs/{digest_of(busy_layer)}", **auth)
    assert response.status_code == 200 and b"".join(response.streaming_content) == busy_layer
    assert upstream.count("blob") == 2  # served from the cache, not fetched again

    gone_quiet("library/busy", days=3)  # quiet again: now it can go
    assert evict_mirrors(max_bytes=1) == [f"{PREFIX}/library/busy"]


def test_a_repository_with_a_blob_fetch_in_flight_is_not_evicted(client, alice, upstream):
    from registry.mirror import service

    _two_repositories(client, alice, upstream)
    late = b"L" * 3000
    upstream.add_image("library/busy", "v2", layers=(late,))
    auth = bearer(token_for(client, alice.username, f"repository:{PREFIX}/library/busy:pull"))
    assert client.get(f"/v2/{PREFIX}/library/busy/manifests/v2", **auth).status_code == 200
    repository = Repository.objects.get(namespace__name=PREFIX, name="library/busy")
    gone_quiet("library/busy", days=3)
    chunks = iter(service.fetch_blob(repository=repository, prefix=PREFIX, digest=digest_of(late)))
    next(chunks)  # the fetch is under way (it marks the repository as it streams)
    assert eviction.is_active(repository.pk)
    assert f"{PREFIX}/library/busy" not in evict_mirrors(max_bytes=1)
    assert b"".join(chunks)  # the fetch ends and stores the blob in its (still existing) repository
    assert Blob.objects.filter(digest=digest_of(late), repository_links__repository=repository).exists()


def test_a_repository_pulled_lately_on_another_node_is_not_evicted(client, alice, upstream):
    """No activity mark (a node that does not share the cache), but the database says it was just used."""
    _two_repositories(client, alice, upstream)
    Repository.objects.filter(namespace__name=PREFIX, name="library/busy").update(last_pulled_at=timezone.now())
    assert evict_mirrors(max_bytes=1) == [f"{PREFIX}/library/other"]
    Repository.objects.filter(namespace__name=PREFIX, name="library/busy").update(
        last_pulled_at=timezone.now() - timedelta(days=3), upstream_checked_at=timezone.now())
    assert evict_mirrors(max_bytes=1) == []


def test_a_pull_marking_the_repository_as_eviction_chooses_it_spares_it(client, alice, upstream, monkeypatch):
    """The race of a pull beginning just as eviction picks its quiet repository, on eviction's side: a
    request marks the repository active between eviction's first look and its eviction mark (the request
    then sees no mark and serves it); eviction's second look sees the request and spares it."""
    _two_repositories(client, alice, upstream)
    busy = Repository.objects.get(namespace__name=PREFIX, name="library/busy")
    real_cache = eviction.cache

    class PullArrivesNow:
        def __getattr__(self, name):
            return getattr(real_cache, name)

        def set(self, key, *args, **kwargs):
            if key == eviction._evicting_key(busy.pk):
                eviction.mark_active(busy.pk)  # the request's first step, just before the eviction mark
            return real_cache.set(key, *args, **kwargs)

    monkeypatch.setattr(eviction, "cache", PullArrivesNow())
    assert evict_mirrors(max_bytes=7000) == [f"{PREFIX}/library/other"]
    assert Repository.objects.filter(pk=busy.pk).exists()
    assert real_cache.get(eviction._evicting_key(busy.pk)) is None  # its mark is gone with the eviction


def test_a_pull_beginning_as_its_repository_is_evicted_fetches_it_anew(client, alice, upstream, monkeypatch):
    """The same race on the request's side: eviction had already marked the repository (and found it
    quiet); the manifest request finds the mark, waits for the deletion, and fetches the image again
    into a fresh repository instead of serving a manifest whose blobs are about to go."""
    from repositories.services import repository_delete

    busy_layer, _ = _two_repositories(client, alice, upstream)
    busy = Repository.objects.get(namespace__name=PREFIX, name="library/busy")
    old_pk, mark = busy.pk, eviction._evicting_key(busy.pk)  # (deleting the row forgets busy.pk)
    cache.set(mark, 1, 300)  # eviction chose it and is deleting it
    waits = []

    def deletion_ends(seconds):
        waits.append(seconds)
        if len(waits) == 1:
            repository_delete(repository=busy)
            cache.delete(mark)

    monkeypatch.setattr(eviction, "_sleep", deletion_ends)
    auth = bearer(token_for(client, alice.username, f"repository:{PREFIX}/library/busy:pull"))
    response = client.get(f"/v2/{PREFIX}/library/busy/manifests/latest", **auth)
    assert response.status_code == 200 and response["X-Wharf-Mirror"] == "miss"
    assert len(waits) == 1  # the request went on as soon as the eviction was over
    assert Repository.objects.get(namespace__name=PREFIX, name="library/busy").pk != old_pk  # a fresh row
    response = client.get(f"/v2/{PREFIX}/library/busy/blobs/{digest_of(busy_layer)}", **auth)
    assert response.status_code == 200 and b"".join(response.streaming_content) == busy_layer
    assert upstream.count("manifest") == 3 and upstream.count("blob") == 3  # fetched again, once
