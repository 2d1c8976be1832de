"""Namespace repository lists: visibility, ordering and Docker Hub paging."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Namespace
from repositories.models import Repository, Star, TeamPermission
from tests.api.conftest import auth
from tests.factories import RepositoryFactory


def names(response):
    return [item["name"] for item in response.json()["results"]]


@pytest.mark.parametrize("path", ["/v2/repositories/{ns}/", "/v2/repositories/{ns}",
                                  "/v2/namespaces/{ns}/repositories", "/v2/namespaces/{ns}/repositories/"])
def test_list_shows_public_repositories_to_anonymous(api, alice, alice_repo, alice_private, path):
    response = api.get(path.format(ns=alice.username))
    assert response.status_code == 200
    assert set(response.json()) == {"count", "next", "previous", "results"}
    assert names(response) == ["app"]


def test_list_shows_private_repositories_to_the_owner(api, alice, alice_repo, alice_private):
    response = api.get(f"/v2/repositories/{alice.username}/?ordering=name", **auth(alice))
    assert names(response) == ["app", "secret"]


def test_list_shows_private_repositories_to_a_collaborator(api, alice, bob, alice_private):
    assert names(api.get(f"/v2/repositories/{alice.username}/", **auth(bob))) == ["secret"]


def test_list_hides_private_repositories_from_a_stranger(api, alice, charlie, alice_private):
    assert api.get(f"/v2/repositories/{alice.username}/", **auth(charlie)).json()["count"] == 0


def test_org_list_shows_a_team_reader_the_private_repository(api, org):
    assert names(api.get(f"/v2/namespaces/{org.name}/repositories", **auth(org.members["read"]))) == ["service"]


def test_unknown_namespace_is_404(api, db):
    assert api.get("/v2/repositories/nosuchname/").status_code == 404


@pytest.fixture
def many(alice):
    namespace = Namespace.objects.get(user=alice)
    for i in range(105):
        RepositoryFactory(namespace=namespace, name=f"r{i:03d}", pull_count=i)
    return namespace


def test_default_page_size_is_ten(api, many):
    body = api.get(f"/v2/repositories/{many.name}/").json()
    assert body["count"] == 105 and len(body["results"]) == 10
    assert body["previous"] is None and "page=2" in body["next"]


def test_page_size_above_100_is_clamped_to_100(api, many):
    body = api.get(f"/v2/repositories/{many.name}/?page_size=500").json()
    assert len(body["results"]) == 100


def test_second_page(api, many):
    body = api.get(f"/v2/repositories/{many.name}/?page_size=100&page=2&ordering=name").json()
    assert [r["name"] for r in body["results"]] == ["r100", "r101", "r102", "r103", "r104"]
    assert body["next"] is None


def test_page_past_the_end_is_404(api, many):
    assert api.get(f"/v2/repositories/{many.name}/?page=99").status_code == 404


@pytest.mark.parametrize(("ordering", "first"), [("name", "r000"), ("-name", "r104"), ("pull_count", "r000"),
                                                 ("-pull_count", "r104")])
def test_ordering(api, many, ordering, first):
    assert names(api.get(f"/v2/namespaces/{many.name}/repositories?ordering={ordering}"))[0] == first


def test_ordering_by_last_updated(api, alice, many):
    from django.utils import timezone

    many.repositories.filter(name="r050").update(last_pushed_at=timezone.now())
    assert names(api.get(f"/v2/namespaces/{many.name}/repositories?ordering=-last_updated"))[0] == "r050"


def test_unknown_ordering_is_a_field_error(api, alice, alice_repo):
    response = api.get(f"/v2/repositories/{alice.username}/?ordering=stars")
    assert response.status_code == 400
    assert list(response.json()) == ["ordering"]


@pytest.fixture
def fifty(org):
    """The organization with 50 private repositories (its own plus 49) its writers may push to."""
    for _ in range(49):
        repository = RepositoryFactory(namespace=org.namespace, is_private=True)
        TeamPermission.objects.create(repository=repository, team=org.teams["write"], permission="write")
    return org


WRITE = {"read": True, "write": True, "admin": False}
EVERYTHING = {"read": True, "write": True, "admin": True}


def _assert_queries_do_not_grow_with_the_page(api, path: str, user, expected: dict) -> None:
    """Pages of 10 and 50 (`path` ends with `page_size=`) cost as many queries, every row with `expected`."""
    counts = {}
    for size in (10, 50):
        with CaptureQueriesContext(connection) as queries:
            response = api.get(f"{path}{size}", **auth(user))
        assert response.status_code == 200
        results = response.json()["results"]
        counts[size] = len(queries)
        assert len(results) == size and all(item["permissions"] == expected for item in results)
    assert counts[10] == counts[50]


@pytest.mark.parametrize(("persona", "expected"), [("writer", WRITE), ("owner", EVERYTHING)])
def test_signed_in_list_queries_do_not_grow_with_the_page(api, alice, fifty, persona, expected):
    user = alice if persona == "owner" else fifty.members["write"]
    _assert_queries_do_not_grow_with_the_page(api, f"/v2/namespaces/{fifty.name}/repositories?page_size=", user,
                                              expected)


def test_starred_list_queries_do_not_grow_with_the_page(api, fifty):
    writer = fifty.members["write"]
    for repository in Repository.objects.filter(namespace=fifty.namespace):
        Star.objects.create(repository=repository, user=writer)
    _assert_queries_do_not_grow_with_the_page(api, f"/v2/users/{writer.username}/starred/?page_size=", writer, WRITE)
