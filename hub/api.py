"""DRF glue for the Hub JSON API: JWT authentication, Docker Hub pagination, the exception handler.

Hub API JWTs are signed with the registry's ES256 key but carry their own audience
(`<HUB_PUBLIC_URL>/v2/api`), so the registry refuses them and this API refuses registry tokens.
A JWT made from a personal access token keeps that token's scope and dies with it; one made from
a password carries the account's credentials epoch and dies when it moves (password changed, two-factor
authentication turned on, account deactivated).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import jwt
from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from accounts.credentials import ClaimsRefused, TooManyAttempts, password_fingerprint, user_for_claims
from accounts.models import AccessToken, User
from accounts.throttles import client_address
from lib.cache import count_up
from registry.tokens import ALGORITHM, LEEWAY_SECONDS, MAX_TOKEN_LENGTH, get_signing_key
from repositories.permissions import Actor

SCHEMES = ("bearer", "jwt")  # Docker Hub's clients send `Bearer <jwt>`; older ones `JWT <jwt>`


def api_audience() -> str:
    return f"{settings.HUB_PUBLIC_URL}/v2/api"


FINGERPRINT_PURPOSE = "wharf.hub-api.jwt"


def issue_api_token(*, user: User, token: AccessToken | None = None) -> str:
    """A signed JWT for the Hub API (from /v2/users/login or /v2/auth/token)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.HUB_PUBLIC_URL, "aud": api_audience(), "sub": user.username, "uid": user.pk,
        "iat": now, "nbf": now, "exp": now + int(settings.HUB_API_TOKEN_TTL), "jti": secrets.token_urlsafe(16),
    }
    if token is not None:
        claims["pat"] = token.pk
    else:
        claims["pwd"] = password_fingerprint(user, FINGERPRINT_PURPOSE)
        claims["ep"] = user.credentials_epoch
    key = get_signing_key()
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"typ": "JWT", "kid": key.kid})


@dataclass(frozen=True)
class ApiCredentials:
    """`request.auth` for a JWT: the personal access token it came from, if any."""

    access_token: AccessToken | None
    claims: dict[str, Any]


class AtomicScopedRateThrottle(ScopedRateThrottle):
    """DRF's scoped rate (`throttle_scope`, DEFAULT_THROTTLE_RATES) as one counter per fixed window,
    added and incremented atomically in the cache. DRF's own reads the request history, appends and
    writes it back, so parallel requests each read the same history and most of them go uncounted.
    A fixed window lets at most twice the rate through across a window's edge. The caller's address is
    accounts.throttles.client_address (X-Forwarded-For only behind a proxy), not DRF's own reading."""

    def get_ident(self, request) -> str:
        return client_address(request)

    def allow_request(self, request, view) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.get_cache_key(request, view)
        if self.rate is None or self.key is None:
            return True
        now = self.timer()
        window = int(now // self.duration)
        self._wait = (window + 1) * self.duration - now
        return count_up(self.cache, f"{self.key}:{window}", self.duration + 1) <= self.num_requests

    def wait(self) -> float | None:
        return max(0.0, self._wait)


class JWTAuthentication(BaseAuthentication):
    """`Authorization: Bearer <jwt>` or `Authorization: JWT <jwt>` with a Hub API JWT."""

    def authenticate(self, request: Request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() not in SCHEMES:
            return None
        credentials = credentials.strip()
        if not credentials or len(credentials) > MAX_TOKEN_LENGTH:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        try:
            claims = jwt.decode(
                credentials, get_signing_key().public_key, algorithms=[ALGORITHM], audience=api_audience(),
                issuer=settings.HUB_PUBLIC_URL, leeway=LEEWAY_SECONDS,
                options={"require": ["iss", "aud", "exp", "nbf", "iat", "sub"]},
            )
        except jwt.PyJWTError:
            raise exceptions.AuthenticationFailed("Invalid or expired token.") from None
        return self._user_for(claims)

    @staticmethod
    def _user_for(claims: dict[str, Any]) -> tuple[User, ApiCredentials]:
        try:
            authenticated = user_for_claims(claims, fingerprint_purpose=FINGERPRINT_PURPOSE)
        except ClaimsRefused as refused:
            message = ("The access token behind this JWT was revoked or expired." if refused.access_token_gone
                       else "Invalid or expired token.")
            raise exceptions.AuthenticationFailed(message) from None
        return authenticated.user, ApiCredentials(access_token=authenticated.token, claims=claims)

    def authenticate_header(self, request: Request) -> str:
        # Present, so DRF answers 401 (not 403) to a request without credentials.
        return 'Bearer realm="api"'


class JWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "hub.api.JWTAuthentication"
    name = "jwtAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A JWT from POST /v2/users/login or /v2/auth/token (`JWT <jwt>` also works)."}


def request_actor(request: Request) -> Actor:
    """The Actor for the permission rule: the user, capped by the access token behind their JWT."""
    auth = request.auth
    token = auth.access_token if isinstance(auth, ApiCredentials) else None
    return Actor.for_user(request.user, token)


def request_access_token(request: Request) -> AccessToken | None:
    auth = request.auth
    return auth.access_token if isinstance(auth, ApiCredentials) else None


class HubPagination(PageNumberPagination):
    """Docker Hub's pages: `{count, next, previous, results}`; `page_size` above 100 is clamped to 100."""

    page_size = 10
    page_size_query_param = "page_size"
    max_page_size = 100
    page_query_param = "page"


@contextmanager
def service_errors_on(field: str) -> Iterator[None]:
    """A service's ValidationError as a 400 on `field` (`exception_handler` puts it on `detail` otherwise)."""
    try:
        yield
    except DjangoValidationError as exc:
        raise exceptions.ValidationError({field: exc.messages}) from None


def exception_handler(exc: Exception, context: dict) -> Response | None:
    """DRF's handler, plus: service ValidationErrors become 400 field errors, throttled logins 429."""
    # rest_framework.views reads DEFAULT_AUTHENTICATION_CLASSES (this module) while it is imported,
    # so it cannot be imported at the top of this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            exc = exceptions.ValidationError(exc.message_dict)
        else:
            exc = exceptions.ValidationError({"detail": exc.messages})
    elif isinstance(exc, TooManyAttempts):
        exc = exceptions.Throttled(wait=exc.retry_after, detail="Too many failed login attempts.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("Object not found.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    return drf_exception_handler(exc, context)
