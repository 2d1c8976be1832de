"""Organization access tokens: `/v2/orgs/<org>/access-tokens` (owners only, strict resources, the value
shown once and stored hashed), and what a token does at the registry's doors (`/token`, Basic on `/v2/`):
exactly its resources, dying at once when revoked, deactivated or expired, and never a Hub API login."""

import base64
import datetime as dt
import time

import jwt
import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounts.models import AccessToken, OrganizationAccessToken
from accounts.org_tokens import glob_match, org_access_token_create, org_access_token_revoke
from accounts.services import access_token_create
from accounts.throttles import failure_keys
from registry.tokens import verify_registry_token
from tests.api.conftest import auth
from tests.factories import RepositoryFactory, UserFactory, make_organization

PULL_PUSH = ["scope-image-pull", "scope-image-push"]


def url(org, pk=None) -> str:
    return f"/v2/orgs/{org.name}/access-tokens" + (f"/{pk}" if pk is not None else "")


def repo_resource(path, scopes=None) -> dict:
    return {"type": "TYPE_REPO", "path": path, "scopes": ["scope-image-pull"] if scopes is None else scopes}


def create(api, user, org, **body):
    body = {"label": "ci", "resources": [repo_resource(f"{org.name}/*", PULL_PUSH)], **body}
    return api.post(url(org), body, format="json", **auth(user))


def basic(username, password) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def registry_token(username, password, *scopes, **params):
    query = {"service": settings.REGISTRY_SERVICE, "scope": list(scopes), **params}
    return Client().get("/token", query, HTTP_AUTHORIZATION=basic(username, password))


