"""Organization access tokens with real clients: an owner creates one through the Hub API, podman logs in
as the organization with it and pushes and pulls inside its resources, and is refused outside them;
once revoked through the API it logs in no more and the bearer tokens it minted stop within seconds."""

from __future__ import annotations

import time

import pytest
import requests

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from accounts.models import Namespace  # noqa: E402
from tests.conftest import PASSWORD  # noqa: E402
from tests.e2e.clients import ContainerClients  # noqa: E402
from tests.factories import make_organization  # noqa: E402

pytest_plugins = ["tests.e2e.clients", "tests.e2e.images"]
pytestmark = [pytest.mark.e2e]
REVOCATION_DEADLINE_SECONDS = 10.0  # the revocation epoch is read every 2 s; generous for a loaded machine


def test_podman_and_skopeo_with_an_organization_access_token(live_hub, live_user, committed, test_images, tmp_path):
    owner = live_user()
    with committed():
        org = make_organization(owner).name
        owner_namespace = Namespace.objects.get(user=owner).name
    host = live_hub.host
    api = _api(live_hub, owner)
    clients = ContainerClients(tmp_path / "clients", [host])
    owner_creds = (owner.username, PASSWORD)
    # The owner publishes what the token may only read, and what it may not touch at all.
    clients.skopeo_push(test_images.unique(), f"{host}/{org}/base:v1", creds=owner_creds)
    clients.skopeo_push(test_images.unique(), f"{host}/{org}/vault:v1", creds=owner_creds)
    private = requests.patch(f"{live_hub.url}/v2/repositories/{org}/vault/", json={"is_private": True},
                             headers=api, timeout=10)
    assert private.status_code == 200, private.text

    created = requests.post(f"{live_hub.url}/v2/orgs/{org}/access-tokens", headers=api, json={
        "label": "ci", "resources": [
            {"type": "TYPE_REPO", "path": f"{org}/app-*", "scopes": ["scope-image-pull", "scope-image-push"]},
            {"type": "TYPE_REPO", "path": f"{org}/base", "scopes": ["scope-image-pull"]},
        ]}, timeout=10)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    outside = requests.post(f"{live_hub.url}/v2/orgs/{org}/access-tokens", headers=api, json={
        "label": "x", "resources": [{"type": "TYPE_REPO", "path": f"{owner_namespace}/*",
                                     "scopes": ["scope-image-pull"]}]}, timeout=10)
    assert outside.status_code == 400 and "outside the organization" in outside.text

    clients.podman_login(host, org, token)
    clients.load(test_images.unique(), "local/app:v1")
    clients.podman_push("local/app:v1", f"{host}/{org}/app-web:v1")  # inside: creates the repository
    clients.podman_pull(f"{host}/{org}/base:v1")  # pull-only resource
    refused = clients.podman_push("local/app:v1", f"{host}/{org}/base:v2", check=False)
    assert refused.returncode != 0 and "denied" in refused.stderr.lower(), refused.describe()
    refused = clients.podman_pull(f"{host}/{org}/vault:v1", check=False)
    assert refused.returncode != 0, refused.describe()
    refused = clients.podman_push("local/app:v1", f"{host}/{owner_namespace}/stolen:v1", check=False)
    assert refused.returncode != 0, refused.describe()
    assert clients.skopeo_inspect(f"{host}/{org}/vault:v1", creds=owner_creds).returncode == 0

    # skopeo with the token as credentials: the pushed image reads back; vault stays unreadable.
    assert clients.skopeo_inspect(f"{host}/{org}/app-web:v1", raw=True, creds=(org, token)).returncode == 0
    hidden = clients.skopeo_inspect(f"{host}/{org}/vault:v1", raw=True, creds=(org, token), check=False)
    assert hidden.returncode != 0, hidden.describe()
    wrong = clients.skopeo_inspect(f"{host}/{org}/base:v1", raw=True, creds=(org, token[:-3] + "abc"), check=False)
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr.lower(), wrong.describe()

    # A bearer token minted from it, then the token revoked through the API: both stop.
    issued = requests.get(f"{live_hub.url}/token", params={"service": host, "scope": f"repository:{org}/base:pull"},
                          auth=(org, token), timeout=10)
    bearer = {"Authorization": f"Bearer {issued.json()['token']}"}
    tags = f"{live_hub.url}/v2/{org}/base/tags/list"
    assert requests.get(tags, headers=bearer, timeout=10).status_code == 200
    listed = requests.get(f"{live_hub.url}/v2/orgs/{org}/access-tokens", headers=api, timeout=10).json()["results"]
    assert [t["label"] for t in listed] == ["ci"] and listed[0]["last_used_at"] and listed[0]["token"] == ""
    revoked = requests.delete(f"{live_hub.url}/v2/orgs/{org}/access-tokens/{created.json()['id']}",
                              headers=api, timeout=10)
    assert revoked.status_code == 204, revoked.text
    started = time.monotonic()
    statuses = []
    while time.monotonic() - started < REVOCATION_DEADLINE_SECONDS:
        statuses.append(requests.get(tags, headers=bearer, timeout=10).status_code)
        if statuses[-1] == 401:
            break
        time.sleep(0.2)
    assert statuses[-1] == 401, statuses
    refused = clients.podman_pull(f"{host}/{org}/base:v1", check=False)
    assert refused.returncode != 0, refused.describe()
    refused = clients.podman_login(host, org, token, check=False)
    assert refused.returncode != 0, refused.describe()
    assert requests.get(f"{live_hub.url}/v2/orgs/{org}/access-tokens", headers=api, timeout=10).json()["results"] == []


def _api(live_hub, user) -> dict[str, str]:
    login = requests.post(f"{live_hub.url}/v2/users/login", json={"username": user.username, "password": PASSWORD},
                          timeout=10)
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['token']}"}
