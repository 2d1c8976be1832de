"""Single sign-on with OpenID Connect: which identity may sign in to which account (README, "Single sign-on").

The providers come from HUB_OIDC_PROVIDERS (hub/settings.py builds allauth's `openid_connect` apps from
it; rows of allauth's SocialApp table are ignored). allauth runs the protocol; this adapter decides:

- Every sign-in, link and sign-up needs an email the provider says it verified (`email_verified`), in one
  of the domains that provider may vouch for. Anything else is refused with a page that says why.
- An identity already linked signs in to its account; a second factor is still asked (allauth's stage).
- An identity not linked yet is linked by email only to an account whose same address is confirmed here,
  and never to a staff account or one with two-factor authentication: that person first signs in with the
  account's password and second factor, then links the provider from Settings → Single sign-on within
  five minutes (`CONFIRM_SECONDS`). An address that an account uses unconfirmed is refused too.
- Otherwise it is a new account: the person picks a namespace name (the sign-up rules: reserved names,
  tombstones), and the account has no usable password, so the CLI needs an access token.

Sign-ins, links, unlinks and refusals that concern an account are written to its audit log.
"""

from __future__ import annotations

import logging
import re
import time

import requests
from allauth.account.internal.flows.login import get_authentication_records
from allauth.account.models import EmailAddress
from allauth.account.signals import user_signed_up
from allauth.core import context as allauth_context
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter, _build_apps_from_settings
from allauth.socialaccount.models import SocialAccount, SocialLogin
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.signals import social_account_added, social_account_removed
from django.conf import settings
from django.contrib import messages
from django.dispatch import receiver
from django.http import HttpRequest
from django.shortcuts import render
from django.urls import reverse

from accounts import audit
from accounts.throttles import client_address

logger = logging.getLogger(__name__)

CONFIRM_SECONDS = 300  # how recent the password (and second factor) sign-in must be to link a guarded account
SECOND_FACTORS = [Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN]


class Refused(Exception):
    def __init__(self, reason: str, **context) -> None:
        super().__init__(reason)
        self.reason = reason
        self.context = context


def _app_settings(sociallogin: SocialLogin) -> dict:
    app = getattr(sociallogin.provider, "app", None)
    return dict(getattr(app, "settings", None) or {})


def provider_name(sociallogin: SocialLogin) -> str:
    return getattr(sociallogin.provider, "name", "") or sociallogin.account.provider


def allowed_domains(sociallogin: SocialLogin) -> list[str]:
    return [str(domain).lower() for domain in _app_settings(sociallogin).get("email_domains") or []]


def email_in_domains(email: str, domains: list[str]) -> bool:
    domain = email.rpartition("@")[2].lower()
    return bool(domain) and domain in domains


def vouched_email(sociallogin: SocialLogin) -> str:
    """The email the provider verified, in a domain it may vouch for; Refused otherwise."""
    addresses = [address for address in sociallogin.email_addresses if address.email]
    if not addresses:
        raise Refused("no_email")
    domains = allowed_domains(sociallogin)
    inside = [address for address in addresses if email_in_domains(address.email, domains)]
    if not inside:
        raise Refused("domain", email=addresses[0].email, domains=domains)
    verified = [address for address in inside if address.verified]
    if not verified:
        raise Refused("unverified", email=inside[0].email)
    return verified[0].email.lower()


def needs_confirmation(user) -> bool:
    """Staff accounts and accounts with a second factor are never linked by an email alone."""
    return bool(user.is_staff or user.is_superuser or is_mfa_enabled(user, SECOND_FACTORS))


def recently_confirmed(request: HttpRequest, user) -> bool:
    """This session signed in with the password (and the second factor, when the account has one) in the
    last CONFIRM_SECONDS."""
    since = time.time() - CONFIRM_SECONDS
    methods = {record.get("method") for record in get_authentication_records(request, user)
               if float(record.get("at") or 0) >= since}
    if "password" not in methods:
        return False
    return "mfa" in methods or not is_mfa_enabled(user, SECOND_FACTORS)


def suggested_username(preferred: str, email: str) -> str:
    """A namespace-shaped suggestion from preferred_username or the email's local part (the person may change it)."""
    for candidate in (preferred or "", email.partition("@")[0]):
        name = re.sub(r"[^a-z0-9]", "", str(candidate).lower())[:30]
        if len(name) >= 4:
            return name
    return ""


def _record(action: str, user, sociallogin: SocialLogin, request: HttpRequest | None, **data) -> None:
    audit.record(action, account=audit.user_account(user), name=user.username, actor=user,
                 address=client_address(request) if request is not None else "",
                 data={"provider": sociallogin.account.provider, **data})


