"""Attacks on single sign-on (issue 23, accounts/sso.py), each proved or disproved by one test.

A hostile person with an identity at a configured provider, or a hostile provider, tries to be signed in
to or linked with someone else's account: unverified or out-of-domain addresses (case, look-alike and
sub-domains), a second provider claiming the first one's domain, staff, superuser and two-factor
accounts, identities already linked elsewhere, a callback from another browser's flow, forged requests
(CSRF) on the sign-in, link, unlink and namespace-pick forms, `next` pointing off the site, a namespace
pick of a reserved, deleted, taken or mirror-prefix name, and the password doors of an account made
through the provider. The provider's endpoints are answered by `responses`, as in tests/accounts/test_sso.py.
"""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import responses
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP
from allauth.socialaccount.models import SocialAccount
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent, Namespace, User
from accounts.services import user_delete
from hub.settings import _oidc_providers
from registry.mirror.config import Mirror
from tests.accounts.conftest import sign_in
from tests.conftest import PASSWORD
from tests.factories import UserFactory, make_organization
from tests.registry.helpers import basic

pytestmark = pytest.mark.django_db

ACME, BETA = "https://idp.acme.test", "https://idp.beta.test"
PROVIDERS = [
    {"name": "Acme SSO", "issuer": ACME, "client_id": "wharf", "secret": "s3cret", "domains": ["acme.test"]},
    {"name": "Beta SSO", "issuer": BETA, "client_id": "wharf-b", "secret": "b3ta", "domains": ["beta.test"]},
]
ISSUERS = {"acme-sso": ACME, "beta-sso": BETA}


@pytest.fixture
def sso(settings):
    providers = _oidc_providers(json.dumps(PROVIDERS))
    settings.HUB_OIDC_PROVIDERS = providers
    settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": [
        {"provider_id": p["id"], "name": p["name"], "client_id": p["client_id"], "secret": p["secret"],
         "settings": {"server_url": p["issuer"], "email_domains": p["domains"], "signup": p["signup"]}}
        for p in providers]}}
    settings.ROOT_URLCONF = "tests.accounts.sso_urls"
    return providers


def idp(issuer: str, claims: dict) -> responses.RequestsMock:
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.get(f"{issuer}/.well-known/openid-configuration", json={
        "issuer": issuer, "authorization_endpoint": f"{issuer}/authorize", "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo", "jwks_uri": f"{issuer}/jwks",
        "token_endpoint_auth_methods_supported": ["client_secret_post"]})
    mock.post(f"{issuer}/token", json={"access_token": "at", "token_type": "Bearer", "expires_in": 60})
    mock.get(f"{issuer}/userinfo", json=claims)
    return mock


def start(client, provider: str = "acme-sso", *, process: str = "login", next_url: str | None = None):
    """Press the button: the state of the flow (the provider's redirect's `state`)."""
    query = f"?process={process}" + (f"&next={next_url}" if next_url is not None else "")
    with idp(ISSUERS[provider], {}):
        response = client.post(f"/accounts/oidc/{provider}/login/{query}")
    assert response.status_code == 302, response.content.decode()[:500]
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


def callback(client, state: str, claims: dict, provider: str = "acme-sso"):
    with idp(ISSUERS[provider], claims):
        return client.get(f"/accounts/oidc/{provider}/login/callback/", {"code": "c0de", "state": state})


def sign_in_through(client, claims: dict, provider: str = "acme-sso", *, process: str = "login",
                    next_url: str | None = None):
    return callback(client, start(client, provider, process=process, next_url=next_url), claims, provider)


def claims(email: str, *, sub: str | None = None, verified=True, **more) -> dict:
    return {"sub": sub or email.lower(), "email": email, "email_verified": verified, **more}


def user_of(client):
    return client.get(reverse("home")).context["user"]


def verified_user(email: str, **kwargs) -> User:
    user = UserFactory(email=email, **kwargs)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


def nothing_pending(client) -> bool:
    """No account is being made from this flow (the namespace pick redirects away)."""
    return client.get(reverse("socialaccount_signup")).status_code == 302


# --- Which address a provider may vouch for ----------------------------------------------------------


@pytest.mark.parametrize("verified", [False, "false", "False", "0", 0, 1, "yes", None, "true "])
def test_an_address_not_verified_by_the_provider_links_nothing(client, sso, verified):
    victim = verified_user("victim@acme.test")
    response = sign_in_through(client, claims("victim@acme.test", verified=verified))
    assert response.status_code == 403 and 'data-reason="unverified"' in response.content.decode()
    assert not user_of(client).is_authenticated and nothing_pending(client)
    assert not SocialAccount.objects.filter(user=victim).exists()


