"""Credential checking for every door: Basic credentials (a password or a personal access token) and
the claims of the hub's own signed tokens (Hub API JWTs, registry refresh tokens).

`authenticate_credentials` serves the token service (`/token`), Basic credentials on `/v2/` and the
Hub API login; organization access tokens (accounts/org_tokens.py) work at the registry's doors only.
Failed passwords count against the account and the address (accounts.throttles,
shared through the Django cache by every door, worker process and node). `user_for_claims` is the
one "claims → user" check: the account, and the access token or the password and credentials epoch
the token came from, must all still stand.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts import audit
from accounts.models import AccessToken, OrganizationAccessToken, User
from accounts.org_tokens import org_access_token_authenticate
from accounts.services import access_token_authenticate, user_has_mfa
from accounts.throttles import (
    TooManyAttempts,
    account_for_identifier,
    client_address,
    login_attempt_begin,
    login_budget_left,
)

__all__ = ["AccessTokenRequired", "Authenticated", "ClaimsRefused", "OrganizationTokenNotAccepted", "TooManyAttempts",
           "authenticate_credentials", "authenticate_registry_credentials", "client_address",
           "parse_basic_authorization", "password_fingerprint", "user_for_claims"]

logger = logging.getLogger(__name__)

MAX_CREDENTIAL_LENGTH = 1024


@dataclass(frozen=True)
class Authenticated:
    user: User | None  # None only for an organization access token (registry doors only)
    token: AccessToken | None = None  # the personal access token used, or None for a password
    organization_token: OrganizationAccessToken | None = None  # then `user` is None


class AccessTokenRequired(Exception):
    """A password for an account with two-factor authentication, or for one made through single sign-on
    (no password): only an access token logs in."""

    def __init__(self, *, no_password: bool = False) -> None:
        why = ("this account signs in through single sign-on and has no password" if no_password
               else "two-factor authentication is enabled on this account")
        super().__init__(
            f"{why}: log in with a personal access token "
            f"instead of your password (create one at {settings.HUB_PUBLIC_URL}/settings/tokens)"
        )


class OrganizationTokenNotAccepted(AccessTokenRequired):
    """An organization access token at a door that is not the registry's (the Hub API login): refused,
    whatever the token, with a message saying where it works. Doors answer it as AccessTokenRequired (401)."""

    def __init__(self) -> None:
        Exception.__init__(
            self, "organization access tokens only log in to the registry (docker login -u <organization>); "
                  "they cannot sign in to the Hub API")


class BoundedLRU:
    """A thread-safe mapping of at most `size` entries that forgets the least recently used first: the
    process-memory tables below share it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Any:
        """The value (now the most recently used), or None."""
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def pop(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class VerifiedPasswords:
    """Passwords this process has verified lately, so that a client logging in for every pull (`docker`,
    `podman` and `skopeo` send the stored password to `/token` each time) costs one Argon2 check per
    VERIFIED_SECONDS rather than one per request (~20 MiB and tens of milliseconds each).

    Kept in this process's memory only, never in the shared cache: an HMAC (keyed with SECRET_KEY) of the
    account, its credentials epoch, its stored password hash and the password, so a new password, a rehash,
    turning 2FA on or deactivating ends the entry at once. Only passwords that logged in are remembered
    (authenticate_credentials, after every check): a wrong one, or the right one of an account that must use
    a token, always pays the full check, so the time taken tells nothing the answer does not. Bounded (LRU)."""

    def __init__(self, seconds: float = 300, size: int = 2048) -> None:
        self.seconds = seconds
        self._entries = BoundedLRU(size)  # key → when it was verified
        self._checks: dict[str, threading.Event] = {}  # full checks under way: checking()
        self._lock = threading.Lock()

    @staticmethod
    def _key(user: User, password: str) -> str:
        return salted_hmac("wharf.verified-password",
                           f"{user.pk}\0{user.credentials_epoch}\0{user.password}\0{password}",
                           algorithm="sha256").hexdigest()

    def known(self, user: User, password: str) -> bool:
        key = self._key(user, password)
        verified_at = self._entries.get(key)
        if verified_at is None:
            return False
        if time.monotonic() - verified_at > self.seconds:
            self._entries.pop(key)
            return False
        return True

    def remember(self, user: User, password: str) -> None:
        self._entries.put(self._key(user, password), time.monotonic())

    def clear(self) -> None:
        self._entries.clear()

    @contextlib.contextmanager
    def checking(self, user: User, password: str, *, wait: float = 10.0) -> Iterator[bool]:
        """One full check at a time per account and password in this process: clients that start together
        (sixteen pulls sending the same stored password) would otherwise each pay Argon2 before the first
        remembered it. The first caller checks (this yields False); the others wait for it, up to `wait`
        seconds, and this yields whether the password is now known. A wrong password is never remembered,
        so whoever waited on one still checks it in full."""
        key = self._key(user, password)
        with self._lock:
            running = self._checks.get(key)
            first = running is None
            if first:
                running = self._checks[key] = threading.Event()
        if not first:
            running.wait(wait)
            yield self.known(user, password)
            return
        try:
            yield False
        finally:
            with self._lock:
                self._checks.pop(key, None)
            running.set()


verified_passwords = VerifiedPasswords()


def _password_matches(user: User | None, password: str) -> bool:
    if user is None:
        # Hash anyway so an unknown username takes as long as a wrong password.
        User().set_password(password)
        return False
    return verified_passwords.known(user, password) or user.check_password(password)  # constant-time inside


def authenticate_credentials(username: str, password: str, *, remote_addr: str = "",
                             door: str = "registry") -> Authenticated | None:
    """The account these Basic credentials belong to, or None.

    A personal access token or a password works, and the username may be the email address. A valid
    access token always works; a password is refused (TooManyAttempts) once the account or the
    address has used its failure budget, before any hashing work; a refused one counts as a failure.
    Accounts with two-factor authentication, and those without a password (made through single sign-on),
    must use a token: a password raises AccessTokenRequired.
    """
    oversized = len(username) > MAX_CREDENTIAL_LENGTH or len(password) > MAX_CREDENTIAL_LENGTH
    if not oversized and AccessToken.looks_like_token(password):
        token = access_token_authenticate(username=username, secret=password)
        if token is not None:
            return Authenticated(user=token.user, token=token)
    if not oversized and OrganizationAccessToken.looks_like_token(password):
        raise OrganizationTokenNotAccepted  # the registry's doors take them: authenticate_registry_credentials
    user = None if oversized or not username else account_for_identifier(username)
    eligible = user is not None and user.is_active and bool(password)

    def remembered() -> bool:
        # A password that logged in lately (and nothing about the account's credentials changed since) is no
        # guess: nothing to count or take back. Without room in the budget it takes the full path, which waits
        # for attempts in flight and refuses once the budget is spent.
        return login_budget_left(identifier=username, address=remote_addr, user=user)

    if eligible and verified_passwords.known(user, password) and remembered():
        return _logged_in(user, remote_addr, door)
    if not eligible:
        return _check_password(user, username, password, oversized=oversized, remote_addr=remote_addr, door=door)
    with verified_passwords.checking(user, password) as known_now:
        if known_now and remembered():  # the same password, checked by a request that came first
            return _logged_in(user, remote_addr, door)
        return _check_password(user, username, password, oversized=oversized, remote_addr=remote_addr, door=door)


def _check_password(user: User | None, username: str, password: str, *, oversized: bool, remote_addr: str,
                    door: str) -> Authenticated | None:
    attempt = login_attempt_begin(identifier=username, address=remote_addr, user=user)
    try:
        # Said whether or not the password matched, so the answer never tells a right password from a wrong one.
        no_password = user is not None and user.is_active and not user.has_usable_password()  # single sign-on's
        needs_token = user is not None and user.is_active and (no_password or user_has_mfa(user))
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
            if user is not None:  # only accounts that exist get a failed sign-in in their log
                audit.record("account.login_failed", account=audit.user_account(user), name=user.username,
                             actor=user, address=remote_addr, data={"door": door})
            if needs_token:
                raise AccessTokenRequired(no_password=no_password)
            return None
        attempt.succeeded()
    finally:
        attempt.failed()  # settles it unless succeeded() did: a wrong password, or an error on the way
    verified_passwords.remember(user, password)  # after check_password, which may have rehashed it
    return _logged_in(user, remote_addr, door)


def _logged_in(user: User, remote_addr: str, door: str) -> Authenticated:
    if door == "registry":
        _audit_registry_login(user, remote_addr)
    else:  # a Hub API session
        audit.record("account.login", account=audit.user_account(user), name=user.username, actor=user,
                     address=remote_addr, data={"door": door})
    return Authenticated(user=user, token=None)


class SeenMarkers:
    """Cache keys this process already knows are taken, so that it asks the cache for each at most once:
    the audit's once-a-day markers, which every password login on `/token` would otherwise try to add
    (a write transaction per token on the database cache). Bounded (LRU)."""

    def __init__(self, size: int = 4096) -> None:
        self._keys = BoundedLRU(size)

    def seen(self, key: str) -> bool:
        return self._keys.get(key) is not None

    def add(self, key: str) -> None:
        self._keys.put(key, True)

    def clear(self) -> None:
        self._keys.clear()


audited_registry_logins = SeenMarkers()


def _audit_registry_login(user: User, address: str) -> None:
    """A registry login with the password, at most once per account, address and day: clients with
    stored credentials log in for every pull. The cache's marker says whether any process recorded it
    today; once this process has seen it taken, it does not ask again that day."""
    day = timezone.now().date().isoformat()
    marker = "audit-registry-login:" + hashlib.sha256(f"{user.pk}|{address}|{day}".encode()).hexdigest()[:32]
    seen = f"{marker}|{user.username}"  # a reused id (a deleted account's) is another account
    if audited_registry_logins.seen(seen):
        return
    if cache.add(marker, 1, timeout=86400):
        audit.record("account.registry_login", account=audit.user_account(user), name=user.username, actor=user,
                     address=address)
    audited_registry_logins.add(seen)


def authenticate_registry_credentials(username: str, password: str, *, remote_addr: str = "",
                                      **options) -> Authenticated | None:
    """`authenticate_credentials` for the registry's doors (`/token`, Basic credentials on `/v2/`), which
    also take an organization access token with the organization's name as the username: then `user`
    is None and `organization_token` is set. One that does not stand (unknown, another organization's,
    revoked, inactive, expired) is a failed login like a wrong password: counted against the name and
    the address (TooManyAttempts once either budget is used up), and answered None."""
    oversized = len(username) > MAX_CREDENTIAL_LENGTH or len(password) > MAX_CREDENTIAL_LENGTH
    if oversized or not OrganizationAccessToken.looks_like_token(password):
        return authenticate_credentials(username, password, remote_addr=remote_addr, **options)
    organization_token = org_access_token_authenticate(username=username, secret=password)
    if organization_token is not None:
        return Authenticated(user=None, organization_token=organization_token)
    user = account_for_identifier(username) if username else None
    login_attempt_begin(identifier=username, address=remote_addr, user=user).failed()  # never taken back
    logger.info("registry login refused for %r from %s: unusable organization access token", username[:100],
                remote_addr)
    return None


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


# --- The claims of the hub's own signed tokens ----------------------------------------------------


class ClaimsRefused(Exception):
    """A token's claims no longer name standing credentials; the message says why (for the logs)."""

    def __init__(self, reason: str, *, access_token_gone: bool = False) -> None:
        super().__init__(reason)
        self.access_token_gone = access_token_gone  # the personal access token behind it was revoked or expired


def password_fingerprint(user: User, purpose: str) -> str:
    """Changes with the password, so a new password ends what the old one started; one salt per kind of token."""
    return salted_hmac(purpose, user.password, algorithm="sha256").hexdigest()[:32]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def user_for_claims(claims: Mapping[str, Any], *, fingerprint_purpose: str) -> Authenticated:
    """The account behind a verified token's claims, if the user, the login and any access token still stand.

    Claims: `uid` and `sub` (the account), then `pat` (the personal access token it came from) or
    `pwd` (password_fingerprint with `fingerprint_purpose`) and `ep` (the credentials epoch; none means
    issued before epochs existed, when every account's was 0). A password's token stops when two-factor
    authentication is on. Raises ClaimsRefused.
    """
    uid, subject = claims.get("uid"), claims.get("sub")
    if not _is_int(uid) or not isinstance(subject, str):
        raise ClaimsRefused("malformed claims")
    user = User.objects.filter(pk=uid, username=subject, is_active=True).first()
    if user is None:
        raise ClaimsRefused("unknown or inactive account")
    if "pat" in claims:
        pat = claims["pat"]
        access_token = AccessToken.objects.filter(pk=pat, user=user).first() if _is_int(pat) else None
        if access_token is None or not access_token.is_active():
            raise ClaimsRefused(f"access token {pat} is revoked or expired", access_token_gone=True)
        return Authenticated(user=user, token=access_token)
    if user_has_mfa(user):
        raise ClaimsRefused("two-factor authentication requires an access token")
    fingerprint = claims.get("pwd")
    if not isinstance(fingerprint, str) or not constant_time_compare(
            fingerprint, password_fingerprint(user, fingerprint_purpose)):
        raise ClaimsRefused("the password changed")
    if claims.get("ep", 0) != user.credentials_epoch:
        raise ClaimsRefused("issued before the password changed or 2FA was turned on")
    return Authenticated(user=user, token=None)
