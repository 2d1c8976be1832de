"""end-1 GET /v2/, the auth challenge, Basic credentials and personal access tokens on /v2/."""

import uuid

import pytest
from django.conf import settings

from tests.registry.helpers import (
    API_VERSION,
    assert_error,
    basic,
    bearer,
    make_access_token,
    parse_challenge,
    pull_push,
    push_image,
    token_for,
)

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


def _address() -> str:
    """A fresh client address: failed-login counters are per address and the cache may be shared."""
    value = uuid.uuid4().int
    return f"10.{value % 250}.{(value >> 8) % 250}.{(value >> 16) % 250 + 1}"


def test_anonymous_base_is_challenged(client):
    response = client.get("/v2/")
    assert_error(response, 401, "UNAUTHORIZED")
    scheme, params = parse_challenge(response["WWW-Authenticate"])
    assert scheme == "Bearer"
    assert params["realm"] == f"{settings.HUB_PUBLIC_URL}/token"
    assert params["service"] == settings.REGISTRY_SERVICE


def test_anonymous_token_opens_base(client):
    response = client.get("/v2/", **bearer(token_for(client, None)))
    assert response.status_code == 200
    assert response[API_VERSION[0]] == API_VERSION[1]
    assert response.json() == {}


def test_basic_good_credentials_open_base(client, alice):
    response = client.get("/v2/", HTTP_AUTHORIZATION=basic(alice.username))
    assert response.status_code == 200
    assert response[API_VERSION[0]] == API_VERSION[1]


def test_basic_bad_credentials_are_refused(client, alice):
    response = client.get("/v2/", HTTP_AUTHORIZATION=basic(alice.username, "wrong"), REMOTE_ADDR=_address())
    assert_error(response, 401, "UNAUTHORIZED")
    assert response["WWW-Authenticate"].startswith("Bearer realm=")


def test_head_base(client, alice):
    response = client.head("/v2/", HTTP_AUTHORIZATION=basic(alice.username))
    assert response.status_code == 200
    assert response[API_VERSION[0]] == API_VERSION[1]


def test_garbage_bearer_token_is_refused(client):
    response = client.get("/v2/", HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert_error(response, 401, "UNAUTHORIZED")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_repeated_bad_basic_credentials_get_429(client, alice):
    address = _address()
    statuses = [
        client.get("/v2/", HTTP_AUTHORIZATION=basic(alice.username, "wrong"), REMOTE_ADDR=address).status_code
        for _ in range(12)
    ]
    assert statuses[0] == 401
    assert statuses[-1] == 429
    response = client.get("/v2/", HTTP_AUTHORIZATION=basic(alice.username), REMOTE_ADDR=address)
    assert_error(response, 429, "TOOMANYREQUESTS")
    assert int(response["Retry-After"]) > 0


def test_unauthenticated_repository_request_gets_one_scoped_challenge(client, alice):
    name = f"{alice.username}/app"
    push_image(client, name, token_for(client, alice.username, f"repository:{name}:pull,push"))
    response = client.post(f"/v2/{name}/blobs/uploads/")
    assert_error(response, 401, "UNAUTHORIZED")
    challenges = response["WWW-Authenticate"]
    assert challenges.count("Bearer ") == 1
    scheme, params = parse_challenge(challenges)
    assert scheme == "Bearer"
    assert params["realm"] == f"{settings.HUB_PUBLIC_URL}/token"
    assert params["service"] == settings.REGISTRY_SERVICE
    assert params["scope"] == f"repository:{name}:pull,push"


@pytest.mark.parametrize(("method", "suffix", "action"), [
    ("get", "manifests/latest", "pull"),
    ("head", "manifests/latest", "pull"),
    ("get", "tags/list", "pull"),
    ("delete", "manifests/latest", "delete"),
])
def test_challenge_scope_names_the_action(client, alice, method, suffix, action):
    name = f"{alice.username}/app"
    response = getattr(client, method)(f"/v2/{name}/{suffix}")
    assert response.status_code == 401
    assert parse_challenge(response["WWW-Authenticate"])[1]["scope"] == f"repository:{name}:{action}"


def test_token_for_another_audience_is_refused(client, alice, settings):
    token = token_for(client, alice.username)
    settings.REGISTRY_SERVICE = "elsewhere:5000"
    response = client.get("/v2/", **bearer(token))
    assert_error(response, 401, "UNAUTHORIZED")


# --- personal access tokens as Basic credentials, directly on /v2/ ---------------------------------


@pytest.fixture
def alice_app(client, alice):
    name = f"{alice.username}/app"
    push_image(client, name, token_for(client, alice.username, f"repository:{name}:pull,push"))
    return name


def test_read_token_pulls_with_basic(client, alice, alice_app):
    secret = make_access_token(alice, "repo:read")
    response = client.get(f"/v2/{alice_app}/manifests/latest", HTTP_AUTHORIZATION=basic(alice.username, secret))
    assert response.status_code == 200


def test_read_token_cannot_push_with_basic(client, alice, alice_app):
    secret = make_access_token(alice, "repo:read")
    response = client.post(f"/v2/{alice_app}/blobs/uploads/", HTTP_AUTHORIZATION=basic(alice.username, secret))
    assert_error(response, 403, "DENIED")


def test_write_token_pushes_with_basic(client, alice, alice_app):
    secret = make_access_token(alice, "repo:write")
    response = client.post(f"/v2/{alice_app}/blobs/uploads/", HTTP_AUTHORIZATION=basic(alice.username, secret))
    assert response.status_code == 202


def test_public_read_token_cannot_see_private(client, alice, alice_app):
    from repositories.models import Repository

    Repository.objects.filter(name="app", namespace__name=alice.username).update(is_private=True)
    secret = make_access_token(alice, "repo:public_read")
    response = client.get(f"/v2/{alice_app}/manifests/latest", HTTP_AUTHORIZATION=basic(alice.username, secret))
    assert_error(response, 401, "UNAUTHORIZED")


def test_public_read_token_pulls_public(client, alice, bob, alice_app):
    secret = make_access_token(bob, "repo:public_read")
    response = client.get(f"/v2/{alice_app}/manifests/latest", HTTP_AUTHORIZATION=basic(bob.username, secret))
    assert response.status_code == 200


def test_password_basic_pushes_directly(client, alice):
    response = client.post(f"/v2/{alice.username}/viabasic/blobs/uploads/",
                           HTTP_AUTHORIZATION=basic(alice.username))
    assert response.status_code == 202


def test_pull_token_cannot_push(client, alice, alice_app):
    response = client.post(f"/v2/{alice_app}/blobs/uploads/", **pull_push(client, alice, alice_app, "pull"))
    assert_error(response, 403, "DENIED")
