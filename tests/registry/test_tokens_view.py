"""GET and POST /token, as the docker CLI, containers/image and OAuth2 clients use it."""

import base64
import re
from datetime import timedelta

import jwt
import pytest
from allauth.mfa.models import Authenticator
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounts.models import Namespace
from accounts.services import access_token_create, access_token_revoke, user_deactivate
from accounts.throttles import failure_keys
from tests.conftest import PASSWORD
from tests.factories import RepositoryFactory

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


@pytest.fixture(autouse=True)
def _fresh_address_counts():
    cache.delete(failure_keys(identifier="", address="127.0.0.1", user=None)[1])


def basic(username, password):
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def get_token(client, *scopes, auth=None, **params):
    query = {"service": settings.REGISTRY_SERVICE, **params}
    if scopes:
        query["scope"] = list(scopes)
    headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
    return client.get("/token", query, **headers)


def post_token(client, **form):
    data = {"service": settings.REGISTRY_SERVICE, "client_id": "docker", **form}
    return client.post("/token", data)


def access_of(token):
    return jwt.decode(token, options={"verify_signature": False})["access"]


def repo_of(user, private=False):
    return RepositoryFactory(namespace=Namespace.objects.get(user=user), is_private=private)


def enable_mfa(user):
    Authenticator.objects.create(user=user, type=Authenticator.Type.TOTP, data={"secret": "JBSWY3DPEHPK3PXP"})


def docker_login(client, user, password=PASSWORD):
    return get_token(client, auth=basic(user.username, password), account=user.username,
                     client_id="docker", offline_token="true")


# --- The docker CLI's exact sequence --------------------------------------------------------


def test_docker_login_returns_a_refresh_token(client, alice):
    response = docker_login(client, alice)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at", "refresh_token"}
    assert body["token"] == body["access_token"]
    assert body["expires_in"] >= 60
    assert RFC3339.fullmatch(body["issued_at"])
    assert access_of(body["token"]) == []


def test_docker_push_trades_the_refresh_token(client, alice):
    refresh_token = docker_login(client, alice).json()["refresh_token"]
    scope = f"repository:{alice.username}/app:pull,push"
    response = post_token(client, grant_type="refresh_token", refresh_token=refresh_token, scope=scope)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "scope", "expires_in", "issued_at"}
    assert body["scope"] == scope
    assert access_of(body["access_token"]) == [
        {"type": "repository", "name": f"{alice.username}/app", "actions": ["pull", "push"]}
    ]


def test_refresh_grant_with_offline_access_returns_a_refresh_token(client, alice):
    refresh_token = docker_login(client, alice).json()["refresh_token"]
    response = post_token(client, grant_type="refresh_token", refresh_token=refresh_token, access_type="offline")
    assert response.json()["refresh_token"]


def test_no_refresh_token_without_offline_token(client, alice):
    response = get_token(client, auth=basic(alice.username, PASSWORD))
    assert "refresh_token" not in response.json()


def test_no_refresh_token_for_anonymous(client):
    response = get_token(client, offline_token="true")
    assert response.status_code == 200
    assert "refresh_token" not in response.json()


# --- GET ------------------------------------------------------------------------------------


def test_anonymous_pull_of_a_public_repository(client, alice):
    repo = repo_of(alice)
    response = get_token(client, f"repository:{repo.full_name}:pull")
    assert access_of(response.json()["token"]) == [
        {"type": "repository", "name": repo.full_name, "actions": ["pull"]}
    ]
    assert jwt.decode(response.json()["token"], options={"verify_signature": False})["sub"] == ""


def test_containers_image_push_scope(client, alice):
    response = get_token(client, f"repository:{alice.username}/app:pull,push",
                         auth=basic(alice.username, PASSWORD), account=alice.username)
    assert access_of(response.json()["token"])[0]["actions"] == ["pull", "push"]


def test_repeated_scope_parameters(client, alice):
    source = repo_of(alice)
    response = get_token(client, f"repository:{alice.username}/target:pull,push",
                         f"repository:{source.full_name}:pull", auth=basic(alice.username, PASSWORD))
    assert [entry["name"] for entry in access_of(response.json()["token"])] == [
        f"{alice.username}/target", source.full_name]


def test_private_and_missing_repositories_look_the_same(client, alice, charlie):
    private = repo_of(alice, private=True)
    auth = basic(charlie.username, PASSWORD)
    existing = access_of(get_token(client, f"repository:{private.full_name}:pull,push", auth=auth).json()["token"])
    missing = access_of(get_token(client, f"repository:{alice.username}/nothere:pull,push",
                                  auth=auth).json()["token"])
    assert existing[0]["actions"] == missing[0]["actions"] == []
    assert {k: v for k, v in existing[0].items() if k != "name"} == {k: v for k, v in missing[0].items()
                                                                      if k != "name"}


