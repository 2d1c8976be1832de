"""Organization access tokens and one's own Activity page in a real browser (issue 21): an owner creates a
token from the organization's settings, sees its value once, the token logs in to the token service
with exactly its scopes, and the owner revokes it; a person reads their own sign-ins and token
changes under Settings > Activity, where organization events never appear. Screenshots at 1280 and
390 px go to test-artifacts/screenshots/hub-org-access-tokens*.png and hub-account-activity-*.png."""

from __future__ import annotations

import base64
import json
import re

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.test_hub_browser import log_in, shoot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def _granted_actions(live_hub, account: str, secret: str, repository: str) -> list[str]:
    """The actions the token service grants `account` with `secret` on `repository` (pull and push asked)."""
    answer = requests.get(f"{live_hub.url}/token", auth=(account, secret), timeout=10,
                          params={"service": live_hub.host, "scope": f"repository:{repository}:pull,push"})
    assert answer.status_code == 200, answer.text
    claims = answer.json()["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    return sorted(action for grant in claims["access"] if grant["name"] == repository for action in grant["actions"])


def test_an_owner_creates_uses_and_revokes_an_organization_access_token(
        page: Page, live_hub, live_user, committed, screenshots_dir):
    from accounts.models import OrganizationAccessToken
    from tests.factories import make_organization

    owner = live_user()
    with committed():
        organization = make_organization(owner)
    org = organization.name

    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_hub.url, owner.username)
    page.goto(f"{live_hub.url}/orgs/{org}/settings")
    page.get_by_role("link", name="Manage access tokens").click()
    expect(page.get_by_role("heading", name="Organization access tokens", exact=True)).to_be_visible()
    page.locator("#id_label").fill("CI pipeline")
    page.locator("#id_paths").fill(f"{org}/web-*")
    page.get_by_label("Image pull & push").check()
    page.get_by_role("button", name="Generate token").click()

    expect(page.get_by_role("heading", name=re.compile("Copy your new token “CI pipeline” now"))).to_be_visible()
    secret = page.get_by_test_id("token-secret").inner_text().strip()
    assert secret.startswith("dckr_oat_")
    expect(page.locator("#new-token code", has_text=f"docker login -u {org}")).to_be_visible()
    row = page.locator("table tbody tr", has_text="CI pipeline")
    expect(row).to_contain_text(f"{org}/web-*")
    expect(row).to_contain_text("pull & push")
    expect(row).to_contain_text("Active")
    expect(row).to_contain_text("Never")
    shoot(page, screenshots_dir, "org-access-tokens-created")

    assert _granted_actions(live_hub, org, secret, f"{org}/web-api") == ["pull", "push"]
    assert _granted_actions(live_hub, org, secret, f"{org}/vault") == []

    page.goto(page.url)  # the value is shown once; the list now says when it was last used
    expect(page.get_by_test_id("token-secret")).to_have_count(0)
    expect(page.locator("table tbody tr", has_text="CI pipeline")).not_to_contain_text("Never used")
    shoot(page, screenshots_dir, "org-access-tokens")

    page.get_by_role("button", name="Revoke token CI pipeline").click()
    confirm = page.get_by_role("button", name=re.compile("Revoke “CI pipeline”"))
    if confirm.count():  # a confirmation step, when the page asks first
        confirm.click()
    expect(page.get_by_text("The token “CI pipeline” has been revoked")).to_be_visible()
    with committed():
        assert not OrganizationAccessToken.objects.get(organization=organization, label="CI pipeline").is_usable()
    refused = requests.get(f"{live_hub.url}/token", auth=(org, secret), timeout=10,
                           params={"service": live_hub.host, "scope": f"repository:{org}/web-api:pull"})
    assert refused.status_code == 401, refused.text


def test_a_person_reads_their_own_activity_without_organization_events(
        page: Page, live_hub, live_user, committed, screenshots_dir):
    from accounts.services import access_token_create
    from tests.factories import make_organization

    person = live_user()
    with committed():
        organization = make_organization(person)
        access_token_create(user=person, label="laptop", scope="repo:read")

    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_hub.url, person.username)
    page.goto(f"{live_hub.url}/settings/activity")
    table = page.locator("table.activity-table")
    expect(table).to_contain_text("Signed in")
    expect(table).to_contain_text("Access token created")
    expect(table).to_contain_text("laptop")
    expect(table).not_to_contain_text("Organization created")
    expect(table).not_to_contain_text(organization.name)
    shoot(page, screenshots_dir, "account-activity")

    page.get_by_label("Action").select_option("account.login")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.activity-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("Signed in")
