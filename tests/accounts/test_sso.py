"""Single sign-on with OpenID Connect (accounts/sso.py): the linking rules, through allauth's real views.

The provider's three endpoints (discovery, token, userinfo) are answered by `responses`; the browser test
(tests/e2e/test_sso_browser.py) runs a real OpenID provider instead."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse

from accounts.models import AuditEvent, User
from accounts.services import user_delete
from accounts.sso import SocialAccountAdapter
from hub.settings import _oidc_providers
from tests.accounts.conftest import sign_in
from tests.factories import UserFactory

ISSUER = "https://idp.acme.test"
PROVIDERS = [{"name": "Acme SSO", "issuer": ISSUER, "client_id": "wharf", "secret": "s3cret",
              "domains": ["acme.test"]}]


def socialaccount_apps(providers: list[dict]) -> dict:
    """SOCIALACCOUNT_PROVIDERS as hub/settings.py builds it."""
    return {"openid_connect": {"OAUTH_PKCE_ENABLED": True, "APPS": [
        {"provider_id": p["id"], "name": p["name"], "client_id": p["client_id"], "secret": p["secret"],
         "settings": {"server_url": p["issuer"], "email_domains": p["domains"], "signup": p["signup"]}}
        for p in providers]}}


@pytest.fixture
def sso(settings):
    providers = _oidc_providers(json.dumps(PROVIDERS))
    settings.HUB_OIDC_PROVIDERS = providers
    settings.SOCIALACCOUNT_PROVIDERS = socialaccount_apps(providers)
    settings.ROOT_URLCONF = "tests.accounts.sso_urls"
    return providers


def idp(claims: dict):
    """Answer the provider's endpoints for one sign-in with these userinfo claims."""
    mock = responses.RequestsMock(assert_all_requests_are_fired=False)
    mock.get(f"{ISSUER}/.well-known/openid-configuration", json={
        "issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/authorize", "token_endpoint": f"{ISSUER}/token",
        "userinfo_endpoint": f"{ISSUER}/userinfo", "jwks_uri": f"{ISSUER}/jwks",
        "token_endpoint_auth_methods_supported": ["client_secret_post"]})
    mock.post(f"{ISSUER}/token", json={"access_token": "at", "token_type": "Bearer", "expires_in": 60})
    mock.get(f"{ISSUER}/userinfo", json=claims)
    return mock


def sso_sign_in(client, claims: dict, *, process: str = "login"):
    """Press "Sign in with Acme SSO" (or "Link"), come back from the provider: the callback's response."""
    with idp(claims):
        start = client.post(f"/accounts/oidc/acme-sso/login/?process={process}")
        assert start.status_code == 302, start.content.decode()[:500]
        query = parse_qs(urlsplit(start["Location"]).query)
        assert query["client_id"] == ["wharf"] and "code_challenge" in query  # PKCE
        return client.get("/accounts/oidc/acme-sso/login/callback/", {"code": "c0de", "state": query["state"][0]})


def claims_for(email: str, *, sub: str | None = None, verified: bool = True, **more) -> dict:
    return {"sub": sub or email, "email": email, "email_verified": verified, **more}


def signed_in_user(client):
    return client.get(reverse("home")).context["user"]


def verified_user(email: str, **kwargs) -> User:
    user = UserFactory(email=email, **kwargs)
    EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
    return user


# --- Configuration ------------------------------------------------------------------------------


