"""Failed password logins, counted per account and per address, for every door that takes a password.

The doors: the web login (allauth's form, which the admin goes through), `/token` (Basic and the
password grant), Basic credentials on `/v2/` and the Hub API login (`/v2/users/login`, `/v2/auth/token`).
Each failure counts once against the ACCOUNT it names, whatever identifier names it (username or
email, any case), and once against the caller's address. Past the account's budget (10 per 5 minutes,
across every door and address) password logins are refused, even with the right password, until the
window passes; personal access tokens are not passwords and keep working, so nobody can lock a victim
out of the CLI by guessing their password.

`client_address` is the one place that says who is calling: X-Forwarded-For counts only when
HUB_BEHIND_PROXY is on (then the proxy's hop, the last one), never merely because the peer is loopback.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.http import HttpRequest

from accounts.models import User
from lib.cache import count_down, count_up

# Overridable from settings (REGISTRY_AUTH_*: the names the registry's throttle had first).
FAILURE_WINDOW_SECONDS = 300
MAX_FAILURES_PER_ACCOUNT = 10  # per account, across doors and addresses, in the window
MAX_FAILURES_PER_ADDRESS = 50  # per address, whatever accounts it tries, in the window
MAX_ADDRESS_LENGTH = 64
IN_FLIGHT_WAIT_SECONDS = 10  # how long an attempt waits for others in flight to settle (login_attempt_begin)
PENDING_SECONDS = 120  # an in-flight mark whose request died (a crash between begin and its outcome) expires


class TooManyAttempts(Exception):
    """Too many failed logins for this account or from this address: the door answers 429."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed login attempts; retry in {retry_after} seconds")
        self.retry_after = retry_after


def client_address(request: HttpRequest) -> str:
    """The caller's IP: the peer, or, when HUB_BEHIND_PROXY is on, the hop the proxy appended to
    X-Forwarded-For (the last one; earlier hops are whatever the client wrote)."""
    if settings.HUB_BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-1][:MAX_ADDRESS_LENGTH]
    return request.META.get("REMOTE_ADDR", "")[:MAX_ADDRESS_LENGTH]


def account_for_identifier(identifier: str) -> User | None:
    """The one user this username or email names (any case; any of the account's email addresses, as
    the web login takes them), or None (unknown or ambiguous)."""
    identifier = identifier.strip()
    if not identifier or len(identifier) > 254:
        return None
    if "@" in identifier:
        lookup = Q(email__iexact=identifier) | Q(pk__in=EmailAddress.objects.filter(email__iexact=identifier)
                                                  .values("user_id"))
    else:
        lookup = Q(username=identifier.lower())
    users = list(User.objects.filter(lookup)[:2])
    return users[0] if len(users) == 1 else None


def _limits() -> tuple[int, int, int]:
    return (
        getattr(settings, "REGISTRY_AUTH_FAILURE_WINDOW", FAILURE_WINDOW_SECONDS),
        getattr(settings, "REGISTRY_AUTH_MAX_FAILURES", MAX_FAILURES_PER_ACCOUNT),
        getattr(settings, "REGISTRY_AUTH_MAX_FAILURES_PER_IP", MAX_FAILURES_PER_ADDRESS),
    )


def _digest(value: str) -> str:
    # Hashed: identifiers are client input and cache backends restrict key characters.
    return hashlib.sha256(value.encode(errors="replace")).hexdigest()


def failure_keys(*, identifier: str, address: str, user: User | None) -> tuple[str, str]:
    """The cache keys of the account's and the address's failure counts. An identifier naming no
    account has a budget of its own (by its lowercased text), so unknown names are throttled too."""
    account = f"id:{user.pk}" if user is not None else f"name:{_digest(identifier.strip().lower())}"
    return f"login-failures:account:{account}", f"login-failures:address:{_digest(address)}"


