"""The pages no other browser test screenshots, at 1280 and 390 px (issue 24: "the screenshots of every
page at 1280 and 390 px are saved by the tests"), each checked on a phone (nothing scrolls the page
sideways, every table stacked), and the points of issue 24 a browser can see that had only server-side
tests: a webhook URL refused when saved, naming the rule (point 3), the stored secret's wording and
"just now" on the webhook pages, the collaborator icon on the dashboard, a refused form's empty password
fields saying so, the confirmation mail's greeting (point 7), the two-factor page's word on the CLI
(point 6), and commands and the digest that wrap instead of being cut on a phone, the digest copied from
a tag's page (point 4). Screenshots go to test-artifacts/screenshots/hub-*.png.

The data is made with the ORM (no push needed), so the module takes well under a minute on top of the live hub.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Locator, Page, expect

from tests.conftest import PASSWORD
from tests.e2e.test_hub_browser import log_in, shoot
from tests.e2e.test_phone_layout_browser import (
    DIGEST,
    LAPTOP,
    PHONE,
    make_repository,
    no_sideways_scroll,
    on_screen,
    stacked_tables,
)
from tests.factories import unique_name
from tests.live import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def fits_and_shoot(page: Page, folder: Path, name: str) -> None:
    """At 390 px the page does not scroll sideways and its tables are stacked; then both screenshots
    (test_hub_browser.shoot, which leaves the window at 1280 px)."""
    page.set_viewport_size(PHONE)
    expect(page.locator("main h1:visible, main h2:visible").first).to_be_visible()
    no_sideways_scroll(page)
    stacked_tables(page)
    shoot(page, folder, name)


def not_cut(locator: Locator) -> None:
    """On screen and showing all its text: nothing hidden behind a sideways scroll of its own."""
    on_screen(locator)
    widths = locator.evaluate("element => [element.scrollWidth, element.clientWidth]")
    assert widths[0] <= widths[1] + 1, f"{locator} is cut: {widths[0]} px of text in a {widths[1]} px box"


def mail_to(address: str, link: str) -> tuple[str, str]:
    """The newest mail to `address` that the live hub wrote to <DATA_DIR>/mail/ with a URL containing `link`:
    that URL and the whole message."""
    mail_dir = Path(settings.DATA_DIR) / "mail"

    def find() -> tuple[str, str] | None:
        for path in sorted(mail_dir.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
            for message in reversed(path.read_text(errors="replace").split("-" * 79)):
                if f"To: {address}" in message:
                    match = re.search(rf"https?://\S+{re.escape(link)}\S*/", message)
                    if match:
                        return match.group(0), message
        return None

    return wait_until(find, timeout=20, message=f"a mail to {address} with {link}")


def test_organization_and_profile_pages(page: Page, live_hub, live_user, committed, screenshots_dir):
    from accounts.models import Namespace
    from tests.factories import RepositoryFactory, make_organization, team

    owner = live_user()
    with committed():
        organization = make_organization(owner)
        team(organization, name="builders", description="Pushes from CI")
        RepositoryFactory(namespace=organization.namespace, name=unique_name("api")[:20],
                          description="The organization's API server")
        RepositoryFactory(namespace=Namespace.objects.get(user=owner), name=unique_name("tools")[:20],
                          description="Small tools")
    base = live_hub.url
    page.set_viewport_size(LAPTOP)
    log_in(page, base, owner.username)

    page.goto(f"{base}/orgs")
    expect(page.locator("main").get_by_text(organization.name).first).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "orgs")
    page.goto(f"{base}/orgs/new")
    expect(page.locator("#id_name")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "org-create")
    page.goto(f"{base}/orgs/{organization.name}/settings")
    expect(page.get_by_role("navigation", name="Organization").locator("[aria-current='page']")).to_have_text(
        "Settings")
    fits_and_shoot(page, screenshots_dir, "org-settings")
    page.goto(f"{base}/orgs/{organization.name}/teams/new")
    expect(page.get_by_role("heading", name="New team")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "team-create")
    page.goto(f"{base}/u/{owner.username}")
    expect(page.get_by_text("Small tools")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "profile")
    page.goto(f"{base}/u/{organization.name}")
    expect(page.get_by_text("The organization's API server")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "profile-organization")


def test_repository_pages_webhook_forms_and_the_collaborator_icon(page: Page, live_hub, live_user, committed,
                                                                  screenshots_dir):
    from django.utils import timezone

    from webhooks.models import Delivery, Webhook

    owner, friend = live_user(), live_user()
    with committed():
        repository = make_repository(owner)
    base = live_hub.url
    repo = f"{base}/r/{repository.full_name}"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.set_viewport_size(LAPTOP)
    log_in(page, base, owner.username)

    # "just now" on the webhook pages (point 7): a delivery made a moment ago.
    with committed():
        hook = Webhook.objects.get(repository=repository, name="ci")
        Delivery.objects.create(webhook=hook, repository=repository, repository_name=repository.full_name,
                                event="push", url=hook.url, body="{}", state=Delivery.State.SUCCEEDED, attempts=1,
                                response_status=200, completed_at=timezone.now(), last_attempt_at=timezone.now())
    page.goto(f"{repo}/webhooks/{hook.pk}")
    expect(page.locator("#deliveries [data-label='Sent']").first).to_have_text("just now")
    page.goto(f"{repo}/webhooks")
    expect(page.locator("tbody [data-label='Last delivery']").first).to_contain_text("just now")
    expect(page.locator("main")).not_to_contain_text("0 minutes")

    # A private address is refused when the webhook is saved, saying which rule refuses it (point 3); the
    # form keeps the input, and the empty secret field says why it is empty.
    page.goto(f"{repo}/webhooks/new")
    fits_and_shoot(page, screenshots_dir, "webhook-new")
    page.fill("#id_name", "deploy")
    page.fill("#id_url", "http://10.1.2.3/hooks/deploy")
    page.fill("#id_secret", "a-very-long-secret-1234")
    page.locator("main").get_by_role("button", name="Add webhook").click()
    expect(page.locator("#id_url_error")).to_contain_text(
        "10.1.2.3 is a private address; webhooks reach public addresses only")
    expect(page.locator("#id_url")).to_have_value("http://10.1.2.3/hooks/deploy")
    expect(page.locator("#id_secret")).to_have_value("")
    expect(page.locator(".field", has=page.locator("#id_secret")).get_by_test_id("password-again")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "webhook-new-refused")
    with committed():
        assert not Webhook.objects.filter(repository=repository, name="deploy").exists()

    # A public address is saved; the edit form then names the stored secret by its end (point 7).
    page.fill("#id_url", "https://93.184.215.14/hooks/deploy")
    page.fill("#id_secret", "a-very-long-secret-1234")
    page.locator("main").get_by_role("button", name="Add webhook").click()
    expect(page.get_by_role("heading", name=re.compile("^deploy"))).to_be_visible()
    expect(page.locator("#id_secret_helptext")).to_have_text("A secret is set (ending …1234). Leave empty to keep it.")
    expect(page.locator("main")).not_to_contain_text("Currently set")
    page.locator("main").get_by_role("link", name="Delete", exact=True).click()
    expect(page.get_by_role("heading", name="Delete the webhook “deploy”?")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "webhook-delete")

    # Collaborators: add one; the owner's dashboard shows the event with its drawn icon (no U+FF0B glyph).
    page.goto(f"{repo}/collaborators")
    page.fill("#id_username", friend.username)
    page.locator("main").get_by_role("button", name="Add collaborator").click()
    expect(page.locator("table tbody tr", has_text=friend.username)).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "collaborators")
    page.goto(base)
    event = page.locator(".activity li", has_text=f"{friend.username} became a collaborator")
    icon = event.locator(".activity-icon svg[data-icon='collaborator']")
    expect(icon).to_be_visible()
    box = icon.bounding_box()
    assert box and 12 <= box["width"] <= 24 and 12 <= box["height"] <= 24, box
    assert "\uff0b" not in page.content()

    # A tag's page on a phone: its pull command and digest wrap (nothing cut at the box's edge), and the
    # digest copies (point 4).
    page.set_viewport_size(PHONE)
    page.goto(f"{repo}/tags/v1.2.3")
    tag_box = page.locator(".clients", has=page.locator("legend", has_text="Pull command for this tag"))
    command = tag_box.locator(".clients-panel[data-client=docker] .command code")
    expect(command).to_have_text(f"docker pull {live_hub.host}/{repository.full_name}:v1.2.3")
    not_cut(command)
    not_cut(page.locator(".repo-pull .clients-panel:visible .command code").first)
    not_cut(page.locator(".repo-pull .clients-panel:visible .clients-config").first)  # daemon.json: plain HTTP
    not_cut(page.locator("#tag-digest"))
    page.get_by_role("button", name="Copy the digest").click()
    assert page.evaluate("navigator.clipboard.readText()") == DIGEST
    no_sideways_scroll(page)

    # The tag's deletion asks first, and the repository's settings (a long name in the danger button) fit.
    page.goto(f"{repo}/tags/v1.2.3/delete")
    expect(page.get_by_role("heading", name="Delete tag v1.2.3?")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "tag-delete")
    page.goto(f"{repo}/settings")
    page.set_viewport_size(PHONE)
    card = page.locator(".card-danger").bounding_box()
    button = page.locator(".card-danger").get_by_role("button", name=re.compile("^Delete")).bounding_box()
    assert card and button and button["x"] + button["width"] <= card["x"] + card["width"], (card, button)
    fits_and_shoot(page, screenshots_dir, "repository-settings")


def test_account_pages_of_allauth(page: Page, live_hub, live_user, committed, screenshots_dir):
    """Password reset (request, sent, the mail's link), sign-up refused, password change, the password
    check, email verification (sent, the mail's link), sign-out, the second-factor sign-in, recovery codes
    and deactivation: each fits a phone and is screenshot at both widths."""
    from allauth.account.models import EmailAddress
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP

    from tests.e2e.test_accounts_browser import totp_now

    base = live_hub.url
    person = live_user()
    with committed():
        EmailAddress.objects.create(user=person, email=person.email, verified=True, primary=True)
    page.set_viewport_size(LAPTOP)

    # Signed out: the password reset, all three steps.
    page.goto(f"{base}/accounts/password/reset/")
    fits_and_shoot(page, screenshots_dir, "password-reset")
    page.fill("#id_email", person.email)
    page.locator("main").get_by_role("button", name="Reset My Password").click()
    page.wait_for_url(f"{base}/accounts/password/reset/done/")
    fits_and_shoot(page, screenshots_dir, "password-reset-done")
    link, _ = mail_to(person.email, "/accounts/password/reset/key/")
    page.goto(link)
    expect(page.locator("#id_password1")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "password-reset-key")
    page.fill("#id_password1", PASSWORD)  # the same one: the sign-ins below use it
    page.fill("#id_password2", PASSWORD)
    page.locator("main").get_by_role("button", name="Change Password").click()
    page.wait_for_url(f"{base}/accounts/password/reset/key/done/")
    fits_and_shoot(page, screenshots_dir, "password-reset-key-done")

    # A refused sign-up keeps the name and address; both empty password fields say why (point 7).
    email = f"{unique_name('new')}@example.com"
    page.goto(f"{base}/accounts/signup/")
    page.fill("#id_username", "Bad Name")
    page.fill("#id_email", email)
    page.fill("#id_password1", "harbour-lantern-42")
    page.fill("#id_password2", "harbour-lantern-42")
    page.locator("main").get_by_role("button", name="Sign Up", exact=True).click()
    expect(page.locator("#id_username")).to_have_value("Bad Name")
    expect(page.locator("#id_email")).to_have_value(email)
    for field in ("#id_password1", "#id_password2"):
        expect(page.locator(field)).to_have_value("")
        expect(page.locator(".field", has=page.locator(field)).get_by_test_id("password-again")).to_have_text(
            "Type it again: a refused form never sends it back into the page.")
    page.set_viewport_size(PHONE)
    no_sideways_scroll(page)
    page.set_viewport_size(LAPTOP)

    # Signed in: the two-factor page says what the CLI needs (point 6), password change, the password check.
    log_in(page, base, person.username)
    page.goto(f"{base}/accounts/2fa/")
    expect(page.get_by_test_id("cli-needs-token")).to_contain_text("Once two-factor authentication is on")
    expect(page.get_by_test_id("cli-needs-token").get_by_role("link", name="access token")).to_be_visible()
    page.goto(f"{base}/accounts/password/change/")
    expect(page.locator("#id_oldpassword")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "password-change")
    page.goto(f"{base}/accounts/reauthenticate/")
    expect(page.locator("#id_password")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "reauthenticate")

    # A second address: its confirmation mail greets with the site's name (point 7), its link's page fits.
    second = f"second-{person.username}@mail.example.com"
    with committed():
        EmailAddress.objects.create(user=person, email=second, verified=False)
    page.goto(f"{base}/accounts/email/")
    page.locator(f"input[type=radio][value='{second}']").check()
    page.locator("main").get_by_role("button", name="Re-send Verification").click()
    link, message = mail_to(second, "/accounts/confirm-email/")
    assert "Hello from Wharf!" in message and f"Hello from {live_hub.host}" not in message, message
    page.goto(f"{base}/accounts/confirm-email/")
    expect(page.locator("main h1")).to_have_text("Verify Your Email Address")
    fits_and_shoot(page, screenshots_dir, "verification-sent")
    page.goto(link)
    expect(page.locator("main").get_by_role("button", name="Confirm")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "email-confirm")
    page.goto(f"{base}/accounts/logout/")
    expect(page.locator("main").get_by_role("button", name="Sign Out")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "logout")

    # Two-factor on (which ends the session): the code page, then what the CLI needs, recovery codes and
    # deactivation.
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    with committed():
        TOTP.activate(person, secret)
        RecoveryCodes.activate(person)
    page.context.clear_cookies()
    page.goto(f"{base}/accounts/login/")
    page.fill("#id_login", person.username)
    page.fill("#id_password", PASSWORD)
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    expect(page.locator("#id_code")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "second-factor")
    page.fill("#id_code", totp_now(secret))
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()
    page.goto(f"{base}/accounts/2fa/")
    expect(page.get_by_test_id("cli-needs-token")).to_contain_text("Two-factor authentication is on.")
    page.goto(f"{base}/accounts/2fa/recovery-codes/generate/")
    if "/reauthenticate/" in page.url:  # allauth asks for the password again first
        page.fill("#id_password", PASSWORD)
        page.locator("main").get_by_role("button", name="Confirm", exact=True).click()
        page.wait_for_url(f"{base}/accounts/2fa/recovery-codes/generate/")
    expect(page.locator("main").get_by_role("button", name="Generate")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "recovery-codes-generate")
    page.goto(f"{base}/accounts/2fa/totp/deactivate/")
    expect(page.locator("main").get_by_role("button", name="Deactivate")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "2fa-deactivate")


def test_the_server_error_page_fits(page: Page, live_hub, screenshots_dir):
    """templates/500.html (no request context, so no live URL shows it) served at a test URL with the site's
    stylesheet, as handler500 would."""
    page.set_viewport_size(LAPTOP)
    page.goto(f"{live_hub.url}/accounts/login/")
    stylesheet = page.locator("link[rel=stylesheet]").first.get_attribute("href")
    html = (TEMPLATES / "500.html").read_text().replace("{% load static %}", "").replace(
        "{% static 'css/wharf.css' %}", stylesheet)
    assert "{%" not in html
    page.route(f"{live_hub.url}/server-error-page",
               lambda route: route.fulfill(status=500, content_type="text/html", body=html))
    page.goto(f"{live_hub.url}/server-error-page")
    expect(page.get_by_role("heading", name="Something went wrong on our side")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "server-error")


def test_an_official_image_and_the_admin(page: Page, live_hub, live_user, committed, screenshots_dir):
    """An official image's pages under /_/<name> (the pull command without library/, the Official badge, listed
    first on explore), then Django's admin for a staff account: both at both widths."""
    from accounts.models import Namespace

    staff = live_user(is_staff=True, is_superuser=True)
    with committed():
        # The migration makes it; a transactional test earlier in the run may have flushed it.
        library, _ = Namespace.objects.get_or_create(name="library", defaults={"kind": Namespace.Kind.LIBRARY})
        image = make_repository(staff, namespace=library)
    base, host = live_hub.url, live_hub.host
    page.set_viewport_size(LAPTOP)
    page.goto(f"{base}/r/library/{image.name}")
    page.wait_for_url(f"{base}/_/{image.name}")  # the long name redirects to the official one
    expect(page.locator("main h1")).to_contain_text(image.name)
    expect(page.locator("main").get_by_text("Official", exact=True).first).to_be_visible()
    expect(page.locator("main .command code").first).to_have_text(f"docker pull {host}/{image.name}")
    fits_and_shoot(page, screenshots_dir, "official-overview")
    page.goto(f"{base}/_/{image.name}/tags")
    expect(page.locator("main").get_by_role("link", name="v1.2.3")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "official-tags")
    page.goto(f"{base}/explore")
    official = page.locator("main section", has=page.locator("#ex-official"))
    expect(official.get_by_role("link", name=image.name)).to_be_visible()

    log_in(page, base, staff.username)
    page.goto(f"{base}/admin/")
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    expect(page.locator("#site-name")).to_contain_text("administration")
    assert "Django" not in page.title()
    shoot(page, screenshots_dir, "admin")
    page.goto(f"{base}/admin/accounts/user/?q={staff.username}")
    expect(page.locator("#result_list").get_by_role("link", name=staff.username)).to_be_visible()
    shoot(page, screenshots_dir, "admin-users")


def test_an_inactive_account_is_told_so(page: Page, live_hub, live_user, screenshots_dir):
    """allauth's inactive-account page, reached by signing in to a deactivated account."""
    person = live_user(is_active=False)
    page.set_viewport_size(LAPTOP)
    page.goto(f"{live_hub.url}/accounts/login/")
    page.fill("#id_login", person.username)
    page.fill("#id_password", PASSWORD)
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    page.wait_for_url(f"{live_hub.url}/accounts/inactive/")
    expect(page.locator("main h1")).to_have_text("Account Inactive")
    fits_and_shoot(page, screenshots_dir, "account-inactive")


def test_sign_up_closed(page: Page, artifacts_dir, screenshots_dir):
    """A hub started with HUB_SIGNUP_OPEN=0: the sign-up page says so, and the header offers no Sign up."""
    from tests.live import start_hub

    hub = start_hub(artifacts_dir, with_worker=False, HUB_SIGNUP_OPEN="0")
    try:
        page.set_viewport_size(LAPTOP)
        page.goto(f"{hub.url}/accounts/signup/")
        expect(page.locator("main h1")).to_have_text("Sign Up Closed")
        expect(page.locator("header").get_by_role("link", name="Sign up")).to_have_count(0)
        fits_and_shoot(page, screenshots_dir, "signup-closed")
        page.goto(f"{hub.url}/accounts/login/")
        expect(page.locator("main")).not_to_contain_text("sign up")
    finally:
        hub.stop()


def test_the_status_page_from_the_footer(page: Page, live_hub, screenshots_dir):
    page.set_viewport_size(LAPTOP)
    page.goto(f"{live_hub.url}/explore")
    page.locator("footer").get_by_role("link", name="Status").click()
    page.wait_for_url(f"{live_hub.url}/status")
    expect(page.get_by_test_id("status-list").locator(".badge-success")).to_have_count(5)
    fits_and_shoot(page, screenshots_dir, "status")


def test_a_message_naming_a_long_repository_wraps_on_a_phone(page: Page, live_hub):
    """A flash message such as "x can now pull and push x/y." holds one long unbreakable word (a fresh-clone
    run's collaborators page was 391 px wide from it, with names of the tests' own length)."""
    page.set_viewport_size(PHONE)
    page.goto(f"{live_hub.url}/explore")
    page.evaluate("""() => {
        const list = document.createElement('ul'); list.className = 'messages';
        list.innerHTML = '<li class="alert alert-success">user040ede82aaa3 can now pull and push '
                       + 'user040ede82aaa3/phoned2dd59256358WWWWWWWWWW.</li>';
        document.querySelector('main').prepend(list);
    }""")
    no_sideways_scroll(page)
