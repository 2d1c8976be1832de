"""The Hub API JWT: both header forms, and never interchangeable with a registry token."""

import pytest

from accounts.services import access_token_create, access_token_revoke
from hub.api import issue_api_token
from tests.api.conftest import auth
from tests.conftest import PASSWORD
from tests.registry.helpers import bearer, push_image, token_for


def login(api, user, password=PASSWORD) -> str:
    response = api.post("/v2/users/login", {"username": user.username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["token"]


@pytest.mark.parametrize("scheme", ["Bearer", "JWT"])
def test_both_header_forms_authenticate(api, alice, alice_private, scheme):
    jwt = login(api, alice)
    response = api.get("/v2/repositories/" + alice.username + "/secret/", HTTP_AUTHORIZATION=f"{scheme} {jwt}")
    assert response.status_code == 200


def test_garbage_token_is_401(api, alice_repo):
    response = api.get("/v2/access-tokens", HTTP_AUTHORIZATION="Bearer not.a.jwt")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_no_credentials_is_401_not_403(api, db):
    response = api.get("/v2/access-tokens")
    assert response.status_code == 401


def test_registry_token_is_refused_by_the_api(api, client, alice, alice_private):
    registry_token = token_for(client, alice.username, f"repository:{alice.username}/secret:pull")
    response = api.get(f"/v2/repositories/{alice.username}/secret/", HTTP_AUTHORIZATION=f"Bearer {registry_token}")
    assert response.status_code == 401


def test_api_jwt_is_refused_by_the_registry(client, alice, alice_private):
    push_image(client, f"{alice.username}/secret",
               token_for(client, alice.username, f"repository:{alice.username}/secret:pull,push"))
    api_jwt = issue_api_token(user=alice)
    response = client.get(f"/v2/{alice.username}/secret/manifests/latest", **bearer(api_jwt))
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


def test_jwt_dies_with_its_access_token(api, alice, alice_private):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:admin")
    headers = auth(alice, token)
    assert api.get(f"/v2/repositories/{alice.username}/secret/", **headers).status_code == 200
    access_token_revoke(token=token)
    assert api.get(f"/v2/repositories/{alice.username}/secret/", **headers).status_code == 401


def test_jwt_dies_when_the_password_changes(api, alice, alice_private):
    headers = auth(alice)
    alice.set_password("another-long-password")
    alice.save()
    assert api.get(f"/v2/repositories/{alice.username}/secret/", **headers).status_code == 401


def test_jwt_of_a_deactivated_user_is_refused(api, alice, alice_repo):
    headers = auth(alice)
    alice.is_active = False
    alice.save()
    assert api.get("/v2/access-tokens", **headers).status_code == 401


def test_read_only_token_caps_the_jwt(api, alice, alice_repo):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:read")
    response = api.patch(f"/v2/repositories/{alice.username}/app/", {"description": "x"}, format="json",
                         **auth(alice, token))
    assert response.status_code == 403


def test_public_read_token_does_not_see_private_repositories(api, alice, alice_private):
    token, _ = access_token_create(user=alice, label="ci", scope="repo:public_read")
    response = api.get(f"/v2/repositories/{alice.username}/secret/", **auth(alice, token))
    assert response.status_code == 404


def test_expired_jwt_is_refused(api, alice, settings):
    settings.HUB_API_TOKEN_TTL = -120
    headers = auth(alice)
    assert api.get("/v2/access-tokens", **headers).status_code == 401
