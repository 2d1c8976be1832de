"""HUB_MIRROR_MAX_BYTES: the least recently pulled mirrored repositories go, their blobs with them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from registry.blobstore import blob_store
from registry.mirror.eviction import evict_mirrors, mirror_usage
from registry.models import Blob
from registry.tasks import evict_mirrors_task
from repositories.models import Repository
from tests.registry.helpers import bearer, digest_of, token_for
from tests.registry.mirror.mirror_fakes import PREFIX, installed

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream(settings, private_cache):
    yield from installed(settings)


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
    Repository.objects.filter(name="library/old").update(last_pulled_at=timezone.now() - timedelta(days=2))
    Repository.objects.filter(name="library/new").update(last_pulled_at=timezone.now())
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
