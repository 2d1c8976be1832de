"""Pages a newcomer meets, in a real browser: the home page's pull commands and the access-token
revocation that asks first. Screenshots at 1280 and 390 px go to test-artifacts/screenshots/hub-*.png."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_hub_browser import log_in, shoot

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


def test_the_home_page_offers_docker_and_podman_pull_commands_that_fit(page: Page, live_hub, screenshots_dir):
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_hub.url)
    card = page.locator(".features .card", has_text="Pull")
    for client, options in (("docker", ""), ("podman", "--tls-verify=false ")):  # the live hub is plain HTTP
        card.locator("label", has_text=client).click()
        command = card.locator("code", has_text=f"{client} pull {options}{live_hub.host}/<namespace>/<repository>")
        expect(command).to_be_visible()
        box = command.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 + 1  # not cut off the screen
    card.locator("label", has_text="docker").click()
    shoot(page, screenshots_dir, "home")


def test_revoking_a_token_asks_first_naming_it_and_its_last_use(page: Page, live_hub, live_user, committed,
                                                                screenshots_dir):
    from accounts.models import AccessToken
    from accounts.services import access_token_create

    owner = live_user()
    with committed():
        access_token_create(user=owner, label="laptop", scope="repo:read")
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_hub.url, owner.username)
    page.goto(f"{live_hub.url}/settings/tokens")
    page.get_by_role("link", name=re.compile("Revoke token laptop")).click()
    expect(page.get_by_role("heading", name="Revoke the token “laptop”?")).to_be_visible()
    expect(page.get_by_test_id("token-last-used")).to_contain_text("Never")
    shoot(page, screenshots_dir, "token-revoke")
    with committed():
        assert AccessToken.objects.get(user=owner, label="laptop").revoked_at is None  # asking revoked nothing
    page.get_by_role("button", name="Revoke “laptop”").click()
    with committed():
        assert AccessToken.objects.get(user=owner, label="laptop").revoked_at is not None