def refusal_response(request: HttpRequest, sociallogin: SocialLogin, refused: Refused, user=None):
    """The page that says why (403). A refusal that concerns an existing account is in its audit log."""
    name = provider_name(sociallogin)
    if user is not None:
        _record("account.sso_refused", user, sociallogin, request, reason=refused.reason,
                email=refused.context.get("email", ""))
    logger.info("sso refused: provider=%s reason=%s email=%s", sociallogin.account.provider, refused.reason,
                refused.context.get("email", ""))
    context = {"provider_name": name, "reason": refused.reason, **refused.context,
               "connections_url": reverse("socialaccount_connections"), "login_url": reverse("account_login"),
               "email_url": reverse("account_email")}
    return render(request, "socialaccount/refused.html", context, status=403)


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    """allauth's hooks, with Wharf's linking rules (module docstring)."""

    def list_apps(self, request, provider=None, client_id=None):
        """The providers of HUB_OIDC_PROVIDERS only, without a query: SocialApp rows (the admin's) are ignored.
        (allauth's own helper for its settings-backed apps; django-allauth is pinned in requirements.txt.)"""
        apps = _build_apps_from_settings(provider=provider, client_id=client_id)
        return [app for provider_apps in apps.values() for app in provider_apps]

    def get_requests_session(self):
        """Calls to the provider (discovery, token, userinfo, keys) that fail, or answer an error, become
        OAuth2Error: allauth then shows its sign-in failure page (401) instead of a 500 at the login step."""
        session = super().get_requests_session()
        send = session.request

        def request(method, url, *args, **kwargs):
            try:
                response = send(method, url, *args, **kwargs)
            except requests.RequestException as exc:
                raise OAuth2Error(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
            if response.status_code >= 400:
                raise OAuth2Error(f"{method} {url}: answered {response.status_code}")
            return response

        session.request = request
        return session

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None) -> None:
        logger.warning("sso: sign-in through %s failed: %s %s", getattr(provider, "id", provider), error or "",
                       exception or "")

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        signup = _app_settings(sociallogin).get("signup")
        return bool(getattr(settings, "HUB_SIGNUP_OPEN", True) if signup is None else signup)

    def can_authenticate_by_email(self, login: SocialLogin, email: str) -> bool:
        return True  # authenticate_by_email() applies the rules

    def authenticate_by_email(self, sociallogin: SocialLogin):
        """An identity not linked yet: the account whose confirmed address is the vouched email, unless it
        is guarded (staff, second factor). Linking to the signed-in account (process=connect) is decided in
        pre_social_login instead."""
        if sociallogin.state.get("process") == "connect":
            return None
        request = self.request or allauth_context.request
        try:
            email = vouched_email(sociallogin)
        except Refused:
            return None  # pre_social_login refuses it
        address = EmailAddress.objects.filter(email__iexact=email).select_related("user").order_by("-verified").first()
        if address is None:
            return None
        user = address.user
        if not address.verified:
            raise ImmediateHttpResponse(refusal_response(request, sociallogin, Refused("local_unverified", email=email),
                                                         user=user))
        if needs_confirmation(user):
            raise ImmediateHttpResponse(refusal_response(
                request, sociallogin, Refused("confirm", email=email, staff=bool(user.is_staff or user.is_superuser)),
                user=user))
        return user, email

    def pre_social_login(self, request: HttpRequest, sociallogin: SocialLogin) -> None:
        target = sociallogin.user if sociallogin.is_existing else None
        try:
            email = vouched_email(sociallogin)
            if sociallogin.state.get("process") == "connect" and request.user.is_authenticated:
                target = request.user
                if not EmailAddress.objects.filter(user=request.user, email__iexact=email, verified=True).exists():
                    raise Refused("connect_email", email=email)
                if needs_confirmation(request.user) and not recently_confirmed(request, request.user):
                    raise Refused("connect_confirm", email=email,
                                  staff=bool(request.user.is_staff or request.user.is_superuser))
        except Refused as refused:
            raise ImmediateHttpResponse(refusal_response(request, sociallogin, refused, user=target)) from None

    def populate_user(self, request: HttpRequest, sociallogin: SocialLogin, data):
        user = super().populate_user(request, sociallogin, data)
        user.username = suggested_username(data.get("username") or "", data.get("email") or "")
        return user

    def save_user(self, request: HttpRequest, sociallogin: SocialLogin, form=None):
        user = super().save_user(request, sociallogin, form=form)
        messages.info(request, f"Your account signs in through {provider_name(sociallogin)} and has no password: "
                               "docker login, podman login and skopeo login need an access token "
                               "(Settings → Access tokens).")
        return user


# --- Audit ------------------------------------------------------------------------------------------


@receiver(social_account_added, dispatch_uid="accounts.sso_linked")
def sso_linked(sender, request, sociallogin: SocialLogin, **kwargs) -> None:
    _record("account.sso_link", sociallogin.user, sociallogin, request, uid=sociallogin.account.uid)
    if request is not None and hasattr(request, "_messages"):
        messages.info(request, f"{provider_name(sociallogin)} is now linked to your account: it can sign you in "
                               "(Settings → Single sign-on).")


@receiver(user_signed_up, dispatch_uid="accounts.sso_signed_up")
def sso_signed_up(sender, request, user, sociallogin: SocialLogin | None = None, **kwargs) -> None:
    if sociallogin is not None:
        _record("account.sso_link", user, sociallogin, request, uid=sociallogin.account.uid, new_account=True)


@receiver(social_account_removed, dispatch_uid="accounts.sso_unlinked")
def sso_unlinked(sender, request, socialaccount: SocialAccount, **kwargs) -> None:
    user = socialaccount.user
    audit.record("account.sso_unlink", account=audit.user_account(user), name=user.username, actor=user,
                 address=client_address(request) if request is not None else "",
                 data={"provider": socialaccount.provider, "uid": socialaccount.uid})
