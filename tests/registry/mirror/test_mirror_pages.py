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