@pytest.mark.parametrize("email", [
    "victim@acme.test.evil.test", "victim@sub.acme.test", "victim@evilacme.test", "victim@acme.test.",
    "victim@acme.test@evil.test", "victim@acme-test", "victim@acme.tEst.evil.test", "victim@ACME.TEST.evil.test",
    "victim@xn--acme-test", "victim@acme．test",
])
def test_look_alike_and_sub_domains_are_outside(client, sso, email):
    """Domains match exactly (any case): a sub-domain or a longer name is another domain."""
    verified_user("victim@acme.test")
    response = sign_in_through(client, claims(email))
    html = response.content.decode()  # "no_email": allauth drops an address that is not one
    assert response.status_code == 403 and ('data-reason="domain"' in html or 'data-reason="no_email"' in html)
    assert not user_of(client).is_authenticated and nothing_pending(client)
    assert not SocialAccount.objects.exists()


def test_case_variants_of_an_allowed_address_reach_the_same_account(client, sso):
    """What the code intends: addresses and domains compare without case, so `Alice@ACME.test` is the
    account of alice@acme.test (never a second account beside it)."""
    alice = verified_user("alice@acme.test")
    response = sign_in_through(client, claims("Alice@ACME.test", sub="alice-at-acme"))
    assert response.status_code == 302 and user_of(client) == alice
    assert User.objects.filter(email__iexact="alice@acme.test").count() == 1


def test_a_second_provider_cannot_vouch_for_the_first_ones_domain(client, sso):
    victim = verified_user("victim@acme.test")
    SocialAccount.objects.create(user=victim, provider="acme-sso", uid="victim-sub")
    for email in ("victim@acme.test", "VICTIM@Acme.Test"):
        response = sign_in_through(client, claims(email, sub="victim-sub"), "beta-sso")
        assert response.status_code == 403 and 'data-reason="domain"' in response.content.decode()
        assert not user_of(client).is_authenticated and nothing_pending(client)
    assert list(SocialAccount.objects.values_list("provider", "uid")) == [("acme-sso", "victim-sub")]


def test_the_same_subject_at_another_provider_is_another_person(client, sso):
    """Beta's `sub` equal to the victim's Acme `sub`, with an address Beta may vouch for: a new account."""
    victim = verified_user("victim@acme.test")
    SocialAccount.objects.create(user=victim, provider="acme-sso", uid="shared-sub")
    response = sign_in_through(client, claims("mallory@beta.test", sub="shared-sub"), "beta-sso")
    assert response.status_code == 302 and response["Location"] == reverse("socialaccount_signup")
    assert user_of(client) != victim and not user_of(client).is_authenticated


# --- Guarded accounts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["root@acme.test", "ROOT@acme.test", "root@ACME.TEST"])
@pytest.mark.parametrize("flags", [{"is_staff": True}, {"is_superuser": True},
                                   {"is_staff": True, "is_superuser": True}])
def test_a_staff_or_superuser_account_is_never_linked_by_email(client, sso, email, flags):
    admin = verified_user("root@acme.test", **flags)
    response = sign_in_through(client, claims(email))
    assert response.status_code == 403 and 'data-reason="confirm"' in response.content.decode()
    assert not user_of(client).is_authenticated and nothing_pending(client)
    assert not SocialAccount.objects.filter(user=admin).exists()


def test_a_staff_accounts_second_address_is_guarded_too(client, sso):
    admin = verified_user("root@elsewhere.test", is_staff=True)
    EmailAddress.objects.create(user=admin, email="root@acme.test", verified=True, primary=False)
    response = sign_in_through(client, claims("root@acme.test"))
    assert response.status_code == 403 and not user_of(client).is_authenticated
    assert not SocialAccount.objects.exists()