def test_providers_parse_with_defaults(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file\n")
    providers = _oidc_providers(json.dumps([
        {"name": "Acme SSO", "issuer": "https://idp.acme.test/", "client_id": "c", "secret": "s",
         "domains": "acme.test, Example.ORG"},
        {"id": "corp", "name": "Corp", "issuer": "http://127.0.0.1:9000/o", "client_id": "c2",
         "secret_file": str(secret), "domains": ["corp.test"], "signup": False}]))
    assert providers[0] == {"id": "acme-sso", "name": "Acme SSO", "issuer": "https://idp.acme.test", "client_id": "c",
                            "secret": "s", "domains": ["acme.test", "example.org"], "signup": None}
    assert providers[1]["secret"] == "from-a-file" and providers[1]["signup"] is False
    assert _oidc_providers("") == []


@pytest.mark.parametrize(("provider", "message"), [
    ({"issuer": "http://idp.acme.test"}, "https://"),
    ({"domains": []}, "domains"),
    ({"secret": ""}, "client_id and secret"),
    ({"name": ""}, "needs a name"),
    ({"colour": "red"}, "unknown key"),
])
def test_a_bad_provider_stops_start_up_naming_the_mistake(provider, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        _oidc_providers(json.dumps([{**PROVIDERS[0], **provider}]))
    with pytest.raises(ImproperlyConfigured, match="unique"):
        _oidc_providers(json.dumps([PROVIDERS[0], PROVIDERS[0]]))


@pytest.mark.django_db
def test_without_providers_there_is_no_button_and_no_page(client):
    assert b"Sign in with" not in client.get(reverse("account_login")).content
    assert client.get("/accounts/3rdparty/").status_code == 404
    assert client.get("/accounts/oidc/acme-sso/login/").status_code == 404


@pytest.mark.django_db
def test_login_and_signup_pages_offer_the_provider(client, sso, django_assert_max_num_queries):
    with django_assert_max_num_queries(0):  # the providers come from the settings, no SocialApp query
        assert [provider.name for provider in SocialAccountAdapter().list_providers(None)] == ["Acme SSO"]
    for page in ("account_login", "account_signup"):
        html = client.get(reverse(page)).content.decode()
        assert "Sign in with Acme SSO" in html
        assert 'action="/accounts/oidc/acme-sso/login/?process=login"' in html


@pytest.mark.django_db
def test_socialapp_rows_are_ignored(client, sso):
    SocialApp.objects.create(provider="openid_connect", provider_id="rogue", name="Rogue", client_id="x",
                             secret="y", settings={"server_url": "https://rogue.test"})
    html = client.get(reverse("account_login")).content.decode()
    assert "Rogue" not in html
    assert client.post("/accounts/oidc/rogue/login/").status_code == 404


# --- New accounts ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_new_person_picks_a_namespace_and_gets_an_account_without_password(client, sso):
    response = sso_sign_in(client, claims_for("dana@acme.test", preferred_username="Dana.K"))
    assert response.status_code == 302 and response["Location"] == reverse("socialaccount_signup")
    page = client.get(reverse("socialaccount_signup")).content.decode()
    assert "Pick your namespace" in page and 'value="danak"' in page and "disabled" in page

    for name, error in (("admin", "reserved"), ("Dana", "lowercase"), ("ab", "4")):
        response = client.post(reverse("socialaccount_signup"), {"username": name, "email": "evil@other.test"})
        assert response.status_code == 200 and error in response.content.decode(), name
    response = client.post(reverse("socialaccount_signup"), {"username": "danak", "email": "evil@other.test"})
    assert response.status_code == 302
    user = User.objects.get(username="danak")
    assert signed_in_user(client) == user
    assert not user.has_usable_password()
    assert user.email == "dana@acme.test"  # the vouched address, whatever was posted
    assert EmailAddress.objects.get(user=user).verified
    assert SocialAccount.objects.get(user=user).provider == "acme-sso"
    actions = dict(AuditEvent.objects.filter(account__user=user).values_list("action", "data"))
    assert actions["account.sso_link"]["new_account"] is True
    assert actions["account.login"] == {"door": "sso", "provider": "acme-sso"}
    tokens_page = client.get(reverse("accounts:token_list")).content.decode()
    assert "signs in through single sign-on and has no password" in tokens_page


@pytest.mark.django_db
def test_sign_up_through_a_provider_follows_signup_open_unless_the_provider_says(client, sso, settings):
    settings.HUB_SIGNUP_OPEN = False
    response = sso_sign_in(client, claims_for("erin@acme.test"))
    assert response.status_code == 200 and "closed" in response.content.decode().lower()
    settings.SOCIALACCOUNT_PROVIDERS = socialaccount_apps([{**sso[0], "signup": True}])
    response = sso_sign_in(client, claims_for("erin@acme.test"))
    assert response["Location"] == reverse("socialaccount_signup")


@pytest.mark.django_db
def test_the_second_sign_in_goes_straight_in(client, sso):
    sso_sign_in(client, claims_for("fred@acme.test", sub="fred-1"))
    client.post(reverse("socialaccount_signup"), {"username": "fredk"})
    client.post(reverse("account_logout"))
    response = sso_sign_in(client, claims_for("fred@acme.test", sub="fred-1"))
    assert response.status_code == 302
    assert signed_in_user(client).username == "fredk"


# --- Refusals -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_email_outside_the_allowed_domains_is_refused(client, sso):
    response = sso_sign_in(client, claims_for("mallory@evil.test"))
    assert response.status_code == 403
    html = response.content.decode()
    assert 'data-reason="domain"' in html and "mallory@evil.test" in html and "acme.test" in html
    assert not signed_in_user(client).is_authenticated
    assert client.get(reverse("socialaccount_signup")).status_code == 302  # nothing pending


@pytest.mark.django_db
def test_an_email_the_provider_did_not_verify_is_refused(client, sso):
    verified_user("gina@acme.test")
    response = sso_sign_in(client, claims_for("gina@acme.test", verified=False))
    assert response.status_code == 403 and 'data-reason="unverified"' in response.content.decode()
    assert not SocialAccount.objects.exists()


@pytest.mark.django_db
def test_a_linked_identity_whose_email_left_the_domains_is_refused(client, sso):
    user = verified_user("hal@acme.test")
    sso_sign_in(client, claims_for("hal@acme.test", sub="hal"))
    assert SocialAccount.objects.filter(user=user).exists()
    client.post(reverse("account_logout"))
    response = sso_sign_in(client, claims_for("hal@elsewhere.test", sub="hal"))
    assert response.status_code == 403 and 'data-reason="domain"' in response.content.decode()
    assert AuditEvent.objects.filter(account__user=user, action="account.sso_refused").exists()


# --- Linking existing accounts --------------------------------------------------------------------


@pytest.mark.django_db
def test_an_existing_account_is_linked_through_its_confirmed_email(client, sso):
    user = verified_user("ivan@acme.test")
    response = sso_sign_in(client, claims_for("IVAN@acme.test", sub="ivan-sub"))
    assert response.status_code == 302
    assert signed_in_user(client) == user
    assert SocialAccount.objects.get(user=user).uid == "ivan-sub"
    user.refresh_from_db()
    assert user.has_usable_password()  # the password still works
    linked = AuditEvent.objects.get(account__user=user, action="account.sso_link")
    assert linked.data["provider"] == "acme-sso" and linked.address == "127.0.0.1"


@pytest.mark.django_db
def test_an_address_held_unconfirmed_goes_to_the_person_the_provider_vouches_for(client, sso):
    """Never linked to the account that added it unconfirmed, never a lock-out: a new account, and the
    other account loses the address (its email falls back to its confirmed one), with an audit event that
    names neither this person nor their client address."""
    holder = UserFactory(email="judy@acme.test")
    EmailAddress.objects.create(user=holder, email="judy@acme.test", verified=False, primary=True)
    EmailAddress.objects.create(user=holder, email="judy@home.test", verified=True, primary=False)
    response = sso_sign_in(client, claims_for("judy@acme.test", sub="judy"))
    assert response.status_code == 302 and response["Location"] == reverse("socialaccount_signup")
    page = client.get(reverse("socialaccount_signup")).content.decode()
    assert "had added judy@acme.test without confirming it" in page
    holder.refresh_from_db()
    assert holder.email == "judy@home.test"
    assert list(EmailAddress.objects.filter(user=holder).values_list("email", "primary", "verified")) == [
        ("judy@home.test", True, True)]
    released = AuditEvent.objects.get(account__user=holder, action="account.email_released")
    assert released.data == {"email": "judy@acme.test", "provider": "acme-sso", "reason": "vouched_by_provider"}
    assert released.actor is None and released.actor_name == "" and released.address == ""

    assert client.post(reverse("socialaccount_signup"), {"username": "judyacme"}).status_code == 302
    judy = User.objects.get(username="judyacme")
    assert signed_in_user(client) == judy and judy.email == "judy@acme.test"
    assert EmailAddress.objects.get(email="judy@acme.test").user == judy
    assert EmailAddress.objects.get(email="judy@acme.test").verified
    assert list(SocialAccount.objects.values_list("user", "uid")) == [(judy.pk, "judy")]


@pytest.mark.django_db
def test_an_account_whose_only_address_is_released_keeps_no_email(client, sso):
    holder = UserFactory(email="kim@acme.test")  # the account's email, no address row behind it (admin-made)
    sso_sign_in(client, claims_for("kim@acme.test"))
    holder.refresh_from_db()
    assert holder.email == "" and not EmailAddress.objects.filter(user=holder).exists()
    assert AuditEvent.objects.filter(account__user=holder, action="account.email_released").exists()
    assert client.post(reverse("socialaccount_signup"), {"username": "kimacme"}).status_code == 302
    assert User.objects.get(username="kimacme").email == "kim@acme.test"


@pytest.mark.django_db
def test_without_sign_up_an_address_held_unconfirmed_is_refused_and_kept(client, sso, settings):
    """The provider may not make accounts: nothing is taken from the account, whose page says to confirm."""
    settings.HUB_SIGNUP_OPEN = False
    holder = UserFactory(email="lou@acme.test")
    EmailAddress.objects.create(user=holder, email="lou@acme.test", verified=False, primary=True)
    response = sso_sign_in(client, claims_for("lou@acme.test"))
    assert response.status_code == 403 and 'data-reason="local_unverified"' in response.content.decode()
    assert EmailAddress.objects.filter(user=holder, email="lou@acme.test", verified=False).exists()
    assert not SocialAccount.objects.exists()
    assert not AuditEvent.objects.filter(action="account.email_released").exists()


@pytest.mark.django_db
def test_a_staff_account_is_never_linked_by_email(client, sso):
    admin = verified_user("root@acme.test", is_staff=True)
    response = sso_sign_in(client, claims_for("root@acme.test"))
    html = response.content.decode()
    assert response.status_code == 403 and 'data-reason="confirm"' in html and "a staff account" in html
    assert not signed_in_user(client).is_authenticated
    assert not SocialAccount.objects.exists()
    refused = AuditEvent.objects.get(account__user=admin, action="account.sso_refused")
    assert refused.data == {"provider": "acme-sso", "reason": "confirm", "email": "root@acme.test"}


@pytest.mark.django_db
def test_a_two_factor_account_is_never_linked_by_email(client, sso):
    user = verified_user("kim@acme.test")
    TOTP.activate(user, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    response = sso_sign_in(client, claims_for("kim@acme.test"))
    assert response.status_code == 403 and "two-factor" in response.content.decode()
    assert not SocialAccount.objects.exists()


@pytest.mark.django_db
def test_a_staff_account_links_after_a_fresh_password_sign_in(client, sso):
    admin = verified_user("lee@acme.test", is_staff=True)
    sign_in(client, admin)
    response = sso_sign_in(client, claims_for("lee@acme.test", sub="lee"), process="connect")
    assert response.status_code == 302
    assert SocialAccount.objects.get(user=admin).uid == "lee"
    client.post(reverse("account_logout"))
    response = sso_sign_in(client, claims_for("lee@acme.test", sub="lee"))
    assert response.status_code == 302 and signed_in_user(client) == admin


@pytest.mark.django_db
def test_linking_needs_a_recent_confirmation_and_an_address_of_the_account(client, sso, monkeypatch):
    from accounts import sso as sso_module

    admin = verified_user("mo@acme.test", is_staff=True)
    sign_in(client, admin)
    response = sso_sign_in(client, claims_for("other@acme.test"), process="connect")
    assert response.status_code == 403 and 'data-reason="connect_email"' in response.content.decode()
    monkeypatch.setattr(sso_module, "CONFIRM_SECONDS", -1)  # the password sign-in is too old now
    response = sso_sign_in(client, claims_for("mo@acme.test"), process="connect")
    assert response.status_code == 403 and 'data-reason="connect_confirm"' in response.content.decode()
    assert not SocialAccount.objects.exists()


@pytest.mark.django_db
def test_a_linked_two_factor_account_is_still_asked_for_its_code(client, sso):
    user = verified_user("nia@acme.test")
    SocialAccount.objects.create(user=user, provider="acme-sso", uid="nia")
    TOTP.activate(user, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    assert Authenticator.objects.filter(user=user).exists()
    response = sso_sign_in(client, claims_for("nia@acme.test", sub="nia"))
    assert response.status_code == 302 and response["Location"] == reverse("mfa_authenticate")
    assert not signed_in_user(client).is_authenticated


@pytest.mark.django_db
def test_unlinking_is_audited_and_keeps_a_password_account_usable(client, sso):
    user = verified_user("otto@acme.test")
    sso_sign_in(client, claims_for("otto@acme.test", sub="otto"))
    account = SocialAccount.objects.get(user=user)
    page = client.get(reverse("socialaccount_connections")).content.decode()
    assert "Acme SSO" in page and "Single sign-on" in page
    response = client.post(reverse("socialaccount_connections"), {"account": account.pk})
    assert response.status_code == 302
    assert not SocialAccount.objects.filter(user=user).exists()
    assert AuditEvent.objects.filter(account__user=user, action="account.sso_unlink").exists()


@pytest.mark.django_db
def test_a_deleted_accounts_name_cannot_be_picked(client, sso):
    gone = UserFactory(username="pattigone")
    user_delete(user=gone)
    sso_sign_in(client, claims_for("patti@acme.test", preferred_username="pattigone"))
    response = client.post(reverse("socialaccount_signup"), {"username": "pattigone"})
    assert response.status_code == 200 and "deleted account" in response.content.decode()


# --- The command-line clients ---------------------------------------------------------------------


@pytest.mark.django_db
def test_the_cli_is_told_an_sso_account_needs_an_access_token(client, settings):
    import base64

    from accounts.services import access_token_create

    user = UserFactory()
    user.set_unusable_password()
    user.save()

    def token_answer(password: str):
        basic = base64.b64encode(f"{user.username}:{password}".encode()).decode()
        return client.get("/token", {"service": settings.REGISTRY_SERVICE}, HTTP_AUTHORIZATION=f"Basic {basic}")

    refused = token_answer("any-password")
    assert refused.status_code == 401
    assert "signs in through single sign-on and has no password: log in with a personal access token" \
        in refused.json()["details"]
    _, secret = access_token_create(user=user, label="cli", scope="repo:read")
    assert token_answer(secret).status_code == 200


@pytest.mark.django_db
def test_a_provider_that_cannot_be_reached_gets_a_page_not_a_500(client, sso):
    with responses.RequestsMock() as mock:
        mock.get(f"{ISSUER}/.well-known/openid-configuration", status=503)
        response = client.post("/accounts/oidc/acme-sso/login/?process=login")
    assert response.status_code == 401
    assert "Sign-in through Acme SSO failed" in response.content.decode()
    with idp(claims_for("quinn@acme.test")) as mock:
        mock.replace(responses.POST, f"{ISSUER}/token", json={"error": "invalid_grant"}, status=400)
        start = client.post("/accounts/oidc/acme-sso/login/?process=login")
        state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
        response = client.get("/accounts/oidc/acme-sso/login/callback/", {"code": "c0de", "state": state})
    assert response.status_code == 401 and "could not be reached, or did not complete" in response.content.decode()
    assert not signed_in_user(client).is_authenticated
