"""POST /v2/users/login and /v2/auth/token: a JWT from a password or a personal access token."""

import pytest

from accounts.services import access_token_create
from tests.conftest import PASSWORD


def make_token(user, scope="repo:read") -> str:
    return access_token_create(user=user, label="ci", scope=scope)[1]


@pytest.mark.parametrize("path", ["/v2/users/login", "/v2/users/login/"])
def test_login_with_password_returns_a_jwt(api, alice, path):
    response = api.post(path, {"username": alice.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert list(response.json()) == ["token"]
    assert response.json()["token"].count(".") == 2


def test_login_with_email_address(api, alice):
    response = api.post("/v2/users/login", {"username": alice.email, "password": PASSWORD}, format="json")
    assert response.status_code == 200


def test_login_with_personal_access_token(api, alice):
    response = api.post("/v2/users/login", {"username": alice.username, "password": make_token(alice)},
                        format="json")
    assert response.status_code == 200


def test_wrong_password_is_401_with_detail(api, alice):
    response = api.post("/v2/users/login", {"username": alice.username, "password": "nope"}, format="json")
    assert response.status_code == 401
    assert "Incorrect authentication credentials" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_unknown_user_is_the_same_401(api, db):
    response = api.post("/v2/users/login", {"username": "nobody1234", "password": "nope"}, format="json")
    assert response.status_code == 401


def test_missing_fields_are_field_errors(api, db):
    response = api.post("/v2/users/login", {"username": "alice"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"password": ["This field is required."]}


def test_user_with_two_factor_must_use_a_token(api, alice, monkeypatch):
    monkeypatch.setattr("accounts.credentials.user_has_mfa", lambda user: True)
    response = api.post("/v2/users/login", {"username": alice.username, "password": PASSWORD}, format="json")
    assert response.status_code == 401
    assert "personal access token" in response.json()["detail"]


def test_user_with_two_factor_may_use_a_token(api, alice, monkeypatch):
    monkeypatch.setattr("accounts.credentials.user_has_mfa", lambda user: True)
    response = api.post("/v2/users/login", {"username": alice.username, "password": make_token(alice)},
                        format="json")
    assert response.status_code == 200


def test_repeated_failures_are_throttled(api, alice, settings):
    settings.REGISTRY_AUTH_MAX_FAILURES = 3
    for _ in range(3):
        api.post("/v2/users/login", {"username": alice.username, "password": "nope"}, format="json")
    response = api.post("/v2/users/login", {"username": alice.username, "password": PASSWORD}, format="json")
    assert response.status_code == 429
    assert "Retry-After" in response


def test_login_requests_are_rate_limited(api, alice, settings):
    from rest_framework.settings import api_settings
    from rest_framework.throttling import ScopedRateThrottle

    monkey_rates = {**api_settings.DEFAULT_THROTTLE_RATES, "login": "2/min"}
    ScopedRateThrottle.THROTTLE_RATES = monkey_rates
    try:
        for _ in range(2):
            assert api.post("/v2/users/login", {"username": alice.username, "password": PASSWORD},
                            format="json").status_code == 200
        response = api.post("/v2/users/login", {"username": alice.username, "password": PASSWORD}, format="json")
    finally:
        ScopedRateThrottle.THROTTLE_RATES = api_settings.DEFAULT_THROTTLE_RATES
    assert response.status_code == 429


@pytest.mark.parametrize("path", ["/v2/auth/token", "/v2/auth/token/"])
def test_auth_token_with_access_token(api, alice, path):
    response = api.post(path, {"identifier": alice.username, "secret": make_token(alice)}, format="json")
    assert response.status_code == 200
    assert list(response.json()) == ["access_token"]


def test_auth_token_with_bad_secret_is_401(api, alice):
    response = api.post("/v2/auth/token", {"identifier": alice.username, "secret": "whf_pat_nope"}, format="json")
    assert response.status_code == 401


def test_login_ignores_a_stale_authorization_header(api, alice):
    response = api.post("/v2/users/login", {"username": alice.username, "password": PASSWORD}, format="json",
                        HTTP_AUTHORIZATION="Bearer garbage")
    assert response.status_code == 200
