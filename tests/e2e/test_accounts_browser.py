"""A person's whole account life in a real browser against the real gunicorn.

Sign up, confirm the email (from the file mail backend), log in, turn on 2FA, create an organization
and a team, create and revoke a token, delete the account. Screenshots of the main pages at 1280 px
and 390 px go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value, yield_hotp_counters_from_time
from django.conf import settings
from playwright.sync_api import Page, expect

from accounts.models import AccessToken, Namespace, Organization, Team, User
from tests.factories import unique_name
from tests.live import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PASSWORD = "harbour-lantern-42"
WIDTHS = ((1280, 900), (390, 844))


def shoot(page: Page, folder: Path, name: str) -> None:
    """Full-page screenshots at laptop and phone widths, then back to the laptop width."""
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0][0], "height": WIDTHS[0][1]})


def confirmation_link(email: str) -> str:
    """The confirmation URL from the mail the live server wrote to <DATA_DIR>/mail/."""
    mail_dir = Path(settings.DATA_DIR) / "mail"

    def find() -> str | None:
        for path in sorted(mail_dir.glob("*.log"), key=lambda p: p.stat().st_mtime, reverse=True):
            text = path.read_text(errors="replace")
            for message in text.split("-" * 79):
                if f"To: {email}" in message:
                    match = re.search(r"https?://\S+/accounts/confirm-email/\S+/", message)
                    if match:
                        return match.group(0)
        return None

    return wait_until(find, timeout=20, message=f"a confirmation mail to {email}")


def totp_now(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, next(iter(yield_hotp_counters_from_time()))))


def submit(page: Page, name: str) -> None:
    page.locator("main").get_by_role("button", name=name, exact=True).click()


def test_account_lifecycle_in_browser(page: Page, live_hub, committed, screenshots_dir):
    base = live_hub.url
    username = unique_name("e2e")[:20]
    email = f"{username}@example.com"
    page.set_viewport_size({"width": 1280, "height": 900})

    # Home, signed out.
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Your own container hub")).to_be_visible()
    shoot(page, screenshots_dir, "home")

    # Sign up: first with mistakes (errors next to fields, input kept), then properly.
    page.get_by_role("link", name="Sign up").click()
    page.fill("#id_username", "Library")
    page.fill("#id_email", email)
    page.fill("#id_password1", "password")
    page.fill("#id_password2", "password")
    submit(page, "Sign Up")
    expect(page.locator("#id_username_error")).to_have_text("Use lowercase letters only.")
    expect(page.locator("#id_email")).to_have_value(email)
    shoot(page, screenshots_dir, "signup-errors")
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    shoot(page, screenshots_dir, "signup")
    submit(page, "Sign Up")
    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()
    shoot(page, screenshots_dir, "dashboard")

    # Confirm the email address with the link from the mail file.
    page.goto(confirmation_link(email))
    submit(page, "Confirm")
    expect(page.locator(".messages")).to_contain_text(f"You have confirmed {email}")

    # Sign out from the user menu (keyboard-usable <details>), then sign in by username.
    page.get_by_label(f"Account menu for {username}").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Sign in").click()
    shoot(page, screenshots_dir, "login")
    page.fill("#id_login", username)
    page.fill("#id_password", PASSWORD)
    submit(page, "Sign In")
    expect(page.get_by_role("heading", name=re.compile("Welcome"))).to_be_visible()

    # Settings.
    page.goto(f"{base}/settings")
    page.fill("#id_full_name", "E2E Person")
    submit(page, "Save profile")
    expect(page.locator(".messages")).to_contain_text("Your profile has been saved.")
    shoot(page, screenshots_dir, "settings")

    # Two-factor authentication: allauth asks for the password again, then shows the secret.
    page.goto(f"{base}/accounts/2fa/")
    shoot(page, screenshots_dir, "2fa")
    page.goto(f"{base}/accounts/2fa/totp/activate/")
    if "/reauthenticate/" in page.url:
        page.fill("#id_password", PASSWORD)
        submit(page, "Confirm")
    secret = page.locator("#authenticator_secret").input_value()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    shoot(page, screenshots_dir, "2fa-activate")
    page.fill("#id_code", totp_now(secret))
    submit(page, "Activate")
    expect(page.locator(".messages")).to_contain_text("Authenticator app activated.")
    with committed():
        assert Authenticator.objects.filter(user__username=username, type=Authenticator.Type.TOTP).exists()

    # Organization and team.
    org_name = unique_name("org")[:20]
    page.goto(f"{base}/orgs")
    page.locator("main").get_by_role("link", name="Create organization").first.click()
    page.fill("#id_name", org_name)
    page.fill("#id_full_name", "E2E Org")
    submit(page, "Create organization")
    expect(page.locator(".messages")).to_contain_text(f"Organization “{org_name}” created.")
    page.get_by_role("link", name="New team").click()
    page.fill("#id_name", "builders")
    page.check("#id_can_create_repositories")
    submit(page, "Create team")
    expect(page.get_by_role("heading", name="Team builders")).to_be_visible()
    shoot(page, screenshots_dir, "team")
    page.get_by_role("link", name="Members & teams").click()
    shoot(page, screenshots_dir, "organization")
    with committed():
        team = Team.objects.get(organization__name=org_name, name="builders")
        assert team.can_create_repositories

    # Token: created, secret shown once, then revoked.
    page.goto(f"{base}/settings/tokens")
    expect(page.get_by_text("Two-factor authentication is on.")).to_be_visible()
    page.fill("#id_label", "laptop")
    page.check("input[value='repo:write']")
    submit(page, "Generate token")
    token_secret = page.get_by_test_id("token-secret").inner_text().strip()
    assert token_secret.startswith(AccessToken.PREFIX)
    shoot(page, screenshots_dir, "tokens")
    with committed():
        token = AccessToken.objects.get(user__username=username)
        assert token.token_hash == AccessToken.hash_secret(token_secret)
    page.reload()  # the creation redirected to a GET: a reload neither shows the value again nor makes a token
    assert token_secret not in page.content()
    with committed():
        assert AccessToken.objects.filter(user__username=username).count() == 1
    page.get_by_role("link", name="Revoke token laptop…").click()  # revoking asks first (issue 24)
    page.get_by_role("button", name="Revoke “laptop”").click()
    expect(page.locator(".messages")).to_contain_text("has been revoked")
    expect(page.locator("table")).to_contain_text("Revoked")
    with committed():
        assert AccessToken.objects.get(pk=token.pk).revoked_at is not None

    # Delete the organization (its last owner cannot leave it behind), then the account.
    page.goto(f"{base}/orgs/{org_name}/settings")
    page.fill("#id_confirm", org_name)
    submit(page, "Delete organization")
    expect(page.locator(".messages")).to_contain_text("has been deleted")
    page.goto(f"{base}/settings/delete")
    page.fill("#id_confirm", username)
    shoot(page, screenshots_dir, "account-delete")
    submit(page, "Delete my account")
    expect(page.locator(".messages")).to_contain_text(f"The account “{username}” has been deleted.")
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    with committed():
        assert not User.objects.filter(username=username).exists()
        assert Namespace.objects.get(name=username).is_tombstone
        assert not Organization.objects.filter(name=org_name).exists()

    # Not found page, for the record.
    page.goto(f"{base}/u/{username}")
    expect(page.get_by_role("heading", name="We couldn’t find that page")).to_be_visible()
    shoot(page, screenshots_dir, "not-found")
