"""Every page usable on a 390 px phone (issue 24 points 1, 2, 4), in a real browser: tab strips wrap
with every tab and the current one on screen, tables become stacked rows with every column shown,
charts open on the latest day, the Webhooks tab sits inside the repository page, and a tag's pull
command and digest copy from the tag list. Screenshots at 1280 and 390 px go to
test-artifacts/screenshots/hub-*.png.

The data is made with the ORM (no push needed: the pages only read rows), so the module takes a
few seconds on top of the live hub.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.test_hub_browser import log_in, shoot
from tests.factories import unique_name

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 900}
TAG_COLUMNS = ("Tag", "Digest", "Platforms", "Size", "Pushed", "Last pulled")
DIGEST = "sha256:" + "5e" * 32


def on_screen(locator: Locator, width: int = PHONE["width"]) -> None:
    """Visible, and not cut off the left or right edge of the window (nothing hidden sideways)."""
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None and box["x"] >= -0.5 and box["x"] + box["width"] <= width + 0.5, (
        f"{locator} spans {box} in a {width} px window")


def make_repository(owner, namespace=None):
    """A repository (in `owner`'s namespace unless another is given) with a multi-platform tag, a month of
    daily pulls and a webhook with a delivery."""
    from django.utils import timezone

    from accounts.models import Namespace
    from registry.models import Manifest, Tag
    from repositories.models import PullStat
    from tests.factories import RepositoryFactory
    from webhooks.models import Delivery, Webhook

    now = timezone.now()
    repository = RepositoryFactory(namespace=namespace or Namespace.objects.get(user=owner),
                                   name=unique_name("phone")[:20],
                                   description="Small images for the phone layout", pull_count=465,
                                   last_pushed_at=now)
    manifest = Manifest.objects.create(
        repository=repository, digest=DIGEST, media_type="application/vnd.oci.image.index.v1+json", content=b"{}",
        size=2, total_size=12_400_000, pushed_by=owner,
        platforms=[{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64", "variant": "v8"}])
    Tag.objects.create(repository=repository, name="v1.2.3", manifest=manifest, pushed_by=owner,
                       pushed_at=now - dt.timedelta(days=3), last_pulled_at=now - dt.timedelta(hours=2))
    today = now.date()
    PullStat.objects.bulk_create(PullStat(repository=repository, day=today - dt.timedelta(days=age), count=30 - age)
                                 for age in range(30))
    hook = Webhook.objects.create(repository=repository, name="ci", url="https://ci.example.com/hooks/wharf",
                                  events=["push"], created_by=owner)
    Delivery.objects.create(webhook=hook, repository=repository, repository_name=repository.full_name, event="push",
                            url=hook.url, body='{"push_data": {"tag": "v1.2.3"}}', state=Delivery.State.SUCCEEDED,
                            attempts=1, request_headers={"Content-Type": "application/json", "X-Hub-Event": "push"},
                            response_status=200, response_headers={"Content-Type": "text/plain"}, response_body="ok",
                            duration_ms=42, completed_at=now, last_attempt_at=now)
    return repository


@pytest.fixture
def owner_and_repository(live_user, committed):
    owner = live_user()
    with committed():
        return owner, make_repository(owner)


def test_repository_tabs_tags_and_chart_on_a_phone(page: Page, live_hub, owner_and_repository, screenshots_dir):
    owner, repository = owner_and_repository
    base = f"{live_hub.url}/r/{repository.full_name}"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_hub.url)
    page.set_viewport_size(LAPTOP)
    log_in(page, live_hub.url, owner.username)
    page.set_viewport_size(PHONE)

    # Every tab of the strip is on screen, whichever is current (the strip wraps).
    tabs = {"Overview": "", "Tags": "/tags", "Statistics": "/stats", "Collaborators": "/collaborators",
            "Webhooks": "/webhooks", "Settings": "/settings", "Builds": "/builds"}
    for name, path in tabs.items():
        page.goto(base + path)
        strip = page.get_by_role("navigation", name="Repository")
        expect(strip.locator("[aria-current='page']")).to_have_text(name)
        links = strip.get_by_role("link")
        expect(links).to_have_count(len(tabs))
        for index in range(len(tabs)):
            on_screen(links.nth(index))

    # The tags table: stacked rows, every column of the row on screen under its column's name.
    page.goto(f"{base}/tags")
    headers = [text.strip() for text in page.locator("table.tags-table thead th").all_text_contents()]
    assert headers[:len(TAG_COLUMNS)] == list(TAG_COLUMNS)
    row = page.locator("table.tags-table tbody tr", has_text="v1.2.3")
    for column in TAG_COLUMNS:
        on_screen(row.locator(f"[data-label='{column}']"))
    expect(row.locator("[data-label='Platforms'] .chip")).to_have_text(["linux/amd64", "linux/arm64/v8"])
    expect(row.locator("[data-label='Size']")).to_have_text("12.4 MB")
    on_screen(row.get_by_role("link", name="Delete tag v1.2.3"))
    expect(row.locator("td.actions")).not_to_have_attribute("data-label", re.compile(".*"))  # no "Actions" label

    # The tag's pull command (for the client chosen above the table: docker first, one line per row,
    # on screen) and its full digest copy from the list.
    image = f"{live_hub.host}/{repository.full_name}:v1.2.3"
    command = f"docker pull {image}"
    expect(row.locator(".tag-pull:visible code")).to_have_text([command])
    on_screen(row.locator(".tag-pull:visible"))
    row.get_by_role("button", name="Copy the docker pull command for v1.2.3").click()
    expect(row.get_by_role("button", name="Copy the docker pull command for v1.2.3")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == command
    row.get_by_role("button", name="Copy the digest of v1.2.3").click()
    assert page.evaluate("navigator.clipboard.readText()") == DIGEST
    shoot(page, screenshots_dir, "phone-tags")

    # podman on this plain-HTTP hub: --tls-verify=false in the row, the hint folded above the table.
    page.set_viewport_size(PHONE)
    switch = page.locator(".client-switched .clients-switch-only")
    switch.locator("label", has_text="podman").click()
    podman = f"podman pull --tls-verify=false {image}"
    expect(row.locator(".tag-pull:visible code")).to_have_text([podman])
    on_screen(row.locator(".tag-pull:visible"))
    row.get_by_role("button", name="Copy the podman pull command for v1.2.3").click()
    assert page.evaluate("navigator.clipboard.readText()") == podman
    hint = switch.locator(".clients-panel[data-client=podman] details")
    expect(hint.locator(".clients-config")).to_be_hidden()  # folded: the pull box above says it too
    hint.locator("summary").click()
    expect(hint.locator(".clients-config")).to_contain_text("insecure = true")
    on_screen(hint.locator(".clients-config"))
    # The pull box follows the same choice (one switch for the page), and skopeo copies to an archive.
    expect(page.locator(".repo-pull .clients code", has_text="podman pull --tls-verify=false")).to_be_visible()
    switch.locator("label", has_text="skopeo").click()
    expect(row.locator(".tag-pull:visible code")).to_have_text(
        [f"skopeo copy --src-tls-verify=false docker://{image} oci-archive:{repository.name}-v1.2.3.tar"])
    on_screen(row.locator(".tag-pull:visible"))
    switch.locator("label", has_text="podman").click()
    shoot(page, screenshots_dir, "phone-tags-podman")
    switch.locator("label", has_text="docker").click()

    # The chart opens on the latest day on a phone (its oldest days are the ones scrolled away), and
    # fits whole on a laptop.
    page.set_viewport_size(PHONE)
    page.goto(f"{base}/stats")
    bars = page.locator(".chart-card").first.locator("rect.chart-bar")
    expect(bars).to_have_count(30)
    expect(bars.last.locator("title")).to_have_text(re.compile(r": 30$"))
    on_screen(bars.last)
    expect(page.locator(".chart-hint").first).to_be_visible()
    # The y axis stays in view wherever the chart is scrolled: its labels are on screen and on top.
    card = page.locator(".chart-card").first
    scroller = card.locator(".chart-scroll")
    assert scroller.evaluate("box => box.scrollWidth > box.clientWidth + 50")  # it does scroll on a phone
    card.evaluate("card => card.scrollIntoView({block: 'start'})")  # the page only: the chart box keeps its place
    for position in ("end", "middle", "start"):
        scroller.evaluate("""(box, where) => {
            const far = box.scrollWidth - box.clientWidth;  // right-to-left box: 0 is the right end
            box.scrollLeft = where === "end" ? 0 : where === "middle" ? -far / 2 : -far; }""", position)
        for label in ("0", "50", "Pulls"):
            text = card.locator(".chart-y-axis text", has_text=re.compile(f"^{label}$"))
            on_screen(text)
            box = text.bounding_box()
            assert box and box["x"] >= scroller.bounding_box()["x"] - 0.5
            topmost = page.evaluate("([x, y]) => document.elementFromPoint(x, y).closest('.chart-y-axis') !== null",
                                    [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2])
            assert topmost, f"the y label {label!r} is covered when scrolled to the {position}"
    card.screenshot(path=str(screenshots_dir / "hub-phone-stats-axis-card-390.png"))  # on the oldest days
    shoot(page, screenshots_dir, "phone-stats-axis")
    page.set_viewport_size(PHONE)
    page.reload()
    on_screen(bars.last)  # the latest day again after a reload
    page.set_viewport_size(LAPTOP)
    page.reload()
    on_screen(bars.first, LAPTOP["width"])
    on_screen(bars.last, LAPTOP["width"])
    expect(page.locator(".chart-hint").first).to_be_hidden()
    expect(card.locator(".chart-y-axis")).to_be_hidden()  # the chart fits: its own axis is enough
    shoot(page, screenshots_dir, "phone-stats")


def test_the_webhooks_tab_is_a_repository_page(page: Page, live_hub, owner_and_repository, screenshots_dir):
    owner, repository = owner_and_repository
    page.set_viewport_size(LAPTOP)
    log_in(page, live_hub.url, owner.username)

    def in_the_repository_frame() -> None:
        expect(page.get_by_role("heading", level=1)).to_contain_text(repository.name)
        expect(page.get_by_role("heading", name="Pull this image")).to_be_visible()
        expect(page.get_by_role("navigation", name="Repository").locator("[aria-current='page']")).to_have_text(
            "Webhooks")

    def spaced(upper: Locator, lower: Locator) -> None:
        above, below = upper.bounding_box(), lower.bounding_box()
        assert above and below and below["y"] >= above["y"] + above["height"] + 16, (above, below)

    page.goto(f"{live_hub.url}/r/{repository.full_name}/webhooks")
    in_the_repository_frame()
    spaced(page.locator(".table-wrap").first, page.locator("section.card", has_text="Verifying deliveries"))
    shoot(page, screenshots_dir, "webhooks")
    page.set_viewport_size(PHONE)
    for column in ("Name", "URL", "Events", "Status", "Last delivery"):
        on_screen(page.locator(f"table tbody tr [data-label='{column}']").first)

    page.set_viewport_size(LAPTOP)
    page.get_by_role("link", name="ci", exact=True).click()
    in_the_repository_frame()
    expect(page.get_by_role("navigation", name="Breadcrumb")).to_contain_text("Webhooks › ci")
    spaced(page.locator("#deliveries .table-wrap"), page.locator("section.card", has_text="Settings"))
    shoot(page, screenshots_dir, "webhook")
    page.set_viewport_size(PHONE)
    for column in ("Result", "Event", "Delivery", "Attempts", "Duration", "Sent"):
        on_screen(page.locator(f"#deliveries tbody tr [data-label='{column}']").first)

    page.set_viewport_size(LAPTOP)
    page.locator("#deliveries tbody tr [data-label='Delivery'] a").first.click()
    in_the_repository_frame()
    shoot(page, screenshots_dir, "webhook-delivery")


def test_account_settings_tokens_and_organization_on_a_phone(page: Page, live_hub, live_user, committed,
                                                            screenshots_dir):
    from accounts.services import access_token_create
    from tests.factories import RepositoryFactory, make_organization, team

    owner = live_user()
    with committed():
        access_token_create(user=owner, label="laptop", scope="repo:write")
        organization = make_organization(owner)
        team(organization, name="builders", description="Pushes from CI")
        org_repository = RepositoryFactory(namespace=organization.namespace, name=unique_name("svc")[:20])
    page.set_viewport_size(LAPTOP)
    log_in(page, live_hub.url, owner.username)
    page.set_viewport_size(PHONE)

    # The settings menu wraps: every entry on screen, the current one too, on every settings page.
    for path, current in (("/settings", "Profile"), ("/settings/tokens", "Access tokens"),
                          ("/settings/delete", "Delete account")):
        page.goto(live_hub.url + path)
        menu = page.get_by_role("navigation", name="Account settings")
        expect(menu.locator("[aria-current='page']")).to_have_text(current)
        links = menu.get_by_role("link")
        for index in range(links.count()):
            on_screen(links.nth(index))
        for name in ("Two-factor authentication", "Access tokens", "Delete account"):
            on_screen(menu.get_by_role("link", name=name))
        if current == "Access tokens":
            row = page.locator("table tbody tr", has_text="laptop")
            for column in ("Description", "Scope", "Status", "Created", "Last used", "Expires"):
                on_screen(row.locator(f"[data-label='{column}']"))
            on_screen(row.get_by_role("link", name=re.compile("Revoke token laptop")))
            shoot(page, screenshots_dir, "phone-tokens")
            page.set_viewport_size(PHONE)
        if current == "Delete account":
            card = page.locator(".card-danger").bounding_box()
            button = page.get_by_role("button", name="Delete my account").bounding_box()
            assert card and button and button["x"] + button["width"] <= card["x"] + card["width"]

    # The organization's tabs and teams table.
    page.goto(f"{live_hub.url}/orgs/{organization.name}")
    strip = page.get_by_role("navigation", name="Organization")
    for name in ("Members & teams", "Activity", "Settings"):
        on_screen(strip.get_by_role("link", name=name))
    row = page.locator("table tbody tr", has_text="builders")
    for column in ("Team", "Description", "Members", "Repository creation"):
        on_screen(row.locator(f"[data-label='{column}']"))
    shoot(page, screenshots_dir, "phone-organization")

    # The permissions page no longer points "on the right" at a form that sits below on a phone.
    page.set_viewport_size(PHONE)
    page.goto(f"{live_hub.url}/r/{org_repository.full_name}/permissions")
    expect(page.get_by_text("Only the owners team has access.")).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("on the right")
    on_screen(page.get_by_role("heading", name="Grant access"))
    shoot(page, screenshots_dir, "phone-permissions")


def no_sideways_scroll(page: Page) -> None:
    """Nothing on the page is wider than the window (a phone would scroll the whole page sideways)."""
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] > widths[1]:  # name the culprits: the innermost elements that reach past the window's edge
        culprits = page.evaluate("""width => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > width && ![...e.children].some(
                c => c.getBoundingClientRect().right > width))
            .slice(0, 5).map(e => `${e.tagName.toLowerCase()}.${e.className}: ${e.getBoundingClientRect().right}`)""",
                                 widths[1])
        raise AssertionError(f"{page.url} is {widths[0]} px wide in a {widths[1]} px window: {culprits}")


def stacked_tables(page: Page) -> int:
    """Every table in the page is stacked on a phone, each cell on screen under its column's name."""
    tables = page.locator("main table")
    for index in range(tables.count()):
        table = tables.nth(index)
        expect(table).to_have_class(re.compile(r"\btable-stack\b"))
        cells = table.locator("tbody td")
        for cell in range(cells.count()):
            if cells.nth(cell).inner_text().strip():
                on_screen(cells.nth(cell))
    return tables.count()


