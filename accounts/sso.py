"""Single sign-on with OpenID Connect: which identity may sign in to which account (README, "Single sign-on").

The providers come from HUB_OIDC_PROVIDERS (hub/settings.py builds allauth's `openid_connect` apps from
it; rows of allauth's SocialApp table are ignored). allauth runs the protocol; this adapter decides:

- Every sign-in, link and sign-up needs an email the provider says it verified (`email_verified`), in one
  of the domains that provider may vouch for. Anything else is refused with a page that says why.
- An identity already linked signs in to its account; a second factor is still asked (allauth's stage).
- An identity not linked yet is linked by email only to an account whose same address is confirmed here,
  and never to a staff account or one with two-factor authentication: that person first signs in with the
  account's password and second factor, then links the provider from Settings → Single sign-on within
  five minutes (`CONFIRM_SECONDS`).
- Otherwise it is a new account: the person picks a namespace name (the sign-up rules: reserved names,
  tombstones), and the account has no usable password, so the CLI needs an access token. An address that
  other accounts hold unconfirmed neither links to them nor stands in the way: anyone may add any address
  unconfirmed, so the provider's word wins and those accounts lose it (`release_unconfirmed`, audited as
  `account.email_released`; their confirmation links die with it). Only when the provider may not make
  accounts is such an address refused instead, with a page that says to confirm it.
- Claims a provider sends that allauth cannot read (no `sub`, values of the wrong type, NUL characters)
  end at the sign-in failure page (401, accounts/views_sso.py), never a 500: `claims_problem`.

Sign-ins, links, unlinks and refusals that concern an account are written to its audit log.
"""

from __future__ import annotations

import logging
import re
import time

import requests
from allauth.account import app_settings as account_settings
from allauth.account.internal.flows.login import get_authentication_records
from allauth.account.models import EmailAddress
from allauth.account.signals import user_signed_up
from allauth.core import context as allauth_context
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.mfa.models import Authenticator
from allauth.mfa.utils import is_mfa_enabled
from allauth.socialaccount import app_settings as socialaccount_settings
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter, _build_apps_from_settings
from allauth.socialaccount.models import SocialAccount, SocialLogin
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.signals import social_account_added, social_account_removed
from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.dispatch import receiver
from django.http import HttpRequest
from django.shortcuts import render
from django.urls import reverse

from accounts import audit
from accounts.models import User
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


# The claims allauth reads (extract_common_fields, populate_user): each a string when present.
STRING_CLAIMS = ("email", "preferred_username", "name", "given_name", "family_name", "user_id", "picture")


def _holds_nul(value) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def claims_problem(claims, uid_field: str = "sub") -> str:
    """What makes a provider's claims (userinfo, or an ID token's) unusable, or "": allauth would fail on
    them with a 500 (KeyError, TypeError, ValueError) or PostgreSQL would refuse to store them."""
    if not isinstance(claims, dict):
        return f"the claims are a JSON {type(claims).__name__}, not an object"
    uid = claims.get(uid_field)
    if uid is None:
        return f"no `{uid_field}`"
    if isinstance(uid, bool) or not isinstance(uid, (str, int)):  # str(uid) in allauth: an int reads
        return f"`{uid_field}` is a {type(uid).__name__}, not a string"
    if not str(uid):
        return f"`{uid_field}` is empty"
    if len(str(uid)) > socialaccount_settings.UID_MAX_LENGTH:
        return f"`{uid_field}` is {len(str(uid))} characters long (at most {socialaccount_settings.UID_MAX_LENGTH})"
    for claim in STRING_CLAIMS:
        value = claims.get(claim)
        if value is not None and not isinstance(value, str):
            return f"`{claim}` is a {type(value).__name__}, not a string"
    if len(claims.get("email") or "") > account_settings.EMAIL_MAX_LENGTH:
        return f"`email` is longer than {account_settings.EMAIL_MAX_LENGTH} characters"
    if _holds_nul(claims):
        return "a claim holds a NUL character"
    return ""


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


def _holds_unconfirmed(email: str) -> Q:
    """Accounts holding `email` without having it confirmed: as their email field or an unconfirmed address."""
    confirmed = EmailAddress.objects.filter(user=OuterRef("pk"), email__iexact=email, verified=True)
    unconfirmed = EmailAddress.objects.filter(user=OuterRef("pk"), email__iexact=email, verified=False)
    return (Q(email__iexact=email) | Exists(unconfirmed)) & ~Exists(confirmed)


def unconfirmed_staff_holder(email: str) -> User | None:
    """A staff or superuser account holding `email` unconfirmed, typically an operator's account whose email
    was typed in by `createsuperuser` or the admin, with no address row behind it. Such an account is not
    stripped of the address by a sign-in (release_unconfirmed passes it over): the sign-in is refused as
    local_unverified instead, so the operator confirms the address (then the usual rules for staff apply)."""
    return (User.objects.filter(_holds_unconfirmed(email)).filter(Q(is_staff=True) | Q(is_superuser=True))
            .order_by("pk").first())