def granted(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.content
    access = jwt.decode(response.json()["token"], options={"verify_signature": False})["access"]
    return {entry["name"]: entry["actions"] for entry in access}


@pytest.fixture
def repos(org, alice_repo, alice_private):
    """In alice's organization: `service` (private, from the Org fixture), `web-app` (public) and
    `other` (private); outside it: alice/app (public) and alice/secret (private)."""
    web = RepositoryFactory(namespace=org.namespace, name="web-app")
    other = RepositoryFactory(namespace=org.namespace, name="other", is_private=True)
    return {"service": org.repository, "web": web, "other": other}


# --- The API: who, what is shown, how it is stored ------------------------------------------------


def test_an_owner_creates_a_token_shown_once_and_stored_hashed(api, alice, org):
    response = create(api, alice, org, description="deploys", expires_at=None)
    assert response.status_code == 201, response.json()
    body = response.json()
    secret = body["token"]
    assert secret.startswith("dckr_oat_") and not secret.startswith(AccessToken.PREFIX)
    assert {key: body[key] for key in ("label", "description", "is_active", "expires_at", "last_used_at",
                                       "created_by")} == {"label": "ci", "description": "deploys", "is_active": True,
                                                          "expires_at": None, "last_used_at": None,
                                                          "created_by": alice.username}
    assert body["resources"] == [{"type": "TYPE_REPO", "path": f"{org.name}/*", "scopes": PULL_PUSH}]
    assert body["id"] and body["created_at"]

    stored = OrganizationAccessToken.objects.get(pk=body["id"])
    assert secret not in {stored.token_hash, stored.key_id, stored.token_hint, str(stored.resources)}
    assert stored.token_hash == OrganizationAccessToken.hash_secret(secret) and secret[9:21] == stored.key_id

    listed = api.get(url(org), **auth(alice)).json()["results"]
    assert [(t["id"], t["token"]) for t in listed] == [(body["id"], "")]
    assert api.get(url(org, body["id"]), **auth(alice)).json()["token"] == ""


@pytest.mark.parametrize("method", ["list", "create", "retrieve", "partial_update", "destroy"])
def test_only_owners_manage_tokens(api, alice, org, charlie, method):
    token, _ = org_access_token_create(organization=org.organization, created_by=alice, label="ci",
                                       resources=[repo_resource(f"{org.name}/*")])
    calls = {
        "list": lambda user: api.get(url(org), **auth(user)),
        "create": lambda user: create(api, user, org),
        "retrieve": lambda user: api.get(url(org, token.pk), **auth(user)),
        "partial_update": lambda user: api.patch(url(org, token.pk), {"label": "x"}, format="json", **auth(user)),
        "destroy": lambda user: api.delete(url(org, token.pk), **auth(user)),
    }
    call = calls[method]
    assert call(charlie).status_code == 404  # a stranger: as if there were no such organization
    member = org.members["admin"]  # even a team with admin on a repository is not the owners team
    refused = call(member)
    assert refused.status_code == 403 and "owners" in refused.json()["detail"]
    token.refresh_from_db()
    assert token.label == "ci" and token.revoked_at is None
    assert OrganizationAccessToken.objects.filter(organization=org.organization).count() == 1


def test_anonymous_and_unknown_organizations(api, alice, org):
    assert api.get(url(org)).status_code == 401
    assert api.get("/v2/orgs/nosuchorganization/access-tokens", **auth(alice)).status_code == 404


def test_a_session_from_a_personal_token_needs_repo_admin(api, alice, org):
    write, _ = access_token_create(user=alice, label="w", scope="repo:write")
    admin, _ = access_token_create(user=alice, label="a", scope="repo:admin")
    refused = api.get(url(org), **auth(alice, write))
    assert refused.status_code == 403 and "repo:admin" in refused.json()["detail"]
    assert api.get(url(org), **auth(alice, admin)).status_code == 200


@pytest.mark.parametrize(("resources", "message"), [
    ([], "non-empty list"),
    ("acme/*", "non-empty list"),
    ([{"type": "TYPE_ORG", "path": "{org}/*", "scopes": ["scope-image-pull"]}], "only TYPE_REPO"),
    ([{"path": "{org}/*", "scopes": ["scope-image-pull"]}], "only TYPE_REPO"),
    ([repo_resource("otherorg/*")], "outside the organization"),
    ([repo_resource("*/*")], "outside the organization"),
    ([repo_resource("*")], "outside the organization"),
    ([repo_resource("{org}")], "outside the organization"),
    ([repo_resource("{org}x/app")], "outside the organization"),
    ([repo_resource("{org}/a/b")], "not a repository name or glob"),
    ([repo_resource("{org}/App")], "not a repository name or glob"),
    ([repo_resource("{org}/[ab]*")], "not a repository name or glob"),
    ([repo_resource("{org}/-app")], "not a valid repository name"),
    ([repo_resource("{org}/*", ["scope-image-delete"])], "Unknown scope"),
    ([repo_resource("{org}/*", [])], "needs `scopes`"),
    ([repo_resource("{org}/*", ["scope-image-push"])], "needs scope-image-pull"),
    ([repo_resource("*/*/public", PULL_PUSH)], "grants scope-image-pull only"),
    ([{**repo_resource("{org}/*"), "extra": 1}], "Unknown resource field"),
    ([repo_resource("{org}/*"), repo_resource("{org}/*")], "given twice"),
])
def test_resources_are_checked_strictly(api, alice, org, resources, message):
    if isinstance(resources, list):
        resources = [{**r, "path": r["path"].replace("{org}", org.name)} if "path" in r else r for r in resources]
    response = create(api, alice, org, resources=resources)
    assert response.status_code == 400, response.json()
    assert list(response.json()) == ["resources"] and message in response.json()["resources"][0]
    assert not OrganizationAccessToken.objects.exists()


def test_label_and_expiry_are_checked(api, alice, org):
    assert list(create(api, alice, org, label="").json()) == ["label"]
    past = (timezone.now() - dt.timedelta(days=1)).isoformat()
    assert list(create(api, alice, org, expires_at=past).json()) == ["expires_at"]
    future = timezone.now() + dt.timedelta(days=30)
    body = create(api, alice, org, expires_at=future.isoformat()).json()
    assert dt.datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00")) == future


def test_patch_changes_label_description_and_is_active(api, alice, org):
    body = create(api, alice, org).json()
    changed = api.patch(url(org, body["id"]), {"label": "deploy", "description": "prod", "is_active": False},
                        format="json", **auth(alice))
    assert changed.status_code == 200
    assert {k: changed.json()[k] for k in ("label", "description", "is_active", "token")} == {
        "label": "deploy", "description": "prod", "is_active": False, "token": ""}
    assert registry_token(org.name, body["token"], f"repository:{org.name}/service:pull").status_code == 401
    api.patch(url(org, body["id"]), {"is_active": True}, format="json", **auth(alice))
    assert granted(registry_token(org.name, body["token"], f"repository:{org.name}/service:pull")) == {
        f"{org.name}/service": ["pull"]}


def test_delete_revokes_for_good(api, alice, org):
    body = create(api, alice, org).json()
    assert api.delete(url(org, body["id"]), **auth(alice)).status_code == 204
    assert api.get(url(org, body["id"]), **auth(alice)).status_code == 404
    assert api.get(url(org), **auth(alice)).json()["results"] == []
    assert api.patch(url(org, body["id"]), {"is_active": True}, format="json", **auth(alice)).status_code == 404
    assert registry_token(org.name, body["token"], f"repository:{org.name}/service:pull").status_code == 401


# --- At the registry's doors --------------------------------------------------------------------------


def make_token(org, alice, resources, **kwargs):
    return org_access_token_create(organization=org.organization, created_by=alice, label="ci",
                                   resources=resources, **kwargs)


def test_token_grants_exactly_its_resources(org, alice, repos):
    _, secret = make_token(org, alice, [repo_resource(f"{org.name}/web-*", PULL_PUSH),
                                        repo_resource(f"{org.name}/service"),
                                        repo_resource("*/*/public")])
    response = registry_token(
        org.name, secret,
        f"repository:{org.name}/web-app:pull,push,delete",  # push from the glob; never delete
        f"repository:{org.name}/web-new:pull,push",  # a new repository the glob names: the push creates it
        f"repository:{org.name}/service:pull,push",  # pull only
        f"repository:{org.name}/other:pull,push",  # private, not named: nothing
        f"repository:{org.name}/new:pull,push",  # not named: nothing
        f"repository:{repos['service'].namespace.name}/services:pull",  # exact path, not a prefix
        f"repository:{alice.username}/app:pull,push",  # public elsewhere: pull through */*/public
        f"repository:{alice.username}/secret:pull",  # private elsewhere: nothing
    )
    assert granted(response) == {
        f"{org.name}/web-app": ["pull", "push"], f"{org.name}/web-new": ["pull", "push"],
        f"{org.name}/service": ["pull"], f"{org.name}/other": [], f"{org.name}/new": [],
        f"{org.name}/services": [], f"{alice.username}/app": ["pull"], f"{alice.username}/secret": [],
    }
    assert jwt.decode(response.json()["token"], options={"verify_signature": False})["sub"] == org.name


def test_public_resource_reads_public_repositories_of_the_organization_too(org, alice, repos):
    _, secret = make_token(org, alice, [repo_resource("*/*/public")])
    assert granted(registry_token(org.name, secret, f"repository:{org.name}/web-app:pull,push",
                                  f"repository:{org.name}/other:pull")) == {
        f"{org.name}/web-app": ["pull"], f"{org.name}/other": []}


def test_username_must_be_the_organization(org, alice, repos):
    _, secret = make_token(org, alice, [repo_resource(f"{org.name}/*")])
    assert registry_token(alice.username, secret, f"repository:{org.name}/service:pull").status_code == 401
    assert registry_token(org.name.upper(), secret, f"repository:{org.name}/service:pull").status_code == 200
    elsewhere = make_organization(UserFactory())
    assert registry_token(elsewhere.name, secret, f"repository:{org.name}/service:pull").status_code == 401


def test_no_refresh_token_for_organization_tokens(org, alice, repos):
    _, secret = make_token(org, alice, [repo_resource(f"{org.name}/*")])
    response = registry_token(org.name, secret, offline_token="true", client_id="docker")
    assert response.status_code == 200 and "refresh_token" not in response.json()
    form = {"service": settings.REGISTRY_SERVICE, "client_id": "docker", "grant_type": "password",
            "username": org.name, "password": secret, "access_type": "offline",
            "scope": f"repository:{org.name}/service:pull"}
    posted = Client().post("/token", form)
    assert posted.status_code == 200 and "refresh_token" not in posted.json()
    assert posted.json()["scope"] == f"repository:{org.name}/service:pull"


def test_basic_credentials_on_v2_use_the_grant(org, alice, repos):
    _, secret = make_token(org, alice, [repo_resource(f"{org.name}/web-app")])
    client = Client()
    allowed = client.get(f"/v2/{org.name}/web-app/tags/list", HTTP_AUTHORIZATION=basic(org.name, secret))
    assert allowed.status_code == 200
    refused = client.get(f"/v2/{org.name}/other/tags/list", HTTP_AUTHORIZATION=basic(org.name, secret))
    assert refused.status_code == 401
    wrong = client.get(f"/v2/{org.name}/web-app/tags/list", HTTP_AUTHORIZATION=basic(org.name, secret + "x"))
    assert wrong.status_code == 401


@pytest.mark.parametrize("end", ["revoke", "deactivate", "expire", "delete"])
def test_registry_tokens_die_with_it(org, alice, repos, end, api):
    token, secret = make_token(org, alice, [repo_resource(f"{org.name}/*", PULL_PUSH)])
    bearer = registry_token(org.name, secret, f"repository:{org.name}/service:pull").json()["token"]
    assert verify_registry_token(bearer).actions_for(org.name, "service") == {"pull"}
    if end == "revoke":
        org_access_token_revoke(token=token)
    elif end == "deactivate":
        api.patch(url(org, token.pk), {"is_active": False}, format="json", **auth(alice))
    elif end == "expire":
        OrganizationAccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        from accounts.revocation import credentials_revoked

        credentials_revoked()  # any revocation: bearers issued before it are checked again, expiry included
    else:
        token.delete()
    assert verify_registry_token(bearer) is None
    assert registry_token(org.name, secret, f"repository:{org.name}/service:pull").status_code == 401


def test_an_expired_token_does_not_log_in(org, alice, repos):
    token, secret = make_token(org, alice, [repo_resource(f"{org.name}/*")],
                               expires_at=timezone.now() + dt.timedelta(seconds=60))
    assert registry_token(org.name, secret, f"repository:{org.name}/service:pull").status_code == 200
    OrganizationAccessToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert registry_token(org.name, secret, f"repository:{org.name}/service:pull").status_code == 401


def test_use_updates_last_used_at_at_most_once_a_minute(org, alice, repos):
    token, secret = make_token(org, alice, [repo_resource(f"{org.name}/*")])
    registry_token(org.name, secret)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and timezone.now() - first < dt.timedelta(seconds=10)
    registry_token(org.name, secret)
    token.refresh_from_db()
    assert token.last_used_at == first
    OrganizationAccessToken.objects.filter(pk=token.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    registry_token(org.name, secret)
    token.refresh_from_db()
    assert token.last_used_at > first - dt.timedelta(minutes=2)


def test_wrong_tokens_for_the_organization_name_count_as_failed_logins(org, alice, repos, settings):
    settings.REGISTRY_AUTH_MAX_FAILURES = 3
    _, secret = make_token(org, alice, [repo_resource(f"{org.name}/*")])
    account_key = failure_keys(identifier=org.name, address="127.0.0.1", user=None)[0]
    for wrong in ["dckr_oat_" + "0" * 60, secret[:-2] + "xx", "a-password"]:
        response = registry_token(org.name, wrong, f"repository:{org.name}/service:pull")
        assert response.status_code == 401 and response.json() == {"details": "incorrect username or password"}
    assert cache.get(account_key) == 3
    throttled = registry_token(org.name, "dckr_oat_" + "1" * 60, f"repository:{org.name}/service:pull")
    assert throttled.status_code == 429
    # The right token still works, as personal access tokens do past the budget.
    assert registry_token(org.name, secret, f"repository:{org.name}/service:pull").status_code == 200


# --- Never the Hub API -----------------------------------------------------------------------------


def test_hub_api_logins_refuse_organization_tokens(api, alice, org):
    _, secret = make_token(org, alice, [repo_resource(f"{org.name}/*", PULL_PUSH)])
    for path, body in [("/v2/users/login", {"username": org.name, "password": secret}),
                       ("/v2/auth/token", {"identifier": org.name, "secret": secret}),
                       ("/v2/users/login", {"username": alice.username, "password": secret})]:
        response = api.post(path, body, format="json")
        assert response.status_code == 401, (path, response.json())
        assert "organization access tokens only log in to the registry" in response.json()["detail"]


def test_registry_tokens_are_no_hub_api_credentials(api, alice, org):
    _, secret = make_token(org, alice, [repo_resource(f"{org.name}/*", PULL_PUSH)])
    bearer = registry_token(org.name, secret, f"repository:{org.name}/service:pull").json()["token"]
    for path in [url(org), f"/v2/orgs/{org.name}/members", "/v2/access-tokens"]:
        assert api.get(path, HTTP_AUTHORIZATION=f"Bearer {bearer}").status_code == 401
    assert api.get(url(org), HTTP_AUTHORIZATION=basic(org.name, secret)).status_code == 401


def test_the_organization_name_has_no_password_login(api, alice, org):
    response = api.post("/v2/users/login", {"username": org.name, "password": "correct-horse-battery"},
                        format="json")
    assert response.status_code == 401


# --- Globs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "name", "matches"), [
    ("acme/*", "acme/app", True), ("acme/*", "acme/", True), ("acme/*", "acmex/app", False),
    ("acme/web-*", "acme/web-app", True), ("acme/web-*", "acme/api", False), ("acme/web-?", "acme/web-1", True),
    ("acme/web-?", "acme/web-12", False), ("acme/app", "acme/app", True), ("acme/app", "acme/app2", False),
    ("acme/*-prod", "acme/a-b-prod", True), ("acme/*-prod", "acme/a-prod-x", False), ("acme/a.b", "acme/axb", False),
])
def test_glob_match(pattern, name, matches):
    assert glob_match(pattern, name) is matches


