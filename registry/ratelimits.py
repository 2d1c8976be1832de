"""Pull rate limits as Docker Hub has them, with its headers, and the per-address abuse limit.

A manifest GET that counts as a pull (registry/pulls.py: not an attachment, not the child of an
index the same client just pulled) takes one from the caller's budget: per account for a signed-in
client, per address for an anonymous one (an IPv6 /64 as one address). HEAD never counts. Every
manifest GET and HEAD answer carries `ratelimit-limit: 100;w=21600`, `ratelimit-remaining: 76;w=21600`
(what is left after this request) and `docker-ratelimit-source`, an opaque id of the address or
account. Past the limit the GET is refused with 429 TOOMANYREQUESTS and the same headers; a refused
request takes nothing.

A signed-in account's limit is its plan (Namespace.pull_limit), else the largest plan of its
organizations, else HUB_PULL_LIMIT_USER; the token service writes it into the registry token
(`pl`), so the hot path reads no database. With HUB_PULL_LIMIT_ANONYMOUS and HUB_PULL_LIMIT_USER
both 0 nothing is counted and nothing is added to a request.

Counters: Redis when REDIS_URL is set (every node shares them, an atomic script per request), else
a memory-mapped file in the data dir shared by the node's processes (lib/counters.py): no database
write either way, and both survive a restart within their window.
"""

from __future__ import annotations

import functools
import ipaddress
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import salted_hmac

from accounts.models import Namespace, User
from accounts.throttles import client_address
from lib.counters import Count, FileCounters
from registry.errors import TooManyRequests

REDIS_PREFIX = "wharf:ratelimit:"
# INCRBY, then give a new key its window; a count taken back to 0 ends the key.
_REDIS_ADD = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if value <= 0 then redis.call('DEL', KEYS[1]) return {0, 0} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) ttl = tonumber(ARGV[2]) end
return {value, ttl}
"""


def pull_limits_on() -> bool:
    return bool(settings.HUB_PULL_LIMIT_ANONYMOUS or settings.HUB_PULL_LIMIT_USER)


# --- Limits ---------------------------------------------------------------------------------------


def account_pull_limit(user: User) -> int:
    """A signed-in account's pulls per window (0: unlimited): its plan, else its organizations' largest
    plan (an unlimited one wins), else the site's default."""
    own = Namespace.objects.filter(user=user).values_list("pull_limit", flat=True).first()
    if own is not None:
        return own
    plans = Namespace.objects.filter(organization__teams__memberships__user=user, pull_limit__isnull=False)
    if plans.filter(pull_limit=0).exists():
        return 0
    best = plans.aggregate(best=Max("pull_limit"))["best"]
    return best if best is not None else settings.HUB_PULL_LIMIT_USER


def organization_pull_limit(organization_id: int) -> int:
    """An organization access token's pulls per window (0: unlimited): the organization's plan, else the
    site's default for accounts."""
    plan = Namespace.objects.filter(organization_id=organization_id).values_list("pull_limit", flat=True).first()
    return plan if plan is not None else settings.HUB_PULL_LIMIT_USER


def address_key(address: str) -> str:
    """An address as it is counted: an IPv6 client's /64 is one address."""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass(frozen=True)
class PullBudget:
    key: str
    limit: int
    anonymous: bool

    @property
    def window(self) -> int:
        return settings.HUB_PULL_LIMIT_WINDOW_SECONDS

    @property
    def source(self) -> str:
        return _source(self.key, settings.SECRET_KEY)


@functools.lru_cache(maxsize=4096)
def _source(key: str, secret: str) -> str:
    """An opaque, stable id of a budget's key (an HMAC: the address or account cannot be read back)."""
    return salted_hmac("wharf.registry.ratelimit-source", key, secret=secret).hexdigest()[:32]