def test_root_namespace_push_refused_for_users(client, alice):
    response = get_token(client, "repository:newimage:pull,push", auth=basic(alice.username, PASSWORD))
    assert access_of(response.json()["token"])[0]["actions"] == []


def test_root_namespace_push_granted_to_staff(client, staff):
    response = get_token(client, "repository:newimage:pull,push", auth=basic(staff.username, PASSWORD))
    assert access_of(response.json()["token"])[0]["actions"] == ["pull", "push"]


def test_push_into_someone_elses_namespace_is_not_granted(client, alice, charlie):
    response = get_token(client, f"repository:{alice.username}/app:pull,push", auth=basic(charlie.username, PASSWORD))
    assert access_of(response.json()["token"])[0]["actions"] == []


def test_email_login(client, alice):
    response = get_token(client, auth=basic(alice.email, PASSWORD))
    assert response.status_code == 200


def test_bad_credentials(client, alice):
    response = get_token(client, auth=basic(alice.username, "wrong-password"))
    assert response.status_code == 401
    assert response.json() == {"details": "incorrect username or password"}
    assert response["WWW-Authenticate"].startswith("Basic realm=")


@pytest.mark.parametrize("header", ["Basic !!!", "Basic", "Basic bm9jb2xvbg=="])
def test_malformed_basic_header(client, db, header):
    assert get_token(client, auth=header).status_code == 401


def test_throttled_after_repeated_failures(client, alice):
    for _ in range(10):
        assert get_token(client, auth=basic(alice.username, "wrong-password")).status_code == 401
    response = get_token(client, auth=basic(alice.username, PASSWORD))
    assert response.status_code == 429
    assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert int(response["Retry-After"]) > 0


def test_wrong_service(client, db):
    response = get_token(client, service="elsewhere.example")
    assert response.status_code == 400
    assert "elsewhere.example" in response.json()["details"]


def test_invalid_scope(client, db):
    response = get_token(client, "repository:alice/app:fly")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


def test_catalog_scope(client, db):
    response = get_token(client, "registry:catalog:*")
    assert access_of(response.json()["token"]) == [{"type": "registry", "name": "catalog", "actions": ["*"]}]


def test_responses_are_never_cached(client, db):
    assert "no-cache" in get_token(client)["Cache-Control"]


@pytest.mark.parametrize("method", ["put", "delete", "patch"])
def test_other_methods(client, db, method):
    response = getattr(client, method)("/token")
    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"


# --- Personal access tokens and two-factor authentication -----------------------------------


def test_access_token_login(client, alice):
    _, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    response = docker_login(client, alice, password=secret)
    assert response.status_code == 200


def test_access_token_scope_caps_the_grant(client, alice):
    repo = repo_of(alice)
    _, secret = access_token_create(user=alice, label="ci", scope="repo:read")
    response = get_token(client, f"repository:{repo.full_name}:pull,push", auth=basic(alice.username, secret))
    assert access_of(response.json()["token"])[0]["actions"] == ["pull"]


def test_revoked_access_token_is_refused(client, alice):
    token, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    access_token_revoke(token=token)
    assert get_token(client, auth=basic(alice.username, secret)).status_code == 401


def test_expired_access_token_is_refused(client, alice):
    token, secret = access_token_create(user=alice, label="ci", scope="repo:write",
                                        expires_at=timezone.now() + timedelta(hours=1))
    token.expires_at = timezone.now() - timedelta(minutes=1)
    token.save()
    assert get_token(client, auth=basic(alice.username, secret)).status_code == 401


def test_mfa_user_password_is_refused(client, alice):
    enable_mfa(alice)
    assert docker_login(client, alice).status_code == 401


def test_mfa_user_access_token_is_accepted(client, alice):
    enable_mfa(alice)
    _, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    assert docker_login(client, alice, password=secret).status_code == 200


# --- Refresh tokens -------------------------------------------------------------------------


def refresh(client, refresh_token, *scopes):
    return post_token(client, grant_type="refresh_token", refresh_token=refresh_token, scope=" ".join(scopes))


def test_refresh_token_keeps_the_access_token_cap(client, alice):
    repo = repo_of(alice)
    _, secret = access_token_create(user=alice, label="ci", scope="repo:read")
    refresh_token = docker_login(client, alice, password=secret).json()["refresh_token"]
    response = refresh(client, refresh_token, f"repository:{repo.full_name}:pull,push")
    assert access_of(response.json()["access_token"])[0]["actions"] == ["pull"]


def test_refresh_token_dies_with_its_access_token(client, alice):
    token, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    refresh_token = docker_login(client, alice, password=secret).json()["refresh_token"]
    access_token_revoke(token=token)
    assert refresh(client, refresh_token).status_code == 401


