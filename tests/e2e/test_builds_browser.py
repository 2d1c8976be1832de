"""The Builds tab in a real browser, against a live hub with builds on and a real Celery worker.

The repository's admin links a local Git repository (under the hub's allowed root), sees the trigger
URL once and the default rule, adds a rule, starts a build by hand and watches its log grow on the
build page (htmx, no reload) until it succeeds; the image then carries the trusted-build badge on
the repository and Tags pages. Someone who is not an admin sees neither the trigger URL nor the
settings. Screenshots at 1280 px and 390 px go to test-artifacts/screenshots/builds-*.png.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.factories import unique_name
from tests.live import start_hub

pytestmark = [pytest.mark.e2e, pytest.mark.browser,
              pytest.mark.skipif(shutil.which("buildah") is None, reason="buildah is not installed")]

WIDTHS = ((1280, 900), (390, 844))
BUILD_DEADLINE_MS = 240_000


def shoot(page: Page, folder: Path, name: str) -> None:
    """Full-page screenshots at laptop and phone widths, then back to the laptop width."""
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(folder / f"builds-{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0][0], "height": WIDTHS[0][1]})


def log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_login", username)
    page.fill("#id_password", PASSWORD)
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=Wharf Test", "-c", "user.email=t@example.com",
                           *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def local_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("browser-git-sources").resolve()


@pytest.fixture(scope="module")
def build_hub(local_root, artifacts_dir, django_db_setup):
    """A hub (gunicorn and its worker, from tests/live.py) with builds on and `local_root` allowed."""
    hub = start_hub(artifacts_dir, HUB_BUILDS_ENABLED="1", HUB_BUILD_LOCAL_ROOTS=str(local_root),
                    HUB_BUILD_TIMEOUT_SECONDS="240", HUB_BUILD_DISPATCH_SECONDS="2")
    yield hub
    hub.stop()


@pytest.fixture
def source(local_root) -> tuple[Path, str]:
    """A Git repository under the allowed root with one commit: a Dockerfile that builds without a base image."""
    repo = local_root / unique_name("src-")
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\n")
    (repo / "hello.txt").write_text("hello from a trusted build\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "A scratch image with one file")
    return repo, git(repo, "rev-parse", "HEAD")


def test_builds_tab_in_browser(page: Page, browser, build_hub, live_user, committed, source, screenshots_dir):
    from accounts.models import Namespace
    from repositories.services import repository_create

    base = build_hub.url
    admin, stranger = live_user(), live_user()
    name = unique_name("built")[:20]
    full = f"{admin.username}/{name}"
    with committed():
        repository_create(namespace=Namespace.objects.get(user=admin), name=name, user=admin,
                          description="Built on this hub from a local Git repository")
    repo, commit = source
    page.set_viewport_size({"width": WIDTHS[0][0], "height": WIDTHS[0][1]})
    log_in(page, base, admin.username)

    # The Builds tab before a source is linked: the link form, no builds.
    page.goto(f"{base}/r/{full}")
    page.locator("nav.tabs").get_by_role("link", name="Builds").click()
    expect(page.get_by_role("heading", name="Link a Git repository")).to_be_visible()
    expect(page.get_by_text("No builds yet.")).to_be_visible()

    # Link the local repository: the trigger URL is shown (once) with the default rule main → latest.
    page.get_by_label("Git URL").fill(str(repo))
    page.get_by_label("Default branch").fill("main")
    page.get_by_role("button", name="Link", exact=True).click()
    expect(page.get_by_text("Source linked.")).to_be_visible()
    trigger = page.locator("#trigger-url")
    expect(trigger).to_have_text(re.compile(rf"^{re.escape(base)}/api/build/[0-9a-f-]{{36}}/trigger/\S+/$"))
    trigger_url = trigger.inner_text()
    rules = page.locator("section[aria-labelledby=rules-title] tbody tr")
    expect(rules).to_have_count(1)
    expect(rules.first).to_contain_text("Branch")
    expect(rules.first.locator("td").nth(1)).to_have_text("main")
    expect(rules.first.locator("td").nth(2)).to_have_text("latest")
    shoot(page, screenshots_dir, "linked")

    # Add a rule: tags v1.2.3 → 1.2.3.
    form = page.locator("form", has=page.get_by_role("button", name="Add rule"))
    form.get_by_label("Type").select_option(label="Tag")
    form.get_by_label("Source", exact=True).fill("/^v([0-9.]+)$/")
    form.get_by_label("Docker tag").fill("{\\1}")
    form.get_by_role("button", name="Add rule").click()
    expect(rules).to_have_count(2)
    expect(page.locator("section[aria-labelledby=rules-title] tbody tr", has_text="/^v([0-9.]+)$/")).to_contain_text(
        "{\\1}")
    # The trigger URL was shown once: it is not on the page any more (only "New trigger URL").
    expect(page.locator("#trigger-url")).to_have_count(0)
    expect(page.get_by_role("button", name="New trigger URL")).to_be_visible()

    # Start a build by hand and follow it to its page.
    page.get_by_role("button", name="Build default branch now").click()
    expect(page.get_by_text("1 build(s) queued.")).to_be_visible()
    row = page.locator("section[aria-labelledby=builds-title] tbody tr").first
    expect(row).to_contain_text("latest")
    row.get_by_role("link", name=re.compile(r"^#\d+$")).click()
    expect(page.get_by_role("heading", name=re.compile(r"^Build #\d+"))).to_be_visible()

    # The log grows in place (htmx polling): the page is never reloaded, and it ends in success.
    log_lines = page.locator("#build-log > span:not([id]):not([hx-get])")
    lines_at_first = log_lines.count()
    page.evaluate("window.wharfNotReloaded = true")
    expect(page.locator("#log-poller[data-final]")).to_have_count(1, timeout=BUILD_DEADLINE_MS)
    assert page.evaluate("window.wharfNotReloaded === true")
    assert log_lines.count() > lines_at_first
    expect(page.locator("#log-poller")).to_have_attribute("data-final", "success")
    log = page.locator("#build-log").inner_text()
    assert f"checked out {commit}" in log and f"pushed {full}:latest" in log and "signed sha256:" in log
    assert "build failed" not in log
    assert "\n\n" not in log  # polls add lines, never blank ones
    # The summary above the log follows the build too: its state, digest and signature, and Retry for the admin.
    summary = page.locator("section[aria-labelledby=build-title]")
    expect(summary.locator(".badge", has_text="Success")).to_be_visible()
    expect(summary.get_by_text("Trusted build")).to_be_visible()
    expect(summary.get_by_text(re.compile(r"sha256:[0-9a-f]{64}")).first).to_be_visible()
    expect(summary.get_by_role("button", name="Retry")).to_be_visible()
    expect(summary.get_by_role("button", name="Cancel")).to_have_count(0)
    # So does the repository header above the tabs: the push the build made, the trusted build badge.
    header = page.locator("#repo-header-main")
    expect(header).to_contain_text("Last pushed")
    expect(header).not_to_contain_text("Never pushed")
    expect(header.get_by_role("link", name="Trusted build")).to_be_visible()
    # The log box follows the new lines: it ends scrolled to its last line.
    assert page.locator("#build-log").evaluate("box => box.scrollHeight - box.scrollTop - box.clientHeight < 2")
    shoot(page, screenshots_dir, "log")
    page.get_by_role("link", name="All builds").click()
    expect(page.locator("section[aria-labelledby=builds-title] tbody tr").first.locator(".badge")).to_have_text(
        "Success")
    shoot(page, screenshots_dir, "tab")

    # The trusted-build badge: on the repository header, and on the tag's row.
    page.goto(f"{base}/r/{full}")
    badge = page.locator(".repo-trusted .trusted-build")
    expect(badge.get_by_role("link", name="Trusted build")).to_be_visible()
    expect(badge.locator(f"[title='{commit}']")).to_have_text(commit[:7])
    shoot(page, screenshots_dir, "badge")
    page.goto(f"{base}/r/{full}/tags")
    tag_row = page.locator("table.tags-table tbody tr", has_text="latest")
    expect(tag_row.get_by_role("link", name="Trusted build")).to_be_visible()
    shoot(page, screenshots_dir, "tags")

    # Someone who is not an admin: the builds and the source, but no trigger URL, key or settings.
    other = browser.new_context(viewport={"width": WIDTHS[0][0], "height": WIDTHS[0][1]})
    try:
        other_page = other.new_page()
        log_in(other_page, base, stranger.username)
        other_page.goto(f"{base}/r/{full}/builds")
        expect(other_page.get_by_role("heading", name=re.compile("Source"))).to_be_visible()
        expect(other_page.locator("section[aria-labelledby=builds-title] tbody tr")).to_have_count(1)
        content = other_page.content()
        token = trigger_url.rstrip("/").rsplit("/", 1)[1]
        assert token not in content and "/api/build/" not in content
        for hidden in ("New trigger URL", "Build default branch now", "Unlink source", "Add rule"):
            expect(other_page.get_by_role("button", name=hidden)).to_have_count(0)
        expect(other_page.get_by_role("heading", name="Build rules")).to_have_count(0)
        other_page.get_by_role("link", name=re.compile(r"^#\d+$")).click()
        expect(other_page.locator("#log-poller")).to_have_attribute("data-final", "success")
        expect(other_page.get_by_role("button", name="Retry")).to_have_count(0)
    finally:
        other.close()
