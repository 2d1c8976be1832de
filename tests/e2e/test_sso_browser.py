"""Single sign-on end to end: a real OpenID provider (allauth.idp.oidc, tests/e2e/idp/) in its own gunicorn on
loopback with its own SQLite database, and a live Wharf whose HUB_OIDC_PROVIDERS names it. Chromium signs in
through it: a new account picks its namespace, an existing account is linked through its confirmed email, an
email outside the provider's domains and a staff account are refused. Screenshots at 1280 and 390 px go to
test-artifacts/screenshots/hub-sso-*.png."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from urllib.parse import quote, unquote

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.e2e.test_accounts_browser import totp_now
from tests.e2e.test_hub_browser import shoot
from tests.live import BIN, REPO_ROOT, GiveUp, free_port, log_tail, start_hub, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

IDP_PASSWORD = "idp-password-1"
CLIENT_ID, CLIENT_SECRET = "wharf-test", "client-secret-for-the-test"
RUN = uuid.uuid4().hex[:6]
PEOPLE = {  # the provider's people: username → email (all verified there)
    "newbie": f"newbie{RUN}@acme.test",
    "linked": f"linked{RUN}@acme.test",
    "outsider": f"outsider{RUN}@evil.test",
    "boss": f"boss{RUN}@acme.test",
    "guarded": f"guarded{RUN}@acme.test",
}


class Provider:
    def __init__(self, port: int, env: dict, log_path):
        self.port, self.env, self.log_path = port, env, log_path
        self.url = f"http://127.0.0.1:{port}"

    def provision(self, spec: dict) -> None:
        subprocess.run([sys.executable, "-m", "tests.e2e.idp.provision", json.dumps(spec)], cwd=REPO_ROOT,
                       env=self.env, check=True, timeout=120)


@pytest.fixture(scope="module")
def provider(tmp_path_factory, artifacts_dir):
    folder = tmp_path_factory.mktemp("idp")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO_ROOT),
           "DJANGO_SETTINGS_MODULE": "tests.e2e.idp.settings", "WHARF_TEST_IDP_DB": str(folder / "idp.sqlite3"),
           "WHARF_TEST_IDP_KEY": str(folder / "key.pem")}
    idp = Provider(port, env, artifacts_dir / f"idp-{port}.log")
    idp.provision({"users": [{"username": name, "email": email, "password": IDP_PASSWORD}
                             for name, email in PEOPLE.items()]})
    log = open(idp.log_path, "ab")  # noqa: SIM115 - handed to the child process
    # Its own folder as the working directory: gunicorn would read Wharf's gunicorn.conf.py from the repo root.
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "tests.e2e.idp.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--threads", "4", "--access-logfile", "-"],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)

    def answers() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"the OpenID provider exited:\n{log_tail(idp.log_path)}")
        return requests.get(f"{idp.url}/.well-known/openid-configuration", timeout=2).status_code == 200

    try:
        wait_until(answers, timeout=60, message="the OpenID provider")
        yield idp
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="module")
def sso_hub(provider, django_db_setup, django_db_blocker, artifacts_dir):
    """A live Wharf (no worker: nothing here needs one) whose HUB_OIDC_PROVIDERS names the provider."""
    providers = [{"id": "acme", "name": "Acme SSO", "issuer": provider.url, "client_id": CLIENT_ID,
                  "secret": CLIENT_SECRET, "domains": ["acme.test"]}]
    hub = start_hub(artifacts_dir, with_worker=False, HUB_OIDC_PROVIDERS=json.dumps(providers))
    provider.provision({"client": {"id": CLIENT_ID, "secret": CLIENT_SECRET,
                                   "redirect_uri": f"{hub.url}/accounts/oidc/acme/login/callback/"}})
    yield hub
    hub.stop()


def sign_in_at_the_provider(page: Page, hub, provider: Provider, username: str, *, screenshots_dir=None) -> None:
    """From Wharf's login page, through the provider's own login, back to Wharf."""
    page.goto(f"{hub.url}/accounts/login/")
    button = page.get_by_role("button", name="Sign in with Acme SSO")
    expect(button).to_be_visible()
    if screenshots_dir is not None:
        shoot(page, screenshots_dir, "sso-login")
    button.click()
    page.wait_for_url(lambda url: url.startswith(provider.url))  # the provider's own sign-in page
    page.fill("#id_login", username)
    page.fill("#id_password", IDP_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: url.startswith(hub.url))


@pytest.fixture
def sso_page(page: Page):
    page.set_viewport_size({"width": 1280, "height": 900})
    return page


def test_a_new_person_signs_in_through_the_provider_and_picks_a_namespace(sso_page, sso_hub, provider, committed,
                                                                         screenshots_dir):
    from allauth.socialaccount.models import SocialAccount

    from accounts.models import User

    page = sso_page
    sign_in_at_the_provider(page, sso_hub, provider, "newbie", screenshots_dir=screenshots_dir)
    expect(page.get_by_role("heading", name="Pick your namespace")).to_be_visible()
    expect(page.locator("#id_email")).to_have_value(PEOPLE["newbie"])
    expect(page.locator("#id_email")).to_be_disabled()
    page.fill("#id_username", "admin")
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_text("is reserved")).to_be_visible()  # the sign-up rules apply
    shoot(page, screenshots_dir, "sso-pick-namespace")
    name = f"newbie{RUN}"
    page.fill("#id_username", name)
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_text("need an access token")).to_be_visible()  # the first sign-in says the CLI rule
    with committed():
        user = User.objects.get(username=name)
        assert not user.has_usable_password()
        assert SocialAccount.objects.get(user=user).provider == "acme"
    page.goto(f"{sso_hub.url}/settings/tokens")
    expect(page.get_by_test_id("cli-needs-token")).to_contain_text("has no password")
    page.goto(f"{sso_hub.url}/accounts/password/set/")  # an account made through the provider may add a password
    expect(page.locator("main").get_by_role("button", name="Set Password")).to_be_visible()
    from tests.e2e.test_every_page_browser import fits_and_shoot

    fits_and_shoot(page, screenshots_dir, "sso-password-set")


def test_an_existing_account_is_linked_through_its_confirmed_email(sso_page, sso_hub, provider, live_user, committed,
                                                                   screenshots_dir):
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount

    from accounts.models import AuditEvent

    person = live_user(email=PEOPLE["linked"])
    with committed():
        EmailAddress.objects.create(user=person, email=PEOPLE["linked"], verified=True, primary=True)
    page = sso_page
    sign_in_at_the_provider(page, sso_hub, provider, "linked")
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    expect(page.get_by_text("Acme SSO is now linked to your account")).to_be_visible()
    with committed():
        assert SocialAccount.objects.get(user=person).provider == "acme"
        assert AuditEvent.objects.filter(account__user=person, action="account.sso_link").exists()
        assert AuditEvent.objects.get(account__user=person, action="account.login").data == {
            "door": "sso", "provider": "acme"}
    page.goto(f"{sso_hub.url}/accounts/3rdparty/")
    expect(page.get_by_role("heading", name="Single sign-on", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Acme SSO: {PEOPLE['linked']}")).to_be_visible()
    shoot(page, screenshots_dir, "sso-linked")


def test_an_email_outside_the_allowed_domains_is_refused(sso_page, sso_hub, provider, committed, screenshots_dir):
    from accounts.models import User

    page = sso_page
    sign_in_at_the_provider(page, sso_hub, provider, "outsider")
    refusal = page.get_by_test_id("sso-refused")
    expect(refusal).to_contain_text(f"{PEOPLE['outsider']} is not in a domain Acme SSO may vouch for")
    expect(refusal).to_contain_text("acme.test")
    shoot(page, screenshots_dir, "sso-refused-domain")
    with committed():
        assert not User.objects.filter(email=PEOPLE["outsider"]).exists()


def test_a_staff_account_is_refused_until_its_owner_confirms(sso_page, sso_hub, provider, live_user, committed,
                                                            screenshots_dir):
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount

    boss = live_user(email=PEOPLE["boss"], is_staff=True)
    with committed():
        EmailAddress.objects.create(user=boss, email=PEOPLE["boss"], verified=True, primary=True)
    page = sso_page
    sign_in_at_the_provider(page, sso_hub, provider, "boss")
    expect(page.get_by_test_id("sso-refused")).to_contain_text("a staff account")
    shoot(page, screenshots_dir, "sso-refused-staff")
    with committed():
        assert not SocialAccount.objects.filter(user=boss).exists()

    # Its owner confirms with the password, then links the provider from Settings > Single sign-on.
    page.get_by_role("link", name="Sign in with the password").click()
    page.fill("#id_login", boss.username)
    page.fill("#id_password", PASSWORD)
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name="Single sign-on", exact=True)).to_be_visible()
    page.get_by_role("button", name="Link Acme SSO").click()  # the provider still knows the browser: straight back
    expect(page.get_by_text("Acme SSO is now linked to your account")).to_be_visible()
    with committed():
        assert SocialAccount.objects.get(user=boss).provider == "acme"
    # From now on the provider signs its owner in.
    page.context.clear_cookies(name="sessionid")
    page.goto(f"{sso_hub.url}/accounts/login/")
    page.get_by_role("button", name="Sign in with Acme SSO").click()
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()


def test_an_account_with_two_factor_authentication_links_after_both_factors_and_is_asked_for_its_code(
        sso_page, sso_hub, provider, live_user, committed, screenshots_dir):
    from allauth.account.models import EmailAddress
    from allauth.mfa.models import Authenticator
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
    from allauth.mfa.totp.internal.auth import TOTP
    from allauth.socialaccount.models import SocialAccount

    guarded = live_user(email=PEOPLE["guarded"])
    secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    with committed():
        EmailAddress.objects.create(user=guarded, email=PEOPLE["guarded"], verified=True, primary=True)
        TOTP.activate(guarded, secret)
        RecoveryCodes.activate(guarded)
        recovery_code = RecoveryCodes(Authenticator.objects.get(
            user=guarded, type=Authenticator.Type.RECOVERY_CODES)).get_unused_codes()[0]
    page = sso_page
    # Password and second factor (a recovery code: the TOTP code of this half-minute is for the provider's turn).
    page.goto(f"{sso_hub.url}/accounts/login/?next=/accounts/3rdparty/")
    page.fill("#id_login", guarded.username)
    page.fill("#id_password", PASSWORD)
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    page.fill("#id_code", recovery_code)
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name="Single sign-on", exact=True)).to_be_visible()
    page.get_by_role("button", name="Link Acme SSO").click()
    page.wait_for_url(lambda url: url.startswith(provider.url))
    page.fill("#id_login", "guarded")
    page.fill("#id_password", IDP_PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_text("Acme SSO is now linked to your account")).to_be_visible()
    with committed():
        assert SocialAccount.objects.filter(user=guarded, provider="acme").exists()

    # Signed out of Wharf (the provider still knows the browser): the provider, then the second factor.
    page.context.clear_cookies(name="sessionid")
    page.goto(f"{sso_hub.url}/accounts/login/")
    page.get_by_role("button", name="Sign in with Acme SSO").click()
    expect(page.get_by_role("heading", name="Two-Factor Authentication")).to_be_visible()
    shoot(page, screenshots_dir, "sso-second-factor")
    page.fill("#id_code", totp_now(secret))
    page.locator("main").get_by_role("button", name="Sign In", exact=True).click()
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()


def test_the_pages_that_ask_before_leaving_or_say_the_sign_in_failed(sso_page, sso_hub, provider, screenshots_dir):
    """The page that asks before leaving for the provider (a GET of the login URL), a sign-in cancelled at the
    provider and one that failed there: each in the site's frame, fitting a phone, screenshot at both widths."""
    from tests.e2e.test_every_page_browser import fits_and_shoot

    page = sso_page

    def provider_answers(error: str):
        """Leave for the provider through the Continue page, and come back with its error for that sign-in's
        state (allauth checks the state before it looks at the error: a callback without one is a failure)."""
        page.goto(f"{sso_hub.url}/accounts/oidc/acme/login/")
        continue_button = page.locator("main").get_by_role("button", name="Continue")
        expect(continue_button).to_be_visible()
        continue_button.click()
        page.wait_for_url(lambda url: url.startswith(provider.url))
        # The provider's sign-in page holds the authorization request, state included, in its own `next`.
        state = re.search(r"[?&]state=([^&]+)", unquote(unquote(page.url))).group(1)
        return page.goto(f"{sso_hub.url}/accounts/oidc/acme/login/callback/?error={error}&state={quote(state)}")

    page.goto(f"{sso_hub.url}/accounts/oidc/acme/login/")
    expect(page.locator("main").get_by_role("button", name="Continue")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "sso-login-confirm")
    provider_answers("access_denied")
    page.wait_for_url(re.compile(r"/accounts/3rdparty/login/cancelled/$"))
    expect(page.locator("main h1")).to_have_text("Login Cancelled")
    fits_and_shoot(page, screenshots_dir, "sso-cancelled")
    answer = provider_answers("server_error")
    assert answer.status == 401
    expect(page.get_by_role("heading", name="Sign-in through Acme SSO failed")).to_be_visible()
    expect(page.get_by_test_id("sso-error")).to_be_visible()
    fits_and_shoot(page, screenshots_dir, "sso-failed")