def test_refresh_token_from_a_password_dies_when_mfa_is_enabled(client, alice):
    refresh_token = docker_login(client, alice).json()["refresh_token"]
    enable_mfa(alice)
    assert refresh(client, refresh_token).status_code == 401


def test_refresh_token_from_an_access_token_survives_mfa(client, alice):
    _, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    refresh_token = docker_login(client, alice, password=secret).json()["refresh_token"]
    enable_mfa(alice)
    assert refresh(client, refresh_token).status_code == 200


def test_refresh_token_dies_with_a_password_change(client, alice):
    refresh_token = docker_login(client, alice).json()["refresh_token"]
    alice.set_password("another-long-password")
    alice.save()
    assert refresh(client, refresh_token).status_code == 401


def test_refresh_token_dies_with_the_account(client, alice):
    refresh_token = docker_login(client, alice).json()["refresh_token"]
    user_deactivate(user=alice)
    assert refresh(client, refresh_token).status_code == 401


def test_access_token_is_not_a_refresh_token(client, alice):
    access_token = docker_login(client, alice).json()["token"]
    assert refresh(client, access_token).status_code == 401


def test_refresh_token_audience(client, alice):
    refresh_token = docker_login(client, alice).json()["refresh_token"]
    claims = jwt.decode(refresh_token, options={"verify_signature": False})
    assert claims["aud"] == f"{settings.REGISTRY_SERVICE}#refresh"
    assert claims["sub"] == alice.username


def test_refresh_token_names_the_access_token_used(client, alice):
    token, secret = access_token_create(user=alice, label="ci", scope="repo:write")
    refresh_token = docker_login(client, alice, password=secret).json()["refresh_token"]
    assert jwt.decode(refresh_token, options={"verify_signature": False})["pat"] == token.pk


def test_refresh_token_lifetime(client, alice):
    refresh_token = docker_login(client, alice).json()["refresh_token"]
    claims = jwt.decode(refresh_token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == settings.REGISTRY_REFRESH_TOKEN_TTL


# --- POST -----------------------------------------------------------------------------------


def test_password_grant(client, alice):
    response = post_token(client, grant_type="password", username=alice.username, password=PASSWORD,
                          scope=f"repository:{alice.username}/app:pull")
    assert response.status_code == 200
    assert response.json()["scope"] == f"repository:{alice.username}/app:pull"
    assert "refresh_token" not in response.json()


def test_password_grant_offline(client, alice):
    response = post_token(client, grant_type="password", username=alice.username, password=PASSWORD,
                          access_type="offline")
    assert response.json()["refresh_token"]


def test_password_grant_bad_password(client, alice):
    response = post_token(client, grant_type="password", username=alice.username, password="wrong-password")
    assert response.status_code == 401


def test_password_grant_refused_for_mfa_user(client, alice):
    enable_mfa(alice)
    response = post_token(client, grant_type="password", username=alice.username, password=PASSWORD)
    assert response.status_code == 401


def test_post_scope_is_space_separated(client, alice):
    source = repo_of(alice)
    response = post_token(client, grant_type="password", username=alice.username, password=PASSWORD,
                          scope=f"repository:{alice.username}/new:pull,push repository:{source.full_name}:pull")
    assert len(access_of(response.json()["access_token"])) == 2


def test_post_scope_lists_only_what_was_granted(client, alice, charlie):
    private = repo_of(alice, private=True)
    response = post_token(client, grant_type="password", username=charlie.username, password=PASSWORD,
                          scope=f"repository:{private.full_name}:pull")
    assert response.json()["scope"] == ""


def test_post_requires_client_id(client, alice):
    response = post_token(client, grant_type="password", username=alice.username, password=PASSWORD, client_id="")
    assert response.status_code == 400
    assert "client_id" in response.json()["error_description"]


def test_post_requires_the_service(client, alice):
    response = post_token(client, grant_type="password", username=alice.username, password=PASSWORD, service="")
    assert response.status_code == 400


def test_post_wrong_service(client, alice):
    response = post_token(client, grant_type="password", username=alice.username, password=PASSWORD,
                          service="other.example")
    assert response.status_code == 400


def test_post_unknown_grant_type(client, db):
    response = post_token(client, grant_type="client_credentials")
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("form", [{"grant_type": "password", "username": "x"}, {"grant_type": "refresh_token"}])
def test_post_missing_fields(client, db, form):
    assert post_token(client, **form).status_code == 400


def test_post_needs_no_csrf_token(db, alice):
    response = post_token(Client(enforce_csrf_checks=True), grant_type="password", username=alice.username,
                          password=PASSWORD)
    assert response.status_code == 200


def test_post_throttled(client, alice):
    for _ in range(10):
        post_token(client, grant_type="password", username=alice.username, password="wrong-password")
    response = post_token(client, grant_type="password", username=alice.username, password=PASSWORD)
    assert response.status_code == 429
