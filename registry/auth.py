"""Who is calling the registry: Basic credentials (a password or a personal access token).

Used by the token service (`/token`), Basic credentials on `/v2/` and the Hub API login. Failed
passwords count against the account and the address (accounts.throttles, shared through the Django
cache by every door, worker process and node).
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass

from django.conf import settings

from accounts.models import AccessToken, User
from accounts.services import access_token_authenticate, user_has_mfa
from accounts.throttles import (
    TooManyAttempts,
    account_for_identifier,
    client_address,
    login_attempt_begin,
)

__all__ = ["AccessTokenRequired", "Authenticated", "TooManyAttempts", "authenticate_credentials",
           "client_address", "parse_basic_authorization"]

logger = logging.getLogger(__name__)

MAX_CREDENTIAL_LENGTH = 1024


@dataclass(frozen=True)
class Authenticated:
    user: User
    token: AccessToken | None = None  # the personal access token used, or None for a password


class AccessTokenRequired(Exception):
    """A password for an account with two-factor authentication: only an access token logs in."""

    def __init__(self) -> None:
        super().__init__(
            "two-factor authentication is enabled on this account: log in with a personal access token "
            f"instead of your password (create one at {settings.HUB_PUBLIC_URL}/settings/tokens)"
        )


def _password_matches(user: User | None, password: str) -> bool:
    if user is None:
        # Hash anyway so an unknown username takes as long as a wrong password.
        User().set_password(password)
        return False
    return user.check_password(password)  # constant-time comparison inside


def authenticate_credentials(username: str, password: str, *, remote_addr: str = "") -> Authenticated | None:
    """The account these Basic credentials belong to, or None.

    A personal access token or a password works, and the username may be the email address. A valid
    access token always works; a password is refused (TooManyAttempts) once the account or the
    address has used its failure budget, before any hashing work; a refused one counts as a failure.
    Accounts with two-factor authentication must use a token: their password raises AccessTokenRequired.
    """
    oversized = len(username) > MAX_CREDENTIAL_LENGTH or len(password) > MAX_CREDENTIAL_LENGTH
    if not oversized and AccessToken.looks_like_token(password):
        token = access_token_authenticate(username=username, secret=password)
        if token is not None:
            return Authenticated(user=token.user, token=token)
    user = None if oversized or not username else account_for_identifier(username)
    attempt = login_attempt_begin(identifier=username, address=remote_addr, user=user)
    # Said whether or not the password matched, so the answer never tells a right password from a wrong one.
    needs_token = user is not None and user.is_active and user_has_mfa(user)
    reason = ""
    if not username or not password or oversized:
        reason = "empty or oversized credentials"
    elif not _password_matches(user, password):
        reason = "unknown user, wrong password or unusable token"
    elif not user.is_active:
        reason = "inactive account"
    elif needs_token:
        reason = "two-factor authentication is on: a personal access token is required"
    if reason:
        logger.info("registry login refused for %r from %s: %s", username[:100], remote_addr, reason)
        if needs_token:
            raise AccessTokenRequired
        return None
    attempt.succeeded()
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

