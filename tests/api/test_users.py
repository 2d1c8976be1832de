"""GET /v2/users/<name>/: public profiles of users and organizations."""

from tests.api.conftest import auth


def test_user_profile(api, alice):
    for path in (f"/v2/users/{alice.username}/", f"/v2/users/{alice.username}"):
        body = api.get(path).json()
        assert body["username"] == alice.username and body["type"] == "User"
        assert "email" not in body


def test_organization_through_users(api, org):
    assert api.get(f"/v2/users/{org.name}/").json()["type"] == "Organization"


def test_unknown_user_is_404(api, db):
    assert api.get("/v2/users/nobody123/").status_code == 404


def test_inactive_user_is_404(api, alice, bob):
    alice.is_active = False
    alice.save()
    assert api.get(f"/v2/users/{alice.username}/", **auth(bob)).status_code == 404
