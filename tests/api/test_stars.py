"""POST/DELETE /v2/repositories/<ns>/<repo>/stars/ and GET /v2/users/<name>/starred/."""

import pytest

from repositories.models import Star
from tests.api.conftest import auth


@pytest.mark.parametrize("path", ["/v2/repositories/{ns}/app/stars/", "/v2/repositories/{ns}/app/stars",
                                  "/v2/namespaces/{ns}/repositories/app/stars"])
def test_star_a_repository(api, alice, charlie, alice_repo, path):
    response = api.post(path.format(ns=alice.username), **auth(charlie))
    assert response.status_code == 201
    assert response.json() == {"has_starred": True, "star_count": 1}


def test_starring_twice_counts_once(api, alice, charlie, alice_repo):
    api.post(f"/v2/repositories/{alice.username}/app/stars/", **auth(charlie))
    assert api.post(f"/v2/repositories/{alice.username}/app/stars/", **auth(charlie)).json()["star_count"] == 1


def test_unstar(api, alice, charlie, alice_repo):
    api.post(f"/v2/repositories/{alice.username}/app/stars/", **auth(charlie))
    response = api.delete(f"/v2/repositories/{alice.username}/app/stars/", **auth(charlie))
    assert response.json() == {"has_starred": False, "star_count": 0}


def test_has_starred_in_repository_json(api, alice, charlie, alice_repo):
    api.post(f"/v2/repositories/{alice.username}/app/stars/", **auth(charlie))
    body = api.get(f"/v2/repositories/{alice.username}/app/", **auth(charlie)).json()
    assert body["has_starred"] is True and body["star_count"] == 1


def test_anonymous_star_is_401(api, alice, alice_repo):
    assert api.post(f"/v2/repositories/{alice.username}/app/stars/").status_code == 401


def test_stranger_cannot_star_a_private_repository(api, alice, charlie, alice_private):
    assert api.post(f"/v2/repositories/{alice.username}/secret/stars/", **auth(charlie)).status_code == 404


def test_starred_list(api, alice, charlie, alice_repo):
    Star.objects.create(repository=alice_repo, user=charlie)
    for path in (f"/v2/users/{charlie.username}/starred/", f"/v2/users/{charlie.username}/starred"):
        body = api.get(path).json()
        assert [r["name"] for r in body["results"]] == ["app"]


def test_starred_list_hides_what_the_caller_cannot_see(api, alice, bob, charlie, alice_private):
    Star.objects.create(repository=alice_private, user=bob)
    assert api.get(f"/v2/users/{bob.username}/starred/", **auth(charlie)).json()["count"] == 0
    assert api.get(f"/v2/users/{bob.username}/starred/", **auth(bob)).json()["count"] == 1


def test_starred_of_unknown_user_is_404(api, db):
    assert api.get("/v2/users/nobody123/starred/").status_code == 404