@dataclass
class LoginAttempt:
    """A password attempt, counted as a failure until it is known to have succeeded, and as in flight
    until it is settled either way (`pending`; settling twice does nothing)."""

    keys: tuple[str, ...]
    pending: tuple[str, ...] = ()
    settled: bool = False

    def succeeded(self) -> None:
        """The password was right: take back the failure counted for it."""
        if not self.settled:
            for key in self.keys:
                count_down(cache, key)
        self._settle()

    def failed(self) -> None:
        """The password was wrong (or the account cannot use one, or checking it raised): the failure stays."""
        self._settle()

    def _settle(self) -> None:
        if self.settled:
            return
        self.settled = True
        for key in self.pending:
            count_down(cache, key)


def _pending_key(key: str) -> str:
    return f"{key}:pending"


def _budget_state(budgets: tuple[tuple[str, int], ...]) -> str:
    """"room" while every budget is short of spent; "spent" once failures alone use one up; otherwise
    "in_flight": attempts still being checked (their outcome unknown) use it up, so a wait is the answer.
    Read only (one get_many): nothing is counted."""
    keys = [key for key, _budget in budgets]
    counts = cache.get_many([*keys, *map(_pending_key, keys)])
    state = "room"
    for key, budget in budgets:
        counted = int(counts.get(key) or 0)
        if counted < budget:
            continue
        if counted - int(counts.get(_pending_key(key)) or 0) >= budget:
            return "spent"
        state = "in_flight"
    return state


def _budgets(identifier: str, address: str, user: User | None) -> tuple[int, tuple[tuple[str, int], ...]]:
    """The window, and the account's and the address's failure keys with their budgets."""
    window, per_account, per_address = _limits()
    account_key, address_key = failure_keys(identifier=identifier, address=address, user=user)
    return window, ((account_key, per_account), (address_key, per_address))


def login_budget_left(*, identifier: str, address: str, user: User | None) -> bool:
    """Whether the account's and the address's budgets are both short of spent (attempts in flight
    included), read without counting anything: for a password known to be right (it cannot fail)."""
    return _budget_state(_budgets(identifier, address, user)[1]) == "room"


def login_attempt_begin(*, identifier: str, address: str, user: User | None) -> LoginAttempt:
    """Count a password attempt against the account and the address BEFORE checking the password, so
    that parallel guesses cannot all pass a check made before any of them was counted. Call `succeeded()`
    on the result when the password was right, `failed()` when it was not. The window starts at the first
    failure and is not extended.

    Once either budget is used up, TooManyAttempts (the password is not checked). When what uses it up is
    attempts still in flight rather than failures (a client logging in for twenty pulls at once, with the
    right password), this one waits for them, up to REGISTRY_AUTH_IN_FLIGHT_WAIT seconds, instead of being
    refused: no more than the budget is ever checked at once, so guessing gets no further. While it waits
    it only reads the counters; it counts itself again once they show room."""
    window, budgets = _budgets(identifier, address, user)
    keys = tuple(key for key, _budget in budgets)
    pending = tuple(map(_pending_key, keys))
    deadline = time.monotonic() + float(getattr(settings, "REGISTRY_AUTH_IN_FLIGHT_WAIT", IN_FLIGHT_WAIT_SECONDS))
    while True:
        for key in pending:  # before the failure count, so it never looks like more failures than there are
            count_up(cache, key, PENDING_SECONDS)
        attempt = LoginAttempt(keys=keys, pending=pending)
        counts = [count_up(cache, key, window) for key in keys]  # both counted, whatever the first says
        if all(count <= budget for count, (_key, budget) in zip(counts, budgets, strict=True)):
            return attempt
        # Refused unchecked, so it is no failure: counted, it would outlast the attempts in flight that
        # caused it (the right password, sent in parallel by a client) and lock the account for the window.
        attempt.succeeded()
        while (state := _budget_state(budgets)) == "in_flight" and time.monotonic() < deadline:
            time.sleep(random.uniform(0.02, 0.08))
        if state != "room" or time.monotonic() >= deadline:
            raise TooManyAttempts(retry_after=window)
