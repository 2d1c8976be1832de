"""Issue 24 points 4, 7 and 8 in a real browser: the repository's pull command for docker, podman and
skopeo (a switch that works without JavaScript, copy buttons, the plain-HTTP hints, the choice kept from
page to page), the star count in the header following the star button, "just now", the username rules
on the sign-up page, and the API docs inside the site's frame, linked from the footer. The live hub's
public URL is http://127.0.0.1:<port>, so the insecure-registry hints show. Screenshots at 1280 and 390 px
go to test-artifacts/screenshots/hub-*.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_hub_browser import log_in, shoot
from tests.factories import unique_name

pytestmark = [pytest.mark.e2e, pytest.mark.browser]


@pytest.fixture
def repository(live_user, committed):
    """An empty public repository of a new user (the pages read rows only: no push needed)."""
    from accounts.models import Namespace
    from tests.factories import RepositoryFactory

    owner = live_user()
    with committed():
        return RepositoryFactory(namespace=Namespace.objects.get(user=owner), name=unique_name("cmd")[:20],
                                 description="Commands for every client")


def repo_page(live_hub, repository, tab: str = "") -> str:
    return f"{live_hub.url}/r/{repository.namespace.name}/{repository.name}{'/' + tab if tab else ''}"


def test_the_pull_command_switches_from_docker_to_podman_and_copies_it(page: Page, live_hub, repository,
                                                                       screenshots_dir):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_hub.url)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(repo_page(live_hub, repository))
    box = page.locator(".repo-pull .clients")
    image = f"{live_hub.host}/{repository.namespace.name}/{repository.name}"
    expect(box.locator("code", has_text=f"docker pull {image}")).to_be_visible()
    expect(box.locator("code", has_text="podman pull")).to_be_hidden()
    box.locator("label", has_text="podman").click()
    podman = box.locator("code", has_text=f"podman pull --tls-verify=false {image}")
    expect(podman).to_be_visible()
    expect(box.locator("code", has_text="docker pull")).to_be_hidden()
    box.locator(".clients-panel[data-client=podman]").get_by_role("button", name="Copy").first.click()
    assert page.evaluate("navigator.clipboard.readText()") == f"podman pull --tls-verify=false {image}"
    shoot(page, screenshots_dir, "pull-switch")


def test_a_plain_http_hub_shows_each_client_how_to_trust_it(page: Page, live_hub, repository):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(repo_page(live_hub, repository))
    box = page.locator(".repo-pull .clients")
    expect(box.locator(".clients-hint").filter(has_text="/etc/docker/daemon.json")).to_be_visible()
    expect(box.locator(".clients-config", has_text=f'"insecure-registries": ["{live_hub.host}"]')).to_be_visible()
    box.locator("label", has_text="podman").click()
    expect(box.locator(".clients-config", has_text="insecure = true")).to_be_visible()


def test_the_chosen_client_is_kept_on_the_next_page(page: Page, live_hub, repository, screenshots_dir):
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_hub.url, repository.namespace.name)
    page.goto(repo_page(live_hub, repository))
    page.locator(".repo-pull .clients label", has_text="skopeo").click()
    page.goto(repo_page(live_hub, repository, "tags"))  # empty: the push help, under the pull box
    push_help = page.locator(".empty .clients")
    expect(push_help.locator("code", has_text="skopeo copy --dest-tls-verify=false")).to_be_visible()
    expect(push_help.locator("code", has_text="docker push")).to_be_hidden()
    shoot(page, screenshots_dir, "push-help")


def test_starring_updates_the_header_count_without_a_reload(page: Page, live_hub, repository, live_user):
    fan = live_user()
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_hub.url, fan.username)
    page.goto(repo_page(live_hub, repository))
    expect(page.locator("#repo-stars")).to_have_text("0 stars")
    page.locator(".repo-pull").get_by_role("button", name="Star").click()
    expect(page.locator(".repo-pull .star-button")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#repo-stars")).to_have_text("1 star")


def test_a_token_used_moments_ago_was_used_just_now(page: Page, live_hub, live_user, committed):
    from django.utils import timezone

    from accounts.models import AccessToken
    from accounts.services import access_token_create

    owner = live_user()
    with committed():
        token, _ = access_token_create(user=owner, label="ci", scope="repo:read")
        AccessToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, live_hub.url, owner.username)
    page.goto(f"{live_hub.url}/settings/tokens")
    row = page.locator("tr", has_text="ci")
    expect(row.locator("time", has_text="just now")).to_be_visible()
    expect(row).not_to_contain_text("minutes ago")


def test_the_sign_up_page_shows_the_username_rules_before_any_submit(page: Page, live_hub, screenshots_dir):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_hub.url}/accounts/signup/")
    expect(page.get_by_text("4–30 lowercase letters (a–z) and digits (0–9)")).to_be_visible()
    shoot(page, screenshots_dir, "signup")


def test_the_api_docs_sit_in_the_site_frame_and_are_linked_from_the_footer(page: Page, live_hub, screenshots_dir):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_hub.url)
    page.locator("footer").get_by_role("link", name="API").click()
    expect(page.get_by_role("heading", name="Hub API", exact=True)).to_be_visible()
    expect(page.locator(".site-header")).to_be_visible()
    expect(page.locator("#api-login-example")).to_contain_text(f"{live_hub.url}/v2/users/login")
    expect(page.get_by_text("Authorization: Bearer <token>")).to_be_visible()
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Wharf Hub API")  # the schema loaded
    expect(page.locator(".swagger-ui .opblock-summary-path", has_text="/v2/users/login").first).to_be_visible()
    for width, height in ((1280, 900), (390, 844)):  # the first screen: Swagger UI's full page is 13,000 px tall
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(screenshots_dir / f"hub-api-docs-{width}.png"))