def test_the_allauth_pages_fit_a_phone(page: Page, live_hub, live_user, committed, screenshots_dir):
    """Sign-in, sign-up, password, email and two-factor pages (allauth's, in the site's frame) at 390 px:
    no page scrolls sideways and every table is stacked (issue 24 point 1)."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP

    from tests.conftest import PASSWORD
    from tests.e2e.test_accounts_browser import totp_now

    def visit(path: str) -> None:
        """The page itself: through allauth's password check when it asks again (that page fits too)."""
        page.goto(live_hub.url + path)
        if "/reauthenticate/" in page.url:
            no_sideways_scroll(page)
            page.fill("#id_password", PASSWORD)
            page.locator("main").get_by_role("button", name="Confirm", exact=True).click()
            page.wait_for_url(live_hub.url + path)
        assert page.url == live_hub.url + path  # not a sign-in page it sent us to

    page.set_viewport_size(PHONE)
    for path in ("/accounts/login/", "/accounts/signup/", "/accounts/password/reset/"):
        page.goto(live_hub.url + path)
        expect(page.locator("main h1")).to_be_visible()
        no_sideways_scroll(page)

    person = live_user()
    with committed():
        EmailAddress.objects.get_or_create(user=person, email=person.email,
                                           defaults={"verified": True, "primary": True})
    page.set_viewport_size(LAPTOP)
    log_in(page, live_hub.url, person.username)
    page.set_viewport_size(PHONE)
    # (an unverified address keeps allauth from offering two-factor activation: added after those pages)
    for path in ("/accounts/2fa/", "/accounts/2fa/totp/activate/", "/accounts/password/change/", "/accounts/email/"):
        if path == "/accounts/email/":
            with committed():
                EmailAddress.objects.create(user=person, email=f"second-{person.username}@mail.example.com",
                                            verified=False)
        visit(path)
        expect(page.locator("main h1")).to_be_visible()
        no_sideways_scroll(page)
        stacked_tables(page)
        if path == "/accounts/email/":
            on_screen(page.get_by_text(f"second-{person.username}@mail.example.com"))
            on_screen(page.get_by_role("button", name="Re-send Verification"))
            buttons = page.get_by_role("button", name="Remove").bounding_box()
            below = page.get_by_role("heading", name="Add Email Address").bounding_box()
            assert buttons and below and below["y"] >= buttons["y"] + buttons["height"] + 24, (buttons, below)
            shoot(page, screenshots_dir, "phone-email")
            page.set_viewport_size(PHONE)

    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    with committed():  # two-factor on (which ends the session): the recovery codes and deactivation pages
        TOTP.activate(person, secret)
        RecoveryCodes.activate(person)
    page.context.clear_cookies()
    page.goto(f"{live_hub.url}/accounts/login/")
    page.fill("#id_login", person.username)
    page.fill("#id_password", PASSWORD)
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    page.fill("#id_code", totp_now(secret))
    no_sideways_scroll(page)
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()
    for path in ("/accounts/2fa/", "/accounts/2fa/recovery-codes/", "/accounts/2fa/totp/deactivate/"):
        visit(path)
        expect(page.locator("main h1")).to_be_visible()
        no_sideways_scroll(page)
        stacked_tables(page)
        if path == "/accounts/2fa/recovery-codes/":
            shoot(page, screenshots_dir, "phone-recovery-codes")
            page.set_viewport_size(PHONE)


