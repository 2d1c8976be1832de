"""/v2/repositories/<ns>/<repo>/stats/?days= and /v2/search/repositories/?query=."""

import datetime as dt

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Namespace
from repositories.models import PullStat
from tests.api.conftest import auth
from tests.factories import RepositoryFactory


def test_daily_pulls_with_zero_days_filled(api, alice, alice_repo):
    today = timezone.now().date()
    PullStat.objects.create(repository=alice_repo, tag="", day=today, count=5)
    PullStat.objects.create(repository=alice_repo, tag="latest", day=today, count=5)
    PullStat.objects.create(repository=alice_repo, tag="", day=today - dt.timedelta(days=2), count=3)
    body = api.get(f"/v2/repositories/{alice.username}/app/stats/?days=7").json()
    assert body["days"] == 7 and len(body["results"]) == 7 and body["pulls_in_period"] == 8
    assert [d["pull_count"] for d in body["results"]][-3:] == [3, 0, 5]
    assert body["results"][-1]["date"] == today.isoformat()


def test_default_is_thirty_days(api, alice, alice_repo):
    assert len(api.get(f"/v2/namespaces/{alice.username}/repositories/app/stats").json()["results"]) == 30


def test_days_out_of_range_is_a_field_error(api, alice, alice_repo):
    response = api.get(f"/v2/repositories/{alice.username}/app/stats/?days=1000")
    assert response.status_code == 400 and list(response.json()) == ["days"]


def test_stats_of_a_private_repository_are_404_for_a_stranger(api, alice, charlie, alice_private):
    assert api.get(f"/v2/repositories/{alice.username}/secret/stats/", **auth(charlie)).status_code == 404


def test_search_finds_public_repositories(api, alice, alice_repo):
    body = api.get("/v2/search/repositories/?query=app").json()
    [result] = body["results"]
    assert result["repo_name"] == f"{alice.username}/app" and result["repo_owner"] == alice.username
    assert set(result) >= {"repo_name", "short_description", "star_count", "pull_count", "repo_owner",
                           "is_official", "is_automated"}


def test_search_hides_private_repositories_from_strangers(api, charlie, alice_private):
    assert api.get("/v2/search/repositories?query=secret", **auth(charlie)).json()["count"] == 0


def test_search_shows_private_repositories_to_collaborators(api, bob, alice_private):
    assert api.get("/v2/search/repositories?query=secret", **auth(bob)).json()["count"] == 1


def test_search_official_names_without_library(api, db):
    RepositoryFactory(namespace=Namespace.objects.get(name="library"), name="ubuntu")
    [result] = api.get("/v2/search/repositories/?query=ubuntu").json()["results"]
    assert result["repo_name"] == "ubuntu" and result["is_official"] is True


def test_search_pages_are_clamped(api, alice):
    namespace = Namespace.objects.get(user=alice)
    for i in range(101):
        RepositoryFactory(namespace=namespace, name=f"match{i}")
    body = api.get("/v2/search/repositories/?query=match&page_size=1000").json()
    assert body["count"] == 101 and len(body["results"]) == 100


def test_search_count_stops_at_the_limit(api, alice, monkeypatch):
    monkeypatch.setattr("repositories.search.COUNT_LIMIT", 3)
    namespace = Namespace.objects.get(user=alice)
    for i in range(5):
        RepositoryFactory(namespace=namespace, name=f"capped{i}")
    body = api.get("/v2/search/repositories/?query=capped&page_size=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and "page=2" in body["next"]
    assert api.get("/v2/search/repositories/?query=capped&page_size=4").json()["count"] == 3
    monkeypatch.setattr("repositories.search.COUNT_LIMIT", 5)
    assert api.get("/v2/search/repositories/?query=capped").json()["count"] == 5


def test_the_api_search_remembers_too(api, alice, monkeypatch):
    monkeypatch.setattr("repositories.search.COUNT_LIMIT", 3)
    for i in range(4):
        RepositoryFactory(namespace=Namespace.objects.get(user=alice), name=f"plover{i}")
    assert api.get("/v2/search/repositories/?query=plover").json()["count"] == 3
    with CaptureQueriesContext(connection) as queries:
        body = api.get("/v2/search/repositories/?query=plover").json()
    assert body["count"] == 3 and len(body["results"]) == 4
    assert not any("COUNT(" in query["sql"] for query in queries.captured_queries)
