"""The Hub in a real browser against the real gunicorn (and Celery beat flushing pull counts).

Log in, create a repository, push to it with skopeo, see the tag and its platform chip, star it,
pull it and watch the pull count grow, find it in search, make it private and check another user
cannot see it anywhere. Screenshots of the main pages at 1280 px and 390 px go to
test-artifacts/screenshots/hub-*.png.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from repositories.models import Repository
from tests.conftest import PASSWORD
from tests.factories import unique_name
from tests.live import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
pytest_plugins = ["tests.e2e.images"]

WIDTHS = ((1280, 900), (390, 844))


def shoot(page: Page, folder: Path, name: str) -> None:
    """Full-page screenshots at laptop and phone widths, then back to the laptop width."""
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(folder / f"hub-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0][0], "height": WIDTHS[0][1]})


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_login", username)
    page.fill("#id_password", PASSWORD)
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()


def skopeo(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"skopeo {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.django_db
def test_official_images_namespace_exists():
    """Official images live in `library` (the data migration made it; the pages rely on it)."""
    from accounts.models import Namespace

    assert Namespace.objects.filter(name="library", kind=Namespace.Kind.LIBRARY).exists()


def test_hub_repository_flow_in_browser(page: Page, browser, live_hub, live_user, committed, test_images,
                                        screenshots_dir, tmp_path):
    base = live_hub.url
    owner = live_user()
    stranger = live_user()
    repo_name = unique_name("web")[:20]
    full = f"{owner.username}/{repo_name}"
    page.set_viewport_size({"width": 1280, "height": 900})

    # Dashboard, empty.
    log_in(page, base, owner.username)
    expect(page.get_by_text("No repositories yet")).to_be_visible()

    # Create a repository: a mistake first (the error sits next to the field, input kept), then properly.
    page.get_by_role("link", name="Create repository").click()
    page.fill("#id_name", "Bad Name")
    page.fill("#id_description", "A tiny busybox image")
    page.locator("main").get_by_role("button", name="Create", exact=True).click()
    expect(page.locator("#id_name_error")).to_contain_text("Use lowercase letters only.")
    expect(page.locator("#id_description")).to_have_value("A tiny busybox image")
    shoot(page, screenshots_dir, "create")
    page.fill("#id_name", repo_name)
    page.locator("main").get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_text(f"Created {full}")).to_be_visible()
    expect(page.get_by_text("No overview yet")).to_be_visible()

    # Push with skopeo; the tag shows up with its platform chip.
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"{owner.username}:{PASSWORD}",
           test_images.small.ref, f"docker://{live_hub.host}/{full}:v1")
    page.goto(f"{base}/r/{full}/tags")
    row = page.locator("table.tags-table tbody tr", has_text="v1")
    expect(row).to_be_visible()
    expect(row.locator(".chip")).to_have_text("linux/amd64")
    expect(row.locator("code.digest")).to_have_attribute("title", test_images.small.manifest_digest)
    shoot(page, screenshots_dir, "tags")

    row.get_by_role("link", name="v1", exact=True).click()
    expect(page.get_by_role("heading", name=f"{full}:v1")).to_be_visible()
    expect(page.get_by_text("Layers (1)")).to_be_visible()
    expect(page.get_by_text("No signatures")).to_be_visible()
    shoot(page, screenshots_dir, "tag-detail")

    # Write an overview in Settings, then star the repository (the htmx upgrade swaps the button).
    page.goto(f"{base}/r/{full}/settings")
    page.fill("#id_full_description", "# Busybox for Wharf\n\nRun it with `docker run --rm -it` and enjoy.\n\n"
                                      "<script>alert('x')</script>")
    page.get_by_role("button", name="Save descriptions").click()
    expect(page.get_by_text("Saved the descriptions.")).to_be_visible()
    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Busybox for Wharf")).to_be_visible()
    page.locator(".repo-pull").get_by_role("button", name=re.compile("Star")).click()
    expect(page.locator(".repo-pull .star-button")).to_have_attribute("aria-pressed", "true")
    page.reload()
    expect(page.locator(".repo-pull .star-button")).to_contain_text("Starred")
    with committed():
        assert Repository.objects.get(namespace__name=owner.username, name=repo_name).star_count == 1

    # Pull it; the pull count grows once registry.pulls.flush_pull_counters() has run (the live hub's
    # Celery beat runs it every second).
    skopeo("copy", "--src-tls-verify=false", f"docker://{live_hub.host}/{full}:v1", f"dir:{tmp_path / 'pulled'}")

    def pulled() -> bool:
        page.goto(f"{base}/r/{full}/stats")
        return page.locator(".stat-tiles .stat-value").first.inner_text() == "1"

    wait_until(pulled, timeout=60, interval=1, message="the pull count to reach 1")
    expect(page.locator("svg.chart title").first).to_have_text("Pulls per day, last 30 days")
    shoot(page, screenshots_dir, "stats")
    page.goto(f"{base}/r/{full}")
    shoot(page, screenshots_dir, "overview")

    # Search finds it; the dashboard and explore list it.
    page.goto(f"{base}/search?q={repo_name}")
    expect(page.locator(".repo-list .repo-row-name a").first).to_contain_text(repo_name)
    shoot(page, screenshots_dir, "search")
    page.goto(f"{base}/explore")
    expect(page.get_by_role("link", name=re.compile(repo_name)).first).to_be_visible()
    shoot(page, screenshots_dir, "explore")
    page.goto(f"{base}/")
    expect(page.get_by_text(f"{owner.username} pushed")).to_be_visible()
    shoot(page, screenshots_dir, "dashboard")

    # Make it private: another user (and nobody signed in) cannot see it anywhere.
    page.goto(f"{base}/r/{full}/settings")
    page.check("#id_visibility_1")
    page.get_by_role("button", name="Change visibility").click()
    expect(page.get_by_text(f"{full} is now private.")).to_be_visible()

    other = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        other_page = other.new_page()
        for signed_in in (False, True):
            if signed_in:
                log_in(other_page, base, stranger.username)
            response = other_page.goto(f"{base}/r/{full}")
            assert response.status == 404
            other_page.goto(f"{base}/search?q={repo_name}")
            expect(other_page.get_by_text("No repositories found")).to_be_visible()
            other_page.goto(f"{base}/explore")
            expect(other_page.get_by_role("link", name=re.compile(repo_name))).to_have_count(0)
            assert other_page.goto(f"{base}/r/{full}/tags/v1").status == 404
    finally:
        other.close()
    # …while the owner still sees it, badged Private.
    page.goto(f"{base}/r/{full}")
    expect(page.locator("h1 .badge-private")).to_be_visible()