def test_an_allauth_table_is_stacked_with_its_column_names(page: Page, live_hub):
    """No allauth page shows a table with the current settings (security keys and the sessions list are
    off), but one would: allauth's own table elements, rendered through the site's element templates
    with the site's CSS and JavaScript, stack at 390 px with each cell under its column's name."""
    from django.template import Context, Origin, Template, engines

    table = Template(
        "{% load allauth %}{% element table %}{% element thead %}{% element tr %}"
        "{% element th %}Key{% endelement %}{% element th %}Usage{% endelement %}{% element th %}{% endelement %}"
        "{% endelement %}{% endelement %}{% element tbody %}{% element tr %}"
        "{% element td %}YubiKey 5 NFC{% endelement %}{% element td %}Added on 2026-12-01. Last used 2 hours ago"
        "{% endelement %}{% element td align='right' %}<a href='#'>Remove</a>{% endelement %}"
        "{% endelement %}{% endelement %}{% endelement %}",
        origin=Origin("allauth-table", template_name="tests/allauth-table.html"),  # allauth's element tag reads it
        engine=engines["django"].engine).render(Context())
    page.set_viewport_size(PHONE)
    page.goto(f"{live_hub.url}/accounts/login/")  # the site's origin, stylesheet and script
    page.set_content(
        f'<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{live_hub.url}/static/css/wharf.css">'
        f'<script src="{live_hub.url}/static/js/wharf.js"></script></head>'
        f'<body><main class="container">{table}</main></body></html>')
    expect(page.locator("main table")).to_have_class(re.compile(r"\btable-stack\b"))
    expect(page.locator("main thead")).to_have_css("position", "absolute")  # the header row is hidden
    row = page.locator("main tbody tr")
    expect(row.locator("td")).to_have_count(3)
    for label, text in (("Key", "YubiKey 5 NFC"), ("Usage", "Last used 2 hours ago")):
        cell = row.locator(f"td[data-label='{label}']")
        expect(cell).to_contain_text(text)
        on_screen(cell)
        assert cell.evaluate("cell => getComputedStyle(cell, '::before').content") == f'"{label}"'
    on_screen(row.get_by_role("link", name="Remove"))
    no_sideways_scroll(page)
