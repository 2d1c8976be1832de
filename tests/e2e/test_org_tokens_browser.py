"""Organization access tokens and one's own Activity page in a real browser (issue 21): an owner creates a
token from the organization's settings, sees its value once (after a redirect: a reload neither shows it
again nor creates a second token), the token logs in to the token service with exactly its scopes, and
the owner revokes it after a confirmation naming it, its repositories and its last use (issue 24); a
person reads their own sign-ins and token changes under Settings > Activity, where organization events
never appear. Screenshots at 1280 and 390 px go to test-artifacts/screenshots/hub-org-access-tokens*.png,
hub-org-access-token-revoke-*.png and hub-account-activity-*.png."""

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

    # The creation redirected (post/redirect/get): a reload shows the value no more and creates nothing.
    assert re.search(rf"/orgs/{org}/settings/access-tokens#new-token$", page.url), page.url
    page.reload()
    expect(page.get_by_role("heading", name="Organization access tokens", exact=True)).to_be_visible()
    expect(page.get_by_test_id("token-secret")).to_have_count(0)
    expect(page.locator("table tbody tr")).to_have_count(1)
    with committed():
        assert OrganizationAccessToken.objects.filter(organization=organization).count() == 1
    row = page.locator("table tbody tr", has_text="CI pipeline")
    expect(row.locator("[data-label='Last used']")).to_contain_text("just now")  # the token service used it
    shoot(page, screenshots_dir, "org-access-tokens")

    # Revoking asks first, naming the token, its repositories and its last use; Cancel keeps it.
    row.get_by_role("link", name="Revoke token CI pipeline…").click()
    expect(page.get_by_test_id("token-revoke-title")).to_have_text("Revoke the token “CI pipeline”?")
    confirm_card = page.get_by_test_id("token-revoke-confirm")
    expect(confirm_card).to_contain_text(f"{org}/web-*")
    expect(confirm_card).to_contain_text("pull & push")
    expect(page.get_by_test_id("token-last-used")).to_contain_text("just now")
    expect(page.get_by_role("navigation", name="Organization").locator("[aria-current='page']")).to_have_text(
        "Settings")
    shoot(page, screenshots_dir, "org-access-token-revoke")
    page.get_by_role("link", name="Cancel").click()
    assert _granted_actions(live_hub, org, secret, f"{org}/web-api") == ["pull", "push"]  # still works
    page.locator("table tbody tr", has_text="CI pipeline").get_by_role("link", name="Revoke token CI pipeline…").click()
    page.get_by_role("button", name="Revoke “CI pipeline”").click()
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
