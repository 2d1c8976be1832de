"""Who is calling the registry: Basic credentials (a password or a personal access token).

Used by the token service (`/token`). Failed attempts are throttled per (username, IP) and per IP
through the Django cache, so every worker process and node shares the counts.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.http import HttpRequest

from accounts.models import AccessToken, User
from accounts.services import access_token_authenticate, user_has_mfa
from hub.cache import count_up

logger = logging.getLogger(__name__)

# Overridable from settings; the defaults match allauth's login_failed rate for one account.
FAILURE_WINDOW_SECONDS = 300
MAX_FAILURES_PER_ACCOUNT = 10  # per (username, IP) in the window
MAX_FAILURES_PER_IP = 50  # per IP in the window, whatever usernames it tries
MAX_CREDENTIAL_LENGTH = 1024


@dataclass(frozen=True)
class Authenticated:
    user: User
    token: AccessToken | None = None  # the personal access token used, or None for a password


class TooManyAttempts(Exception):
    """Too many failed attempts from this address: the caller answers 429 TOOMANYREQUESTS."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed login attempts; retry in {retry_after} seconds")
        self.retry_after = retry_after


def _limits() -> tuple[int, int, int]:
    return (
        getattr(settings, "REGISTRY_AUTH_FAILURE_WINDOW", FAILURE_WINDOW_SECONDS),
        getattr(settings, "REGISTRY_AUTH_MAX_FAILURES", MAX_FAILURES_PER_ACCOUNT),
        getattr(settings, "REGISTRY_AUTH_MAX_FAILURES_PER_IP", MAX_FAILURES_PER_IP),
    )


def _throttle_keys(username: str, remote_addr: str) -> tuple[str, str]:
    # Hash: usernames are client input and cache backends restrict key characters.
    account = hashlib.sha256(f"{username.lower()}\0{remote_addr}".encode(errors="replace")).hexdigest()
    address = hashlib.sha256(remote_addr.encode(errors="replace")).hexdigest()
    return f"registry-auth-fail:a:{account}", f"registry-auth-fail:ip:{address}"


def check_throttle(username: str, remote_addr: str) -> None:
    """Raise TooManyAttempts when this account or address has failed too often recently."""
    window, per_account, per_ip = _limits()
    account_key, ip_key = _throttle_keys(username, remote_addr)
    counts = cache.get_many([account_key, ip_key])
    if counts.get(account_key, 0) >= per_account or counts.get(ip_key, 0) >= per_ip:
        raise TooManyAttempts(retry_after=window)


def record_failure(username: str, remote_addr: str) -> None:
    window, _, _ = _limits()
    for key in _throttle_keys(username, remote_addr):
        count_up(cache, key, window)


def _clear_account_failures(username: str, remote_addr: str) -> None:
    account_key, _ = _throttle_keys(username, remote_addr)
    cache.delete(account_key)


def _find_user(username: str) -> User | None:
    """The one user with this username or email (case-insensitive), or None."""
    lookup = Q(email__iexact=username) if "@" in username else Q(username=username.lower())
    users = list(User.objects.filter(lookup)[:2])
    return users[0] if len(users) == 1 else None


def _check_password(username: str, password: str) -> User | None:
    user = _find_user(username)
    if user is None:
        # Hash anyway so an unknown username takes as long as a wrong password.
        User().set_password(password)
        return None
    if not user.check_password(password):  # constant-time comparison inside
        return None
    return user


def authenticate_credentials(username: str, password: str, *, remote_addr: str = "") -> Authenticated | None:
    """The account these Basic credentials belong to, or None.

    A password or a personal access token works, and the username may be the email address.
    Accounts with two-factor authentication must use a token. Raises TooManyAttempts when this
    account or address has failed too often: check before doing any hashing work.
    """
    check_throttle(username, remote_addr)
    if not username or not password or len(username) > MAX_CREDENTIAL_LENGTH or len(password) > MAX_CREDENTIAL_LENGTH:
        record_failure(username, remote_addr)
        logger.info("registry login refused for %r from %s: empty or oversized credentials",
                    username[:100], remote_addr)
        return None

    if AccessToken.looks_like_token(password):
        token = access_token_authenticate(username=username, secret=password)
        if token is not None:
            _clear_account_failures(username, remote_addr)
            return Authenticated(user=token.user, token=token)

    user = _check_password(username, password)
    reason = ""
    if user is None:
        reason = "unknown user, wrong password or unusable token"
    elif not user.is_active:
        reason = "inactive account"
    elif user_has_mfa(user):
        reason = "two-factor authentication is on: a personal access token is required"
    if reason:
        record_failure(username, remote_addr)
        logger.info("registry login refused for %r from %s: %s", username[:100], remote_addr, reason)
        return None
    _clear_account_failures(username, remote_addr)
    return Authenticated(user=user, token=None)


def parse_basic_authorization(header: str | bytes | None) -> tuple[str, str] | None:
    """(username, password) from an `Authorization: Basic …` header, or None. Never raises."""
    if not header:
        return None
    if isinstance(header, bytes):
        header = header.decode("latin-1")  # decodes every byte string
    if not isinstance(header, str):
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    encoded = encoded.strip()
    if not encoded or len(encoded) > 4 * MAX_CREDENTIAL_LENGTH:
        return None
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # bad base64, bad padding, not UTF-8
        return None
    username, colon, password = decoded.partition(":")
    if not colon:
        return None
    return username, password


def client_address(request: HttpRequest) -> str:
    """The caller's IP: the proxy's last X-Forwarded-For hop when Wharf runs behind one."""
    if settings.SECURE_PROXY_SSL_HEADER is not None:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1][:64]
    return request.META.get("REMOTE_ADDR", "")[:64]
