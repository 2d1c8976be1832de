"""Mirrored repositories in explore and search: "mirror of docker.io/library/alpine", their pulls and last
upstream check, shown only to those who may pull them."""

from __future__ import annotations

import pytest

from registry.pulls import flush_pull_counters
from tests.registry.helpers import bearer, token_for
from tests.registry.mirror.mirror_fakes import PREFIX, installed

pytestmark = pytest.mark.django_db


@pytest.fixture
def upstream(settings, private_cache):
    yield from installed(settings)


def test_explore_and_search_show_mirrors_to_those_who_may_pull(client, alice, upstream, settings):
    upstream.add_image("library/alpine", "latest")
    auth = bearer(token_for(client, alice.username, f"repository:{PREFIX}/library/alpine:pull"))
    assert client.get(f"/v2/{PREFIX}/library/alpine/manifests/latest", **auth).status_code == 200
    flush_pull_counters()

    anonymous = client.get("/explore").content.decode()
    assert "mirror of" not in anonymous
    client.force_login(alice)
    page = client.get("/explore").content.decode()
    assert "mirror of docker.io/library/alpine" in page and f"/{PREFIX}/library/alpine" in page
    assert "1 pull " in page and "last upstream check" in page
    assert "mirror of docker.io/library/alpine" in client.get("/search", {"q": "alpine"}).content.decode()
    assert "mirror of" not in client.get("/search", {"q": "nginx"}).content.decode()

    client.logout()
    settings.HUB_MIRROR_ANONYMOUS = True
    assert "mirror of docker.io/library/alpine" in client.get("/explore").content.decode()


def test_the_last_upstream_check_is_when_the_upstream_was_asked(client, alice, upstream, settings):
    """Not the row's updated_at, which any save moves: the time of the last fetch or revalidation."""
    from datetime import timedelta

    from django.utils import timezone

    from registry.mirror.selectors import mirrored_repositories
    from repositories.models import Repository

    upstream.add_image("library/alpine", "latest")
    name = f"{PREFIX}/library/alpine"
    auth = bearer(token_for(client, alice.username, f"repository:{name}:pull"))
    before = timezone.now()
    assert client.get(f"/v2/{name}/manifests/latest", **auth).status_code == 200
    repository = Repository.objects.get(namespace__name=PREFIX, name="library/alpine")
    assert repository.upstream_checked_at >= before  # the fetch

    hours_ago = timezone.now() - timedelta(hours=3)
    Repository.objects.filter(pk=repository.pk).update(upstream_checked_at=hours_ago)
    repository.refresh_from_db()
    repository.description = "edited"
    repository.save()  # updated_at is now; the upstream was last asked three hours ago
    client.get(f"/v2/{name}/manifests/latest", **auth)  # a hit within the TTL asks nothing
    [row] = mirrored_repositories(alice)
    assert row.last_checked_at == hours_ago
    client.force_login(alice)
    assert "last upstream check 3\xa0hours ago" in client.get("/explore").content.decode()

    settings.HUB_MIRROR_TTL_SECONDS = 0  # the next pull revalidates the tag with a HEAD
    moment = timezone.now()
    client.get(f"/v2/{name}/manifests/latest", **auth)
    assert upstream.count("head") == 1
    [row] = mirrored_repositories(alice)
    assert row.last_checked_at >= moment
