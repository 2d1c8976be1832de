"""/v2/access-tokens: your personal access tokens; the secret is shown once."""

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import AccessToken
from accounts.services import access_token_create
from tests.api.conftest import auth


def create(api, user, **body):
    return api.post("/v2/access-tokens", {"token_label": "ci", **body}, format="json", **auth(user))


@pytest.mark.parametrize("path", ["/v2/access-tokens", "/v2/access-tokens/"])
def test_create_shows_the_secret_once(api, alice, path):
    response = api.post(path, {"token_label": "ci", "scopes": ["repo:write"]}, format="json", **auth(alice))
    assert response.status_code == 201
    body = response.json()
    assert body["token"].startswith("whf_pat_") and body["scopes"] == ["repo:write"] and body["is_active"] is True
    listed = api.get("/v2/access-tokens", **auth(alice)).json()["results"]
    assert listed[0]["token"] == ""


def test_created_token_logs_in(api, alice):
    secret = create(api, alice).json()["token"]
    response = api.post("/v2/users/login", {"username": alice.username, "password": secret}, format="json")
    assert response.status_code == 200


def test_default_scope_is_read(api, alice):
    assert create(api, alice).json()["scopes"] == ["repo:read"]


def test_broadest_scope_wins(api, alice):
    assert create(api, alice, scopes=["repo:read", "repo:admin"]).json()["scopes"] == ["repo:admin"]


def test_unknown_scope_is_a_field_error(api, alice):
    response = create(api, alice, scopes=["repo:everything"])
    assert response.status_code == 400 and list(response.json()) == ["scopes"]


def test_missing_label_is_a_field_error(api, alice):
    response = api.post("/v2/access-tokens", {}, format="json", **auth(alice))
    assert response.json() == {"token_label": ["This field is required."]}


def test_past_expiry_is_a_field_error(api, alice):
    response = create(api, alice, expires_at=(timezone.now() - dt.timedelta(days=1)).isoformat())
    assert response.status_code == 400 and list(response.json()) == ["expires_at"]


def test_list_shows_only_your_tokens(api, alice, bob):
    access_token_create(user=bob, label="bob's", scope="repo:read")
    create(api, alice)
    body = api.get("/v2/access-tokens/", **auth(alice)).json()
    assert [t["token_label"] for t in body["results"]] == ["ci"]


def test_retrieve(api, alice):
    token_id = create(api, alice).json()["id"]
    body = api.get(f"/v2/access-tokens/{token_id}", **auth(alice)).json()
    assert body["uuid"] == str(token_id) and body["token"] == ""


def test_someone_elses_token_is_404(api, alice, bob):
    token_id = create(api, alice).json()["id"]
    assert api.get(f"/v2/access-tokens/{token_id}/", **auth(bob)).status_code == 404


def test_deactivate(api, alice):
    token_id = create(api, alice).json()["id"]
    response = api.patch(f"/v2/access-tokens/{token_id}", {"is_active": False}, format="json", **auth(alice))
    assert response.json()["is_active"] is False
    assert AccessToken.objects.get(pk=token_id).revoked_at is not None


def test_reactivation_is_refused(api, alice):
    token_id = create(api, alice).json()["id"]
    api.patch(f"/v2/access-tokens/{token_id}", {"is_active": False}, format="json", **auth(alice))
    response = api.patch(f"/v2/access-tokens/{token_id}", {"is_active": True}, format="json", **auth(alice))
    assert response.status_code == 400 and list(response.json()) == ["is_active"]


def test_rename(api, alice):
    token_id = create(api, alice).json()["id"]
    response = api.patch(f"/v2/access-tokens/{token_id}/", {"token_label": "deploy"}, format="json",
                         **auth(alice))
    assert response.json()["token_label"] == "deploy"


def test_delete(api, alice):
    token_id = create(api, alice).json()["id"]
    assert api.delete(f"/v2/access-tokens/{token_id}", **auth(alice)).status_code == 204
    assert not AccessToken.objects.filter(pk=token_id).exists()


def test_anonymous_is_401(api, db):
    assert api.post("/v2/access-tokens", {"token_label": "ci"}, format="json").status_code == 401


def test_a_read_token_cannot_manage_tokens(api, alice):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    assert api.get("/v2/access-tokens", **auth(alice, token)).status_code == 403