def test_glob_match_stays_fast_on_a_pathological_pattern():
    pattern, name = "acme/" + "*a" * 120 + "b", "acme/" + "a" * 250
    started = time.perf_counter()
    assert glob_match(pattern, name) is False
    assert time.perf_counter() - started < 1.0


def test_creating_changing_and_revoking_a_token_is_audited_without_its_value(alice):
    from accounts.models import AuditEvent
    from accounts.org_tokens import org_access_token_create, org_access_token_revoke, org_access_token_update
    from tests.factories import make_organization

    organization = make_organization(alice)
    token, secret = org_access_token_create(
        organization=organization, created_by=alice, label="ci",
        resources=[{"type": "TYPE_REPO", "path": f"{organization.name}/*", "scopes": ["scope-image-pull"]}])
    org_access_token_update(token=token, is_active=False)
    org_access_token_revoke(token=token)
    events = AuditEvent.objects.filter(account__organization=organization).order_by("pk")
    assert [event.action for event in events][-3:] == ["org.access_token.create", "org.access_token.update",
                                                      "org.access_token.revoke"]
    assert secret not in str([event.data for event in events])


def test_pulls_count_against_the_organizations_plan(org, alice, repos, settings):
    settings.HUB_PULL_LIMIT_USER = 100
    _, secret = make_token(org, alice, [repo_resource(f"{org.name}/*")])
    claims = lambda: jwt.decode(registry_token(org.name, secret).json()["token"],  # noqa: E731
                                options={"verify_signature": False})
    assert claims()["pl"] == 100 and "uid" not in claims() and "oat" in claims()
    org.namespace.pull_limit = 7
    org.namespace.save(update_fields=["pull_limit"])
    assert claims()["pl"] == 7
