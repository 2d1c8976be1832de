"""Immutable tags with real clients and a real browser: the settings page sets the rules, skopeo and
podman are refused with the registry's message, and the tag keeps its image. Screenshots of the
settings section at 1280 and 390 px go to test-artifacts/screenshots/hub-immutable-tags-*.png."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytest.register_assert_rewrite("tests.e2e.clients", "tests.e2e.images")

from tests.conftest import PASSWORD  # noqa: E402
from tests.e2e.clients import ContainerClients  # noqa: E402
from tests.e2e.test_hub_browser import log_in, shoot  # noqa: E402
from tests.factories import unique_name  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
pytest_plugins = ["tests.e2e.images"]


def test_rules_set_in_the_browser_refuse_moving_a_tag_with_skopeo_and_podman(
        page: Page, live_hub, live_user, test_images, screenshots_dir, tmp_path):
    owner = live_user()
    full = f"{owner.username}/{unique_name('frozen')[:20]}"
    clients = ContainerClients(tmp_path / "clients", [live_hub.host])
    creds = (owner.username, PASSWORD)
    first = test_images.unique()
    clients.skopeo_push(first, f"{live_hub.host}/{full}:v1.0", creds=creds)

    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_hub.url, owner.username)
    page.goto(f"{live_hub.url}/r/{full}/settings")
    section = page.locator("section", has=page.get_by_role("heading", name="Immutable tags"))
    section.get_by_label(re.compile("Specific tags are immutable")).check()
    section.get_by_label("Rules").fill("(a)\\1")
    section.get_by_role("button", name="Save tag immutability").click()
    expect(page.get_by_text(re.compile("linear time"))).to_be_visible()  # the reason, next to the field
    section = page.locator("section", has=page.get_by_role("heading", name="Immutable tags"))
    section.get_by_label("Rules").fill("v.*\n.*-RELEASE")
    section.get_by_role("button", name="Save tag immutability").click()
    expect(page.get_by_text("Tags matching the rules are immutable now.")).to_be_visible()
    page.get_by_role("heading", name="Immutable tags").scroll_into_view_if_needed()
    shoot(page, screenshots_dir, "immutable-tags")

    moved = clients.skopeo_push(test_images.unique(), f"{live_hub.host}/{full}:v1.0", creds=creds, check=False)
    assert moved.returncode != 0
    assert "immutable" in moved.stderr and "v.*" in moved.stderr, moved.stderr
    again = clients.skopeo_push(first, f"{live_hub.host}/{full}:v1.0", creds=creds)  # the same image: fine
    assert again.returncode == 0

    clients.podman_login(live_hub.host, *creds)
    clients.load(test_images.unique(), "localhost/frozen:latest")
    refused = clients.podman_push("localhost/frozen:latest", f"{live_hub.host}/{full}:v1.0", check=False)
    assert refused.returncode != 0 and "immutable" in refused.stderr, refused.stderr
    assert clients.podman_push("localhost/frozen:latest", f"{live_hub.host}/{full}:latest").returncode == 0

    inspected = clients.skopeo_inspect(f"{live_hub.host}/{full}:v1.0", raw=True, creds=creds)
    assert f'"{first.layer_digests[-1]}"' in inspected.stdout  # v1.0 still names the first image

    # The tags page refuses to delete it, saying why.
    page.goto(f"{live_hub.url}/r/{full}/tags/v1.0/delete")
    page.locator("main").get_by_role("button", name=re.compile("Delete")).click()
    expect(page.get_by_text(re.compile("immutable"))).to_be_visible()


def test_a_retention_policy_dry_run_then_run_in_the_browser(page: Page, live_hub, live_user, test_images,
                                                           screenshots_dir, tmp_path):
    owner = live_user()
    full = f"{owner.username}/{unique_name('kept')[:20]}"
    clients = ContainerClients(tmp_path / "clients", [live_hub.host])
    creds = (owner.username, PASSWORD)
    for tag in ("old-1", "old-2", "release-1", "newest"):  # pushed in this order: newest last
        clients.skopeo_push(test_images.unique(), f"{live_hub.host}/{full}:{tag}", creds=creds)

    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_hub.url, owner.username)
    page.goto(f"{live_hub.url}/r/{full}/settings")
    section = page.locator("#retention")
    section.get_by_label("Apply this policy every day").check()
    section.get_by_label("Keep the most recently pushed tags").fill("1")
    section.get_by_label("Never tags matching").fill("release-.*")
    section.get_by_role("button", name="Dry run").click()
    dry = page.locator("#retention-dry-run")
    expect(dry).to_contain_text("2 items would go")
    expect(dry).to_contain_text(":old-1")
    expect(dry).to_contain_text(":old-2")
    dry.scroll_into_view_if_needed()
    shoot(page, screenshots_dir, "retention-dry-run")

    page.locator("#retention").get_by_role("button", name="Save and run now").click()
    expect(page.get_by_text("Retention removed 2 items.")).to_be_visible()
    tags = clients.skopeo_list_tags(f"{live_hub.host}/{full}", creds=creds).json()["Tags"]
    assert sorted(tags) == ["newest", "release-1"]
