"""Account doors on a live hub: what podman prints to a 2FA user using the password, and a
revoked access token's registry bearer token refused within seconds."""

from __future__ import annotations

import time

import pytest
import requests
from allauth.mfa.totp.internal.auth import TOTP

from accounts.models import Namespace
from accounts.services import access_token_create
from tests.conftest import PASSWORD
from tests.e2e.clients import ContainerClients
from tests.factories import RepositoryFactory

REVOCATION_DEADLINE_SECONDS = 10.0  # the epoch is read every 2 s; generous for a loaded machine


@pytest.fixture
def podman(live_hub, tmp_path) -> ContainerClients:
    return ContainerClients(tmp_path / "clients", [live_hub.host])


@pytest.fixture
def user_with_totp(live_user, committed):
    user = live_user()
    with committed():
        TOTP.activate(user, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    return user


def test_podman_pull_with_the_password_of_a_2fa_account_prints_that_a_token_is_needed(live_hub, user_with_totp,
                                                                                      podman):
    user = user_with_totp
    refused = podman.podman_pull(f"{live_hub.host}/{user.username}/app:latest", creds=(user.username, PASSWORD),
                                 check=False)
    assert refused.returncode != 0
    assert "personal access token" in refused.stderr, refused.describe()
    assert f"{live_hub.url}/settings/tokens" in refused.stderr, refused.describe()


def test_podman_login_with_the_password_of_a_2fa_account(live_hub, user_with_totp, committed, podman):
    """podman (containers/common) answers every 401 at login with its own fixed "invalid username/password";
    the token endpoint's detail is in its debug log. The access token logs in."""
    user = user_with_totp
    refused = podman.run(["podman", "--log-level=debug", "login", "-u", user.username, "--password-stdin",
                          live_hub.host], input=PASSWORD + "\n", check=False)
    assert refused.returncode != 0
    assert "invalid username/password" in refused.stderr, refused.describe()
    assert "two-factor authentication is enabled on this account: log in with a personal access token" \
        in refused.stderr, refused.describe()
    with committed():
        _, secret = access_token_create(user=user, label="cli", scope="repo:read")
    podman.podman_login(live_hub.host, user.username, secret)


def test_a_wrong_password_of_a_2fa_account_gets_the_same_answer(live_hub, user_with_totp):
    user = user_with_totp
    answers = [requests.get(f"{live_hub.url}/token", params={"service": live_hub.host},
                            auth=(user.username, password), timeout=10) for password in (PASSWORD, "wrong-one")]
    assert [answer.status_code for answer in answers] == [401, 401]
    assert answers[0].json() == answers[1].json()
    assert "personal access token" in answers[0].json()["details"]


@pytest.mark.sqlite  # on the embedded setup the revocation time lives in the database cache
def test_a_revoked_access_tokens_bearer_token_stops_working_within_seconds(live_hub, live_user):
    """A JWT from the password, a personal access token and a bearer token made from it, all made through
    the live hub as a user would; the token is revoked through the API (another process than the one
    that answers the registry requests, most of the time)."""
    user = live_user()
    login = requests.post(f"{live_hub.url}/v2/users/login", json={"username": user.username, "password": PASSWORD},
                          timeout=10)
    api = {"Authorization": f"Bearer {login.json()['token']}"}
    created = requests.post(f"{live_hub.url}/v2/access-tokens/", json={"token_label": "ci", "scopes": ["repo:write"]},
                            headers=api, timeout=10).json()
    scope = f"repository:{user.username}/app:pull,push"
    issued = requests.get(f"{live_hub.url}/token", params={"service": live_hub.host, "scope": scope},
                          auth=(user.username, created["token"]), timeout=10)
    bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
    tags = f"{live_hub.url}/v2/{user.username}/app/tags/list"
    assert requests.get(tags, headers=bearer, timeout=10).status_code == 404  # authenticated: no such repository

    revoked = requests.patch(f"{live_hub.url}/v2/access-tokens/{created['uuid']}", json={"is_active": False},
                             headers=api, timeout=10)
    assert revoked.status_code == 200, revoked.text
    started = time.monotonic()
    statuses = []
    while time.monotonic() - started < REVOCATION_DEADLINE_SECONDS:
        statuses.append(requests.get(tags, headers=bearer, timeout=10).status_code)
        if statuses[-1] == 401:
            break
        time.sleep(0.2)
    assert statuses[-1] == 401, statuses


def test_forwarded_headers_from_loopback_are_ignored_without_a_proxy(live_hub, live_user, committed):
    """gunicorn's default trusts X-Forwarded-Proto from 127.0.0.1; with HUB_BEHIND_PROXY off nobody's is."""
    user = live_user()
    with committed():
        for name in ("one", "two"):
            RepositoryFactory(namespace=Namespace.objects.get(user=user), name=name)
    response = requests.get(f"{live_hub.url}/v2/repositories/{user.username}/", params={"page_size": 1},
                            headers={"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "on"}, timeout=10)
    assert response.json()["next"].startswith(f"{live_hub.url}/")


def test_a_burst_of_logins_with_the_right_password_is_never_refused(live_hub, live_user):
    """A CI job pulling forty-eight images at once, each skopeo or docker process logging in with the stored
    password: more than the failure budget (10) are checked at the same time on the hub's 16 threads. Those
    past the budget wait for the ones in flight instead of getting 429 "too many failed login attempts"."""
    from concurrent.futures import ThreadPoolExecutor

    user = live_user()

    def log_in(_number: int) -> int:
        return requests.get(f"{live_hub.url}/token", params={"service": live_hub.host,
                                                             "scope": f"repository:{user.username}/app:pull"},
                            auth=(user.username, PASSWORD), timeout=60).status_code

    for _burst in range(2):
        with ThreadPoolExecutor(48) as pool:
            statuses = list(pool.map(log_in, range(48)))
        assert statuses == [200] * 48, statuses
