"""`docker search` / `podman search`: /v1/_ping and /v1/search."""

import pytest

from accounts.models import Namespace
from repositories.models import Repository
from tests.factories import library_namespace
from tests.registry.helpers import basic, pull_push

pytestmark = [pytest.mark.django_db]


def test_ping(client):
    response = client.get("/v1/_ping")
    assert response.status_code == 200
    assert response["X-Docker-Registry-Standalone"] in {"true", "1"}


@pytest.fixture
def repositories(alice, bob):
    alice_ns, bob_ns = Namespace.objects.get(user=alice), Namespace.objects.get(user=bob)
    return {
        "official": Repository.objects.create(namespace=library_namespace(), name="zebra", star_count=1,
                                              description="the official one"),
        "stars": Repository.objects.create(namespace=alice_ns, name="zebra-tools", star_count=50, pull_count=1),
        "pulls": Repository.objects.create(namespace=bob_ns, name="zebra-extra", star_count=5, pull_count=10_000),
        "few": Repository.objects.create(namespace=bob_ns, name="zebra-few", star_count=5, pull_count=3),
        "private": Repository.objects.create(namespace=alice_ns, name="zebra-secret", is_private=True,
                                             star_count=999),
        "other": Repository.objects.create(namespace=bob_ns, name="unrelated"),
    }


def _names(response) -> list[str]:
    assert response.status_code == 200
    return [r["name"] for r in response.json()["results"]]


def test_search_shape(client, repositories):
    response = client.get("/v1/search", {"q": "zebra"})
    body = response.json()
    assert body["query"] == "zebra"
    assert body["num_results"] == 4 and body["num_pages"] == 1
    assert body["page"] == 1 and body["page_size"] == 25
    official = body["results"][0]
    assert official["name"] == "zebra"
    assert official["is_official"] is True and official["is_automated"] is False
    assert official["description"] == "the official one"
    assert official["star_count"] == 1


def test_exact_match_first_then_stars_then_pulls(client, alice, bob, repositories):
    assert _names(client.get("/v1/search", {"q": "zebra"})) == [
        "zebra", f"{alice.username}/zebra-tools", f"{bob.username}/zebra-extra", f"{bob.username}/zebra-few"]


def test_exact_namespaced_match_first(client, bob, repositories):
    names = _names(client.get("/v1/search", {"q": f"{bob.username}/zebra-few"}))
    assert names[0] == f"{bob.username}/zebra-few"


def test_official_names_have_no_library_prefix(client, repositories):
    assert "library/zebra" not in _names(client.get("/v1/search", {"q": "zebra"}))


def test_private_hidden_from_anonymous_and_strangers(client, charlie, repositories):
    assert not any("secret" in n for n in _names(client.get("/v1/search", {"q": "zebra"})))
    response = client.get("/v1/search", {"q": "zebra"}, HTTP_AUTHORIZATION=basic(charlie.username))
    assert not any("secret" in n for n in _names(response))


def test_private_shown_to_owner_with_basic(client, alice, repositories):
    response = client.get("/v1/search", {"q": "secret"}, HTTP_AUTHORIZATION=basic(alice.username))
    assert _names(response) == [f"{alice.username}/zebra-secret"]


def test_private_shown_to_owner_with_bearer(client, alice, repositories):
    response = client.get("/v1/search", {"q": "secret"}, **pull_push(client, alice, "alice/x", "pull"))
    assert _names(response) == [f"{alice.username}/zebra-secret"]


def test_private_shown_to_collaborator(client, alice, bob, repositories):
    repositories["private"].collaborators.create(user=bob)
    response = client.get("/v1/search", {"q": "secret"}, HTTP_AUTHORIZATION=basic(bob.username))
    assert _names(response) == [f"{alice.username}/zebra-secret"]


def test_bad_credentials_are_refused(client, alice, repositories):
    response = client.get("/v1/search", {"q": "zebra"}, HTTP_AUTHORIZATION=basic(alice.username, "wrong"),
                          REMOTE_ADDR="10.9.8.7")
    assert response.status_code == 401


def test_paging(client, repositories):
    first = client.get("/v1/search", {"q": "zebra", "n": 3, "page": 1}).json()
    second = client.get("/v1/search", {"q": "zebra", "n": 3, "page": 2}).json()
    assert (first["num_pages"], first["page_size"], len(first["results"])) == (2, 3, 3)
    assert second["page"] == 2 and len(second["results"]) == 1


@pytest.mark.parametrize("query", [{"n": "abc"}, {"n": "0"}, {"n": "1000"}, {"page": "-3"}, {"q": "%" * 300}, {}])
def test_odd_parameters_do_not_fail(client, repositories, query):
    response = client.get("/v1/search", query)
    assert response.status_code == 200
    assert 1 <= response.json()["page_size"] <= 100


def test_empty_query_lists_public(client, repositories):
    names = _names(client.get("/v1/search", {"q": ""}))
    assert len(names) == 5 and not any("secret" in n for n in names)
