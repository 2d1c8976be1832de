"""Single sign-on's login step and callback (accounts/sso.py has the rules): allauth's openid_connect views,
except that nothing the provider answers makes a 500; each failure gets allauth's sign-in failure page
(401, "Sign-in through … failed") and a line in the log with the reason:

- a provider that cannot be reached, or answers an error, while its discovery document is read at the login
  step (allauth only catches that at the callback);
- a discovery document that is not a JSON object naming the endpoints the flow needs;
- claims (userinfo, or the ID token's) that allauth cannot read or PostgreSQL cannot store: no `sub`, an
  empty or over-long one, a non-string email or preferred_username, a NUL character (sso.claims_problem),
  checked before allauth reads them, and a userinfo answer whose subject is not the ID token's (OpenID
  Connect Core 5.3.2); whatever else allauth trips over while it reads them or the token answer
  (UNREADABLE) ends the same way.
"""

from __future__ import annotations

from allauth.account.internal.decorators import login_not_required
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.core.exceptions import ImproperlyConfigured
from django.http import Http404, HttpRequest, HttpResponse

from accounts.sso import claims_problem

DISCOVERY_ENDPOINTS = ("authorization_endpoint", "token_endpoint")  # what every flow reads from the document
# What allauth raises on an answer it cannot read (a missing key, a wrong type, a number out of range).
UNREADABLE = (AttributeError, KeyError, TypeError, ValueError, OverflowError, ImproperlyConfigured)


class CheckedOIDCAdapter(OpenIDConnectOAuth2Adapter):
    """allauth's OpenID Connect adapter; what the provider answers is checked before allauth reads it, and
    anything allauth still cannot read becomes OAuth2Error, which its views turn into the failure page."""

    @property
    def openid_config(self):
        try:
            config = super().openid_config  # allauth merges the app's overrides into it: a list fails there
        except UNREADABLE as exc:
            raise OAuth2Error(f"discovery document could not be read: {exc.__class__.__name__}: {exc}") from exc
        if not isinstance(config, dict):
            raise OAuth2Error(f"discovery document: a JSON {type(config).__name__}, not an object")
        for endpoint in DISCOVERY_ENDPOINTS:
            if not isinstance(config.get(endpoint), str) or not config[endpoint]:
                raise OAuth2Error(f"discovery document: no `{endpoint}`")
        return config

    def _uid_field(self) -> str:
        return str(self.get_provider().app.settings.get("uid_field") or "sub")

    def _fetch_user_info(self, access_token: str) -> dict:
        claims = super()._fetch_user_info(access_token)
        if problem := claims_problem(claims, self._uid_field()):
            raise OAuth2Error(f"userinfo claims: {problem}")
        self._userinfo_subject = claims.get(self._uid_field())  # allauth reads userinfo before the ID token
        return claims

    def _decode_id_token(self, app: SocialApp, id_token: str) -> dict:
        claims = super()._decode_id_token(app, id_token)
        if problem := claims_problem(claims, self._uid_field()):
            raise OAuth2Error(f"ID token claims: {problem}")
        userinfo_subject = getattr(self, "_userinfo_subject", None)
        if userinfo_subject is not None and userinfo_subject != claims.get(self._uid_field()):
            # OpenID Connect Core 5.3.2: a userinfo answer about someone else must not be used.
            raise OAuth2Error("userinfo and ID token name different subjects")
        return claims

    def parse_token(self, data):
        try:
            return super().parse_token(data)
        except UNREADABLE as exc:  # e.g. an `expires_in` that is no number of seconds
            raise OAuth2Error(f"token answer could not be read: {exc.__class__.__name__}: {exc}") from exc

    def complete_login(self, request: HttpRequest, app, token, **kwargs):
        try:
            return super().complete_login(request, app, token, **kwargs)
        except UNREADABLE as exc:
            raise OAuth2Error(f"claims could not be read: {exc.__class__.__name__}: {exc}") from exc


class CheckedLoginView(OAuth2LoginView):
    """The login step: allauth's provider makes its own adapter to read the discovery document; ours."""

    def get_provider(self):
        provider = super().get_provider()
        provider.oauth2_adapter_class = CheckedOIDCAdapter
        return provider


def _failure(request: HttpRequest, provider_id: str, exc: OAuth2Error) -> HttpResponse:
    provider = get_adapter(request).get_provider(request, provider_id)
    return render_authentication_error(request, provider, exception=exc)


@login_not_required
def oidc_login(request: HttpRequest, provider_id: str) -> HttpResponse:
    try:
        return CheckedLoginView.adapter_view(CheckedOIDCAdapter(request, provider_id))(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None
    except OAuth2Error as exc:
        return _failure(request, provider_id, exc)


@login_not_required
def oidc_callback(request: HttpRequest, provider_id: str) -> HttpResponse:
    try:
        return OAuth2CallbackView.adapter_view(CheckedOIDCAdapter(request, provider_id))(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None
    except OAuth2Error as exc:  # allauth catches it around the token and claims only
        return _failure(request, provider_id, exc)