def test_a_two_factor_account_is_not_signed_in_without_its_code(client, sso):
    """Linked by email: refused. Linked already (after the password and code): the code is still asked,
    and the session is not the account's until it is given."""
    user = verified_user("kate@acme.test")
    TOTP.activate(user, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    response = sign_in_through(client, claims("KATE@acme.test"))
    assert response.status_code == 403 and not SocialAccount.objects.exists()
    SocialAccount.objects.create(user=user, provider="acme-sso", uid="kate")
    response = sign_in_through(client, claims("kate@acme.test", sub="kate"))
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    assert not user_of(client).is_authenticated
    assert client.get(reverse("accounts:token_list")).status_code == 302  # no page of hers
    response = client.post(reverse("mfa_authenticate"), {"code": "000000"})
    assert not user_of(client).is_authenticated


def test_a_two_factor_account_cannot_link_with_a_session_that_skipped_the_code(client, sso):
    """The person typed the password but not the code: the session is not signed in, so `connect` has
    nobody to link to and the email rules apply (refused: a guarded account)."""
    user = verified_user("liam@acme.test")
    TOTP.activate(user, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    client.post(reverse("account_login"), {"login": user.username, "password": PASSWORD})
    assert not user_of(client).is_authenticated
    response = sign_in_through(client, claims("liam@acme.test"), process="connect")
    assert response.status_code in (302, 403)
    assert not SocialAccount.objects.filter(user=user).exists()
    assert not user_of(client).is_authenticated


def test_an_inactive_account_is_not_signed_in_by_its_linked_identity(client, sso):
    user = verified_user("nora@acme.test")
    SocialAccount.objects.create(user=user, provider="acme-sso", uid="nora")
    User.objects.filter(pk=user.pk).update(is_active=False)
    sign_in_through(client, claims("nora@acme.test", sub="nora"))
    assert not user_of(client).is_authenticated


# --- Linking from a signed-in session ------------------------------------------------------------------


def test_an_identity_linked_to_someone_is_not_moved_to_another_account(client, sso):
    victim = verified_user("vic@acme.test")
    SocialAccount.objects.create(user=victim, provider="acme-sso", uid="vic")
    mallory = verified_user("mallory@acme.test")
    client.force_login(mallory)
    sign_in_through(client, claims("mallory@acme.test", sub="vic"), process="connect")
    assert SocialAccount.objects.get(provider="acme-sso", uid="vic").user == victim
    assert not SocialAccount.objects.filter(user=mallory).exists()


def test_a_signed_in_person_cannot_link_an_identity_vouching_for_someone_elses_address(client, sso):
    verified_user("vic@acme.test")
    mallory = verified_user("mallory@acme.test")
    client.force_login(mallory)
    response = sign_in_through(client, claims("vic@acme.test", sub="vic"), process="connect")
    assert response.status_code == 403 and 'data-reason="connect_email"' in response.content.decode()
    assert not SocialAccount.objects.exists()


def test_a_callback_from_another_browsers_flow_links_nothing(sso):
    """Login CSRF: mallory starts a flow for his identity and sends alice's browser to its callback."""
    alice = verified_user("alice@acme.test")
    mallory_browser, alice_browser = Client(), Client()
    alice_browser.force_login(alice)
    state = start(mallory_browser, process="connect")
    response = callback(alice_browser, state, claims("alice@acme.test", sub="mallory-sub"))
    assert response.status_code in (400, 401, 403), response.status_code
    assert not SocialAccount.objects.exists()
    assert user_of(alice_browser) == alice
    response = callback(Client(), start(mallory_browser), claims("alice@acme.test", sub="mallory-sub"))
    assert response.status_code in (400, 401, 403) and not SocialAccount.objects.exists()


# --- Forged requests (CSRF) -------------------------------------------------------------------------


def test_the_sso_forms_refuse_a_forged_post(sso):
    user = verified_user("olga@acme.test")
    linked = SocialAccount.objects.create(user=user, provider="acme-sso", uid="olga")
    browser = Client(enforce_csrf_checks=True)
    for process in ("login", "connect"):
        assert browser.post(f"/accounts/oidc/acme-sso/login/?process={process}").status_code == 403
    browser.force_login(user)
    for process in ("login", "connect"):
        assert browser.post(f"/accounts/oidc/acme-sso/login/?process={process}").status_code == 403
    assert browser.post(reverse("socialaccount_connections"), {"account": linked.pk}).status_code == 403
    assert SocialAccount.objects.filter(pk=linked.pk).exists()


def test_a_get_never_starts_a_flow(sso):
    """SOCIALACCOUNT_LOGIN_ON_GET is off: a link or an image pointing at the button's URL only shows a page."""
    browser = Client()
    browser.force_login(verified_user("pia@acme.test"))
    for process in ("login", "connect"):
        with idp(ACME, {}) as mock:
            response = browser.get(f"/accounts/oidc/acme-sso/login/?process={process}")
        assert response.status_code == 200, response.status_code
        assert not any("/authorize" in call.request.url for call in mock.calls)


def test_the_namespace_pick_refuses_a_forged_post(sso):
    browser = Client(enforce_csrf_checks=True)
    state = start_with_csrf(browser)
    callback(browser, state, claims("quentin@acme.test"))
    response = browser.post(reverse("socialaccount_signup"), {"username": "quentin"})
    assert response.status_code == 403
    assert not User.objects.filter(username="quentin").exists()


def start_with_csrf(browser: Client) -> str:
    """The button pressed with the page's CSRF token, as a browser does."""
    browser.get(reverse("account_login"))
    token = browser.cookies["csrftoken"].value
    with idp(ACME, {}):
        response = browser.post("/accounts/oidc/acme-sso/login/?process=login", {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    return parse_qs(urlsplit(response["Location"]).query)["state"][0]


# --- `next` ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("next_url", ["https://evil.test/", "//evil.test/", "/\\evil.test/", "https:evil.test",
                                      "%2F%2Fevil.test", "javascript:alert(1)"])
def test_next_never_leaves_the_site(client, sso, next_url):
    verified_user("rita@acme.test")
    response = sign_in_through(client, claims("rita@acme.test", sub="rita"), next_url=next_url)
    assert response.status_code == 302
    target = urlsplit(response["Location"])
    assert target.netloc in ("", "testserver") and target.scheme in ("", "http", "https"), response["Location"]
    assert not response["Location"].startswith(("//", "/\\")), response["Location"]
    assert "evil" not in response["Location"] and "javascript" not in response["Location"]


def test_next_on_the_site_is_kept(client, sso):
    verified_user("sara@acme.test")
    response = sign_in_through(client, claims("sara@acme.test", sub="sara"), next_url="/settings/tokens")
    assert response.status_code == 302 and response["Location"] == "/settings/tokens"


# --- The namespace pick -------------------------------------------------------------------------------


@pytest.fixture
def mirrors(settings):
    settings.HUB_MIRRORS = {"dockerhub": Mirror(prefix="dockerhub", url="https://registry-1.docker.io")}


@pytest.mark.parametrize("name", ["dockerhub", "DockerHub", "DOCKERHUB", "library", "admin", "gonegone",
                                  "takenorg", "v2", "token"])
def test_the_namespace_pick_refuses_names_nobody_may_take(client, sso, mirrors, name):
    gone = UserFactory(username="gonegone")
    user_delete(user=gone)
    make_organization(UserFactory(), name="takenorg")
    response = sign_in_through(client, claims("tess@acme.test", preferred_username=name))
    assert response["Location"] == reverse("socialaccount_signup")
    response = client.post(reverse("socialaccount_signup"), {"username": name})
    assert response.status_code == 200, response.status_code  # the form again, with its error
    assert not User.objects.filter(username__iexact=name).exists()
    assert not Namespace.objects.filter(name__iexact=name, user__isnull=False).exists()
    assert not user_of(client).is_authenticated


def test_the_suggested_name_is_only_a_suggestion(client, sso, mirrors):
    """A provider's preferred_username of a mirror prefix is never taken without the form."""
    sign_in_through(client, claims("uma@acme.test", preferred_username="dockerhub"))
    assert not User.objects.filter(username="dockerhub").exists()
    assert not Namespace.objects.filter(name="dockerhub").exists()


# --- An account made through the provider has no password ----------------------------------------------


@pytest.fixture
def sso_account(client, sso):
    sign_in_through(client, claims("vera@acme.test", sub="vera"))
    response = client.post(reverse("socialaccount_signup"), {"username": "veraacme"})
    assert response.status_code == 302
    user = User.objects.get(username="veraacme")
    assert not user.has_usable_password()
    client.post(reverse("account_logout"))
    return user


@pytest.mark.parametrize("password", ["", "!", PASSWORD, "None", "veraacme"])
def test_an_sso_accounts_password_doors_are_shut(sso_account, settings, password):
    from rest_framework.test import APIClient

    browser = Client()
    response = browser.post(reverse("account_login"), {"login": "veraacme", "password": password})
    assert not user_of(browser).is_authenticated
    response = browser.get("/token", {"service": settings.REGISTRY_SERVICE, "scope": "repository:veraacme/x:pull"},
                           HTTP_AUTHORIZATION=basic("veraacme", password))
    assert response.status_code == 401
    response = browser.get("/v2/veraacme/x/tags/list", HTTP_AUTHORIZATION=basic("veraacme", password))
    assert response.status_code == 401
    for path in ("/v2/users/login", "/v2/auth/token"):
        body = {"username": "veraacme", "password": password} if path.endswith("login") \
            else {"identifier": "veraacme", "secret": password}
        response = APIClient().post(path, body, format="json")
        assert response.status_code in (400, 401), (path, response.status_code)
        assert "token" not in response.json() or not response.json().get("token"), response.json()
    for identifier in ("vera@acme.test", "VERA@ACME.TEST"):
        browser.post(reverse("account_login"), {"login": identifier, "password": password})
        assert not user_of(browser).is_authenticated


def test_the_last_identity_of_an_account_without_password_cannot_be_unlinked(client, sso_account):
    client.force_login(sso_account)
    account = SocialAccount.objects.get(user=sso_account)
    client.post(reverse("socialaccount_connections"), {"account": account.pk})
    assert SocialAccount.objects.filter(pk=account.pk).exists()


# --- What a hostile provider writes into pages -----------------------------------------------------------


def test_a_providers_claims_are_escaped_on_the_refusal_page(client, sso):
    email = '"<script>alert(1)</script>"@evil.test'
    response = sign_in_through(client, claims(email, name="<img src=x onerror=alert(2)>"))
    html = response.content.decode()
    assert response.status_code == 403
    assert "<script>alert(1)" not in html and "<img src=x" not in html


# --- Squatting an address -----------------------------------------------------------------------------


def confirmation_links(to: str) -> list[str]:
    return [match.group(1) for message in mail.outbox if message.to == [to]
            for match in re.finditer(r"https?://[^/\s]+(/accounts/confirm-email/[^\s]+/)", message.body)]


def squat(squatter: Client, *addresses: str) -> None:
    """Mallory adds addresses that are not his, unconfirmed (as many as he likes)."""
    for address in addresses:
        response = squatter.post(reverse("account_email"), {"email": address, "action_add": ""})
        assert response.status_code in (200, 302), response.status_code


@pytest.fixture
def squatter(sso):
    mallory = verified_user("mallory@elsewhere.test")
    browser = Client()
    sign_in(browser, mallory)
    browser.mallory = mallory
    return browser


def test_an_unconfirmed_squatter_does_not_lock_the_addresss_owner_out(client, squatter):
    """Wendy gets her own account with her address; mallory's claim on it is gone (and so is the
    confirmation link it mailed to wendy: clicking it later confirms nothing for mallory), his other claims
    stay, his account is never signed in to or linked, and his audit log says what he lost."""
    mallory = squatter.mallory
    squat(squatter, "wendy@acme.test", "xavier@acme.test")
    assert EmailAddress.objects.filter(user=mallory, email="wendy@acme.test", verified=False).exists()
    [link] = confirmation_links("wendy@acme.test")
    response = sign_in_through(client, claims("wendy@acme.test", sub="wendy"))
    assert response.status_code == 302 and response["Location"] == reverse("socialaccount_signup")
    assert not user_of(client).is_authenticated
    assert not SocialAccount.objects.filter(user=mallory).exists()
    assert set(EmailAddress.objects.filter(user=mallory).values_list("email", flat=True)) == {
        "mallory@elsewhere.test", "xavier@acme.test"}
    assert AuditEvent.objects.get(account__user=mallory, action="account.email_released").data["email"] \
        == "wendy@acme.test"
    activity = squatter.get(reverse("account_activity")).content.decode()
    assert "Unconfirmed email address removed" in activity and "wendy@acme.test" in activity

    response = client.post(reverse("socialaccount_signup"), {"username": "wendyacme"})
    assert response.status_code == 302
    wendy = User.objects.get(username="wendyacme")
    assert user_of(client) == wendy
    assert list(EmailAddress.objects.filter(email__iexact="wendy@acme.test").values_list("user", "verified")) \
        == [(wendy.pk, True)]
    assert list(SocialAccount.objects.values_list("user", "provider", "uid")) == [(wendy.pk, "acme-sso", "wendy")]

    assert Client().post(link).status_code == 404  # the old mail, clicked at last: nothing to confirm
    assert not EmailAddress.objects.filter(user=mallory, email__iexact="wendy@acme.test").exists()
    assert user_of(squatter) == mallory  # his session goes on, as his own account


def test_a_squatter_who_made_the_address_his_accounts_email_loses_it_too(client, sso):
    """Signed up with wendy's address (never confirmed): his account's email falls back to nothing."""
    mallory = UserFactory(username="mallory", email="wendy@acme.test")
    EmailAddress.objects.create(user=mallory, email="wendy@acme.test", verified=False, primary=True)
    response = sign_in_through(client, claims("WENDY@acme.test", sub="wendy"))
    assert response["Location"] == reverse("socialaccount_signup")
    mallory.refresh_from_db()
    assert mallory.email == "" and not EmailAddress.objects.filter(user=mallory).exists()
    assert client.post(reverse("socialaccount_signup"), {"username": "wendyacme"}).status_code == 302
    assert User.objects.get(email__iexact="wendy@acme.test").username == "wendyacme"
    assert not SocialAccount.objects.filter(user=mallory).exists()


@pytest.mark.parametrize("flags", [{"is_staff": True}, {"is_superuser": True, "is_staff": True}])
def test_an_operators_account_holding_the_address_unconfirmed_is_not_changed(client, sso, flags):
    """`createsuperuser` and the admin set an account's email with no address row behind it. A sign-in
    vouching for that address neither strips it from the operator's account nor makes a second account:
    it is refused with the way forward (confirm the address with the password), and the account's log says so."""
    root = UserFactory(username="rootops", email="ops@acme.test", **flags)
    response = sign_in_through(client, claims("OPS@acme.test", sub="ops"))
    assert response.status_code == 403 and 'data-reason="local_unverified"' in response.content.decode()
    root.refresh_from_db()
    assert root.email == "ops@acme.test"
    assert list(User.objects.values_list("username", flat=True)) == ["rootops"]
    assert not SocialAccount.objects.exists() and not user_of(client).is_authenticated and nothing_pending(client)
    assert AuditEvent.objects.get(account__user=root, action="account.sso_refused").data["reason"] \
        == "local_unverified"
    assert not AuditEvent.objects.filter(action="account.email_released").exists()


def test_an_ordinary_account_holding_the_address_only_as_its_email_loses_it(client, sso):
    """The same account without staff rights (its email field set, no address row) is any other unconfirmed
    holder: the vouched person gets a new account and the holder falls back to no email."""
    holder = UserFactory(username="holder", email="wendy@acme.test")
    response = sign_in_through(client, claims("wendy@acme.test", sub="wendy"))
    assert response["Location"] == reverse("socialaccount_signup")
    holder.refresh_from_db()
    assert holder.email == ""
    assert AuditEvent.objects.get(account__user=holder, action="account.email_released").data["email"] \
        == "wendy@acme.test"


def test_a_squatter_who_claims_the_address_again_before_the_namespace_pick_loses_it_again(client, squatter):
    mallory = squatter.mallory
    squat(squatter, "wendy@acme.test")
    sign_in_through(client, claims("wendy@acme.test", sub="wendy"))
    squat(squatter, "wendy@acme.test")  # between the callback and the form
    assert EmailAddress.objects.filter(user=mallory, email="wendy@acme.test").exists()
    response = client.post(reverse("socialaccount_signup"), {"username": "wendyacme"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert user_of(client).username == "wendyacme"
    assert not EmailAddress.objects.filter(user=mallory, email="wendy@acme.test").exists()
    assert AuditEvent.objects.filter(account__user=mallory, action="account.email_released").count() == 2


def test_a_squatter_claiming_the_address_after_it_has_its_account_gains_nothing(client, squatter):
    mallory = squatter.mallory
    sign_in_through(client, claims("wendy@acme.test", sub="wendy"))
    client.post(reverse("socialaccount_signup"), {"username": "wendyacme"})
    client.post(reverse("account_logout"))
    squat(squatter, "wendy@acme.test")
    response = sign_in_through(client, claims("wendy@acme.test", sub="wendy"))
    assert response.status_code == 302 and user_of(client).username == "wendyacme"
    response = sign_in_through(Client(), claims("wendy@acme.test", sub="someone-else"))  # another identity
    assert response.status_code == 302 and response["Location"] != reverse("socialaccount_signup")
    assert not SocialAccount.objects.filter(user=mallory).exists()


@pytest.mark.parametrize("owner_flags", [{}, {"is_staff": True}, {"two_factor": True}])
def test_beside_a_confirmed_owner_a_squatter_changes_nothing(client, squatter, owner_flags):
    """The other way round: wendy's account has the address confirmed and mallory claims it unconfirmed
    (his row first). The usual linking rules apply to wendy's account alone: linked when it is an ordinary
    account, refused for staff and two-factor accounts; mallory keeps his claim and gets nothing."""
    mallory = squatter.mallory
    squat(squatter, "wendy@acme.test")
    wendy = verified_user("wendy@acme.test", is_staff=owner_flags.get("is_staff", False))
    if owner_flags.get("two_factor"):
        TOTP.activate(wendy, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    response = sign_in_through(client, claims("Wendy@acme.test", sub="wendy"))
    if owner_flags:
        assert response.status_code == 403 and 'data-reason="confirm"' in response.content.decode()
        assert not SocialAccount.objects.exists() and not user_of(client).is_authenticated
        assert nothing_pending(client)
    else:
        assert response.status_code == 302 and user_of(client) == wendy
        assert list(SocialAccount.objects.values_list("user", "uid")) == [(wendy.pk, "wendy")]
    assert EmailAddress.objects.filter(user=mallory, email="wendy@acme.test", verified=False).exists()
    assert not AuditEvent.objects.filter(action="account.email_released").exists()


def test_an_address_the_provider_may_not_vouch_for_releases_nothing(client, squatter):
    """Unverified by the provider, vouched by a provider for another domain, or a link with nobody signed
    in: the claim stays where it is (only the provider's word on the address takes it away)."""
    mallory = squatter.mallory
    squat(squatter, "wendy@acme.test")
    response = sign_in_through(client, claims("wendy@acme.test", verified=False))
    assert response.status_code == 403 and 'data-reason="unverified"' in response.content.decode()
    response = sign_in_through(client, claims("wendy@acme.test"), "beta-sso")
    assert response.status_code == 403 and 'data-reason="domain"' in response.content.decode()
    sign_in_through(client, claims("wendy@acme.test"), process="connect")
    assert EmailAddress.objects.filter(user=mallory, email="wendy@acme.test", verified=False).exists()
    assert not AuditEvent.objects.filter(action="account.email_released").exists()
    assert not SocialAccount.objects.exists() and not user_of(client).is_authenticated


# --- Malformed claims from a provider ------------------------------------------------------------------


YAN = {"sub": "yan", "email": "yan@acme.test", "email_verified": True}


@pytest.mark.parametrize(("userinfo", "logged"), [
    ({"email": "yan@acme.test", "email_verified": True}, "no `sub`"),
    ({**YAN, "sub": ""}, "`sub` is empty"),
    ({**YAN, "sub": "y" * 5000}, "`sub` is 5000 characters long"),
    ({**YAN, "sub": "y" * 192}, "`sub` is 192 characters long"),
    ({**YAN, "sub": None}, "no `sub`"),
    ({**YAN, "sub": True}, "`sub` is a bool"),
    ({**YAN, "sub": ["yan"]}, "`sub` is a list"),
    ({**YAN, "sub": {"id": "yan"}}, "`sub` is a dict"),
    ({**YAN, "email": 5}, "`email` is a int"),
    ({**YAN, "email": ["yan@acme.test"]}, "`email` is a list"),
    ({**YAN, "email": "y" * 250 + "@acme.test"}, "`email` is longer than 254"),
    ({**YAN, "preferred_username": 12345}, "`preferred_username` is a int"),
    ({**YAN, "name": {"first": "Yan"}}, "`name` is a dict"),
    ({**YAN, "given_name": ["Yan"]}, "`given_name` is a list"),
    ({**YAN, "name": "Yan\x00Evil"}, "NUL"),
    ({**YAN, "sub": "yan\x00"}, "NUL"),
    ({**YAN, "groups": [{"x\x00": 1}]}, "NUL"),
    (["yan"], "a JSON list"),
    ("yan", "a JSON str"),
    ({}, "no `sub`"),
], ids=["no-sub", "empty-sub", "long-sub", "sub-192", "null-sub", "bool-sub", "list-sub", "dict-sub",
        "int-email", "list-email", "long-email", "int-username", "dict-name", "list-given-name", "nul-name",
        "nul-sub", "nul-nested", "list", "string", "empty"])
def test_malformed_claims_get_a_page_not_a_500(sso, caplog, userinfo, logged):
    """Every such answer ends at the sign-in failure page (the one an unreachable provider gets, 401), with
    the reason in the log; nobody is signed in, no account or link is made, nothing is pending."""
    browser = Client(raise_request_exception=False)
    response = sign_in_through(browser, userinfo)
    assert response.status_code == 401, response.status_code
    assert "Sign-in through Acme SSO failed" in response.content.decode()
    assert any(logged in record.getMessage() for record in caplog.records if record.name == "accounts.sso"), \
        [record.getMessage() for record in caplog.records]
    assert not user_of(browser).is_authenticated and nothing_pending(browser)
    assert not SocialAccount.objects.exists() and not User.objects.filter(email__icontains="yan").exists()


@pytest.mark.parametrize("sub", [7, "y" * 191, " yan "], ids=["integer", "191-characters", "spaces"])
def test_claims_allauth_can_read_still_sign_in(client, sso, sub):
    """What allauth reads well is not refused: an integer `sub` (taken as its digits), one of 191 characters."""
    response = sign_in_through(client, {**YAN, "sub": sub, "preferred_username": "yanacme"})
    assert response.status_code == 302 and response["Location"] == reverse("socialaccount_signup")
    assert client.post(reverse("socialaccount_signup"), {"username": "yanacme"}).status_code == 302
    assert SocialAccount.objects.get(user__username="yanacme").uid == str(sub)


def failed_callback(client, mock_change, caplog, logged: str):
    state = start(client)
    with idp(ACME, claims("zoe@acme.test")) as mock:
        mock_change(mock)
        response = client.get("/accounts/oidc/acme-sso/login/callback/", {"code": "c0de", "state": state})
    assert response.status_code == 401 and "Sign-in through Acme SSO failed" in response.content.decode()
    assert any(logged in record.getMessage() for record in caplog.records), [r.getMessage() for r in caplog.records]
    assert not user_of(client).is_authenticated and not SocialAccount.objects.exists()


@pytest.mark.parametrize(("change", "logged"), [
    (lambda mock: mock.replace(responses.GET, f"{ACME}/userinfo", body="<html>not json</html>"), "JSONDecodeError"),
    (lambda mock: mock.replace(responses.POST, f"{ACME}/token", json={"access_token": "at", "expires_in": "soon"}),
     "token answer could not be read"),
    (lambda mock: mock.replace(responses.POST, f"{ACME}/token", json={"access_token": "at", "expires_in": 10**30}),
     "token answer could not be read"),
    (lambda mock: mock.replace(responses.GET, f"{ACME}/.well-known/openid-configuration", json=["x"]),
     "discovery document could not be read"),
    (lambda mock: mock.replace(responses.GET, f"{ACME}/.well-known/openid-configuration",
                               json={"authorization_endpoint": f"{ACME}/authorize"}), "no `token_endpoint`"),
], ids=["userinfo-not-json", "expires-in-word", "expires-in-huge", "discovery-list", "discovery-no-token"])
def test_malformed_answers_at_the_callback_get_a_page_not_a_500(client, sso, caplog, change, logged):
    failed_callback(client, change, caplog, logged)


def test_a_malformed_discovery_document_at_the_login_step_gets_a_page_not_a_500(client, sso, caplog):
    for document in (["x"], {"token_endpoint": f"{ACME}/token"}, {"authorization_endpoint": 5}):
        with responses.RequestsMock() as mock:
            mock.get(f"{ACME}/.well-known/openid-configuration", json=document)
            response = Client(raise_request_exception=False).post("/accounts/oidc/acme-sso/login/?process=login")
        assert response.status_code == 401, (document, response.status_code)
        assert "Sign-in through Acme SSO failed" in response.content.decode()
    assert sum("discovery document" in record.getMessage() for record in caplog.records) == 3


def id_token(subject: str, email: str) -> str:
    """An ID token as the token endpoint returns it (its signature is not checked on that direct answer)."""
    return jwt.encode({"iss": ACME, "aud": "wharf", "iat": int(time.time()), "exp": int(time.time()) + 60,
                       "sub": subject, "email": email, "email_verified": True}, "not-checked", algorithm="HS256")


def with_id_token(subject: str):
    return lambda mock: mock.replace(responses.POST, f"{ACME}/token", json={
        "access_token": "at", "token_type": "Bearer", "expires_in": 60, "id_token": id_token(subject, "zoe@acme.test")})


def test_a_userinfo_answer_about_another_subject_than_the_id_tokens_is_refused(client, sso, caplog):
    """OpenID Connect Core 5.3.2: the userinfo `sub` must be the ID token's, or the answer is not used."""
    failed_callback(client, with_id_token("someone-else"), caplog, "userinfo and ID token name different subjects")


def test_a_userinfo_answer_about_the_id_tokens_subject_signs_in(client, sso):
    state = start(client)
    with idp(ACME, claims("zoe@acme.test", sub="zoe")) as mock:
        with_id_token("zoe")(mock)
        response = client.get("/accounts/oidc/acme-sso/login/callback/", {"code": "c0de", "state": state})
    assert response.status_code == 302 and response["Location"] == reverse("socialaccount_signup")