def release_unconfirmed(request: HttpRequest | None, sociallogin: SocialLogin, email: str) -> list:
    """The vouched address, on accounts that hold it unconfirmed (in Settings → Email addresses, or as the
    account's email without a confirmed address behind it) while no account holds it confirmed: those
    accounts lose it, so the person the provider vouched for gets it on their new account. Anyone may add
    any address unconfirmed; that must neither open their account to the address's owner nor lock the owner
    out. Their outstanding confirmation links stop working (the address they named is gone), an account
    whose email it was falls back to another of its addresses, and each gets `account.email_released` in
    its audit log (without this person's client address or name). Staff and superuser accounts are passed over
(unconfirmed_staff_holder). Returns the accounts that lost it."""
    released = []
    with transaction.atomic():
        holders = (User.objects.select_for_update().filter(_holds_unconfirmed(email))
                   .exclude(is_staff=True).exclude(is_superuser=True).order_by("pk"))
        for user in holders:
            EmailAddress.objects.filter(user=user, email__iexact=email, verified=False).delete()
            if user.email.lower() == email.lower():
                fallback = (EmailAddress.objects.filter(user=user)
                            .order_by("-primary", "-verified", "pk").first())
                if fallback is not None and not fallback.primary:
                    fallback.primary = True
                    fallback.save(update_fields=["primary"])
                user.email = fallback.email if fallback is not None else ""
                user.save(update_fields=["email"])
            with audit.audit_context(address=""):  # nobody of theirs acted: no actor, no address
                audit.record("account.email_released", account=audit.user_account(user), name=user.username,
                             data={"email": email, "provider": sociallogin.account.provider,
                                   "reason": "vouched_by_provider"})
            released.append(user)
    if released:
        logger.info("sso: %s vouched for %s, held unconfirmed by account(s) %s: released",
                    sociallogin.account.provider, email, ", ".join(str(user.pk) for user in released))
        if request is not None and hasattr(request, "_messages"):
            messages.info(request, f"An account here had added {email} without confirming it; it no longer has "
                                   "it. If that account is yours, sign in to it with its password instead, "
                                   "confirm the address under Settings → Email addresses, then link "
                                   f"{provider_name(sociallogin)} under Settings → Single sign-on.")
    return released


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
        logger.warning("sso: sign-in through %s failed: %s %s",
                       getattr(provider, "sub_id", None) or getattr(provider, "id", provider), error or "",
                       exception or "")

    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        signup = _app_settings(sociallogin).get("signup")
        return bool(getattr(settings, "HUB_SIGNUP_OPEN", True) if signup is None else signup)

    def can_authenticate_by_email(self, login: SocialLogin, email: str) -> bool:
        return True  # authenticate_by_email() applies the rules

    def authenticate_by_email(self, sociallogin: SocialLogin):
        """An identity not linked yet: the account whose confirmed address is the vouched email, unless it
        is guarded (staff, second factor). No account has it confirmed: a new account, and accounts holding
        it unconfirmed lose it (release_unconfirmed); they are never signed in to. Linking to the signed-in
        account (process=connect) is decided in pre_social_login instead."""
        if sociallogin.state.get("process") == "connect":
            return None
        request = self.request or allauth_context.request
        try:
            email = vouched_email(sociallogin)
        except Refused:
            return None  # pre_social_login refuses it
        address = (EmailAddress.objects.filter(email__iexact=email, verified=True).select_related("user")
                   .order_by("pk").first())
        if address is None:
            operator_held = unconfirmed_staff_holder(email)
            if operator_held is not None:
                # An operator's account (createsuperuser, the admin) is never changed by another person's
                # sign-in: its owner confirms the address first, then signs in or links.
                raise ImmediateHttpResponse(refusal_response(
                    request, sociallogin, Refused("local_unverified", email=email), user=operator_held))
            if self.is_open_for_signup(request, sociallogin):
                release_unconfirmed(request, sociallogin, email)
                return None
            # No account may be made: a holder of the address unconfirmed is told how to confirm it.
            unconfirmed = EmailAddress.objects.filter(email__iexact=email).select_related("user").order_by("pk").first()
            if unconfirmed is not None:
                raise ImmediateHttpResponse(refusal_response(
                    request, sociallogin, Refused("local_unverified", email=email), user=unconfirmed.user))
            return None
        user = address.user
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

    def get_signup_form_initial_data(self, sociallogin: SocialLogin) -> dict:
        """The namespace pick (shown or posted): an address claimed unconfirmed since the callback is released
        again, so the vouched email is never "taken" by such a claim when the account is made."""
        try:
            email = vouched_email(sociallogin)
        except Refused:
            email = ""
        if email and not EmailAddress.objects.filter(email__iexact=email, verified=True).exists():
            release_unconfirmed(None, sociallogin, email)
        return super().get_signup_form_initial_data(sociallogin)

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
