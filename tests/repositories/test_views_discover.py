"""/search and /explore: filters, sorting, paging, exact matches first, stars, and private repositories hidden."""

import pytest
from django.test import Client

from repositories.models import Star
from tests.repositories.pages_support import add_collaborator, official_repo, personal_repo

pytestmark = pytest.mark.django_db


def names(response):
    return [repo.name for repo in response.context["page"].object_list]


def test_search_exact_name_first(alice, bob):
    personal_repo(alice, name="nginx-proxy", star_count=50)
    personal_repo(bob, name="nginx", star_count=1)
    response = Client().get("/search", {"q": "nginx"})
    assert names(response)[:2] == ["nginx", "nginx-proxy"]


def test_search_official_filter(alice):
    personal_repo(alice, name="redis-tools")
    official_repo(name="redis")
    response = Client().get("/search", {"q": "redis", "official": "1"})
    assert names(response) == ["redis"]
    assert "checked" in response.content.decode().split('id="search-official"')[1][:80]


@pytest.mark.parametrize(("sort", "expected"), [("stars", ["bbb1", "aaa1"]), ("pulls", ["aaa1", "bbb1"])])
def test_search_sort(alice, sort, expected):
    personal_repo(alice, name="aaa1", pull_count=10, star_count=1, description="sorttest")
    personal_repo(alice, name="bbb1", pull_count=1, star_count=10, description="sorttest")
    assert names(Client().get("/search", {"q": "sorttest", "sort": sort})) == expected


def test_search_paging_keeps_filters(alice):
    for i in range(27):
        personal_repo(alice, name=f"pagetest{i:02d}")
    response = Client().get("/search", {"q": "pagetest", "sort": "stars"})
    assert len(names(response)) == 25
    html = response.content.decode()
    assert "q=pagetest&amp;sort=stars&amp;page=2" in html
    assert len(names(Client().get("/search", {"q": "pagetest", "page": 2}))) == 2


def test_search_hides_private_from_others(alice, bob, charlie):
    personal_repo(alice, name="hiddenthing", private=True)
    assert names(Client().get("/search", {"q": "hiddenthing"})) == []
    charlie_client = Client()
    charlie_client.force_login(charlie)
    assert names(charlie_client.get("/search", {"q": "hiddenthing"})) == []
    owner = Client()
    owner.force_login(alice)
    assert names(owner.get("/search", {"q": "hiddenthing"})) == ["hiddenthing"]


def test_search_collaborator_sees_private(alice, bob):
    repo = personal_repo(alice, name="sharedthing", private=True)
    add_collaborator(repo, bob)
    client = Client()
    client.force_login(bob)
    assert names(client.get("/search", {"q": "sharedthing"})) == ["sharedthing"]


def test_search_empty_state():
    html = Client().get("/search", {"q": "nothing-matches-this"}).content.decode()
    assert "No repositories found" in html and "explore popular images" in html


def test_star_from_search_results(alice, bob):
    repo = personal_repo(alice, name="starme")
    client = Client()
    client.force_login(bob)
    html = client.get("/search", {"q": "starme"}).content.decode()
    assert f'action="/r/{alice.username}/starme/star"' in html
    response = client.post(f"/r/{alice.username}/starme/star", {"next": "/search?q=starme"})
    assert response["Location"] == "/search?q=starme"
    assert Star.objects.filter(repository=repo, user=bob).exists()
    html = client.get("/search", {"q": "starme"}).content.decode()
    assert 'aria-pressed="true"' in html


def test_explore_sections(alice):
    official_repo(name="alpine", pull_count=5)
    personal_repo(alice, name="popular", pull_count=100, star_count=3)
    personal_repo(alice, name="secretpop", pull_count=1000, star_count=30, private=True)
    response = Client().get("/explore")
    assert response.status_code == 200
    sections = response.context["sections"]
    assert "alpine" in [r.name for r in sections["official"]]
    assert "popular" in [r.name for r in sections["most_pulled"]]
    assert "popular" in [r.name for r in sections["most_starred"]]
    assert "secretpop" not in response.content.decode()


def test_explore_official_shown_without_library_prefix():
    official_repo(name="ubuntu-ex")
    html = Client().get("/explore").content.decode()
    assert 'href="/_/ubuntu-ex"' in html
    assert "library/ubuntu-ex" not in html


def test_search_count_above_the_limit_is_shown_with_a_plus(alice, monkeypatch):
    for i in range(5):
        personal_repo(alice, name=f"plus{i}")
    monkeypatch.setattr("repositories.search.COUNT_LIMIT", 4)
    assert "4+ repositories" in Client().get("/search", {"q": "plus"}).content.decode()
    monkeypatch.setattr("repositories.search.COUNT_LIMIT", 5)
    response = Client().get("/search", {"q": "plus"}).content.decode()
    assert "5 repositories" in response and "5+" not in response
