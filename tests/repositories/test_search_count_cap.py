"""Search counts that reach the limit ("1,000+") are remembered for a minute, per search, when public
matches alone reach it; the rows are always read live, and nothing private is counted for others."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from repositories import search
from tests.repositories.pages_support import official_repo, personal_repo

pytestmark = pytest.mark.django_db


@pytest.fixture
def limit(monkeypatch):
    monkeypatch.setattr("repositories.search.COUNT_LIMIT", 3)
    return 3


def counts_made(path: str, client: Client | None = None, **params) -> tuple[str, int]:
    with CaptureQueriesContext(connection) as queries:
        html = (client or Client()).get(path, params).content.decode()
    return html, sum("COUNT(" in query["sql"] for query in queries.captured_queries)


def test_a_capped_count_is_not_counted_again(alice, limit):
    for i in range(4):
        personal_repo(alice, name=f"heron{i}")
    html, counted = counts_made("/search", q="heron")
    assert "3+ repositories" in html and counted == 1
    html, counted = counts_made("/search", q="  HERON ")
    assert "3+ repositories" in html and counted == 0
    assert html.count('class="repo-row"') == 4  # the rows are still read


def test_counts_under_the_limit_are_always_counted(alice, limit):
    personal_repo(alice, name="ibis")
    assert counts_made("/search", q="ibis")[1] == 1
    personal_repo(alice, name="ibis2")
    html, counted = counts_made("/search", q="ibis")
    assert counted == 1 and "2 repositories" in html


def test_private_matches_alone_are_never_remembered(alice, charlie, limit):
    for i in range(4):
        personal_repo(alice, name=f"secret-kite{i}", private=True)
    owner = Client()
    owner.force_login(alice)
    assert "3+ repositories" in counts_made("/search", owner, q="kite")[0]
    html, counted = counts_made("/search", q="kite")
    assert counted == 1 and "0 repositories" in html and "secret-kite" not in html


def test_a_signed_in_search_remembers_when_public_matches_reach_the_limit(alice, bob, limit):
    for i in range(4):
        personal_repo(alice, name=f"wren{i}")
    reader = Client()
    reader.force_login(bob)
    assert "3+ repositories" in counts_made("/search", reader, q="wren")[0]
    html, counted = counts_made("/search", q="wren")
    assert counted == 0 and "3+ repositories" in html


def test_the_official_filter_is_its_own_search(alice, limit):
    for i in range(4):
        personal_repo(alice, name=f"crane{i}")
    official_repo(name="crane")
    assert counts_made("/search", q="crane")[1] == 1
    html, counted = counts_made("/search", q="crane", official="1")
    assert counted == 1 and "1 repository" in html


def test_a_remembered_cap_expires(alice, limit, monkeypatch):
    for i in range(4):
        personal_repo(alice, name=f"egret{i}")
    counts_made("/search", q="egret")
    now = search.time.monotonic()
    monkeypatch.setattr(search.time, "monotonic", lambda: now + search.CAPPED_SECONDS + 1)
    assert counts_made("/search", q="egret")[1] == 1


def test_pages_cover_the_matches_shown_not_the_one_counted_past_them(alice, limit):
    for i in range(4):
        personal_repo(alice, name=f"gannet{i}")
    results = search.search_queryset(actor=search.Actor(), query="gannet")
    assert search.CappedCountPaginator(results, 3).num_pages == 1
    assert search.CappedCountPaginator(results, 2).num_pages == 2
    assert search.CappedCountPaginator(results.filter(name="none"), 2).num_pages == 1