def pull_budget(request: HttpRequest, access) -> PullBudget | None:
    """The budget a manifest GET or HEAD of this caller draws on; None when nothing limits it."""
    if not pull_limits_on():
        return None
    if access.username:
        limit = getattr(access.claims, "pull_limit", None)
        if limit is None:
            user = access.user
            limit = account_pull_limit(user) if user is not None else settings.HUB_PULL_LIMIT_USER
        key, anonymous = f"user:{access.username.lower()}", False
    else:
        limit = settings.HUB_PULL_LIMIT_ANONYMOUS
        key, anonymous = f"address:{address_key(client_address(request))}", True
    return PullBudget(key=key, limit=limit, anonymous=anonymous) if limit else None


# --- Counting -------------------------------------------------------------------------------------


class RedisCounters:
    def __init__(self, url: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url)
        self.script = self.client.register_script(_REDIS_ADD)

    def add(self, key: str, window_seconds: float, amount: int = 1) -> Count:
        value, ttl_ms = self.script(keys=[REDIS_PREFIX + key], args=[amount, max(1, int(window_seconds * 1000))])
        return Count(int(value), time.time() + int(ttl_ms) / 1000)

    def get(self, key: str) -> Count:
        pipe = self.client.pipeline(transaction=False)
        pipe.get(REDIS_PREFIX + key)
        pipe.pttl(REDIS_PREFIX + key)
        value, ttl_ms = pipe.execute()
        if value is None or ttl_ms < 0:
            return Count(0, time.time())
        return Count(int(value), time.time() + ttl_ms / 1000)


@functools.cache
def _counters_for(redis_url: str, data_dir) -> RedisCounters | FileCounters:
    if redis_url:
        return RedisCounters(redis_url)
    return FileCounters(Path(data_dir) / "ratelimits.bin")


def counters() -> RedisCounters | FileCounters:
    return _counters_for(settings.REDIS_URL or "", settings.DATA_DIR)


@dataclass(frozen=True)
class PullUsage:
    budget: PullBudget
    count: Count

    @property
    def remaining(self) -> int:
        return max(0, self.budget.limit - self.count.value)

    def headers(self) -> dict[str, str]:
        window = self.budget.window
        return {"ratelimit-limit": f"{self.budget.limit};w={window}",
                "ratelimit-remaining": f"{self.remaining};w={window}",
                "docker-ratelimit-source": self.budget.source}


def take_pull(budget: PullBudget) -> PullUsage:
    """One pull from `budget`, or TooManyRequests (taking nothing) when none is left."""
    store = counters()
    count = store.add(budget.key, budget.window)
    if count.value <= budget.limit:
        return PullUsage(budget, count)
    count = store.add(budget.key, budget.window, -1)
    usage = PullUsage(budget, count)
    raise TooManyRequests(_refusal_message(budget, count), headers=usage.headers(),
                          detail={"limit": budget.limit, "window_seconds": budget.window})


def peek_pulls(budget: PullBudget) -> PullUsage:
    return PullUsage(budget, counters().get(budget.key))


def _refusal_message(budget: PullBudget, count: Count) -> str:
    resets = datetime.fromtimestamp(count.resets_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    hours = budget.window / 3600
    window = f"{hours:g} hours" if hours >= 1 else f"{budget.window} seconds"
    who = "this address" if budget.anonymous else "this account"
    message = (f"You have reached your pull rate limit: {budget.limit} pulls per {window} for {who}. "
               f"It resets at {resets}.")
    if budget.anonymous and (settings.HUB_PULL_LIMIT_USER == 0
                             or settings.HUB_PULL_LIMIT_USER > settings.HUB_PULL_LIMIT_ANONYMOUS):
        message += " Signing in raises the limit."
    return message


# --- The abuse limit ------------------------------------------------------------------------------


def abuse_refusal(request: HttpRequest) -> HttpResponse | None:
    """A bare 429 once an address has made HUB_REGISTRY_ABUSE_LIMIT_PER_MINUTE registry requests this
    minute; None otherwise (and always when the limit is off)."""
    limit = settings.HUB_REGISTRY_ABUSE_LIMIT_PER_MINUTE
    if not limit:
        return None
    count = counters().add(f"abuse:{address_key(client_address(request))}", 60)
    if count.value <= limit:
        return None
    response = HttpResponse(status=429)
    response["Retry-After"] = str(max(1, int(count.resets_at - time.time()) + 1))
    return response
