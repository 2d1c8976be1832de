"""Single sign-on's login step (accounts/sso.py has the rules): allauth's openid_connect login view, except
that a provider that cannot be reached, or answers an error, while its discovery document is read gets
allauth's sign-in failure page (401) instead of a 500 (allauth only catches that at the callback)."""

from __future__ import annotations

from allauth.account.internal.decorators import login_not_required
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.helpers import render_authentication_error
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.openid_connect import views as oidc_views
from django.http import HttpRequest, HttpResponse


@login_not_required
def oidc_login(request: HttpRequest, provider_id: str) -> HttpResponse:
    try:
        return oidc_views.login(request, provider_id)
    except OAuth2Error as exc:
        provider = get_adapter(request).get_provider(request, provider_id)
        return render_authentication_error(request, provider, exception=exc)
