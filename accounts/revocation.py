"""When credentials were last revoked, as every process sees it within seconds, without a query per request.

Revoking or deleting a personal access token, and moving an account's credentials epoch (password
changed, two-factor authentication turned on, account deactivated or deleted) announce a revocation:
the time is written to the cache, which every process and node shares (Redis, or on the embedded
setup the database cache). Each process reads it again at most every REVOCATION_REFRESH_SECONDS (2 by
default) and keeps it in memory; registry bearer tokens issued before it are checked against the database once
(registry.tokens), so a revoked token stops working within seconds while the hot path stays in memory.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

EPOCH_KEY = "accounts:revocation-epoch"


class _Seen:
    def __init__(self) -> None:
        self.epoch = 0.0
        self.read_at = float("-inf")  # time.monotonic() of the last read
        self.lock = threading.Lock()


_seen = _Seen()


def _announce() -> None:
    now = time.time()
    cache.set(EPOCH_KEY, now, timeout=None)
    with _seen.lock:
        _seen.epoch = max(_seen.epoch, now)


def credentials_revoked() -> None:
    """Announce a revocation now and again when the current transaction commits: a process that checks
    a token between the two may still see it valid, and then checks it again after the second."""
    _announce()
    transaction.on_commit(_announce)


def revocation_epoch() -> float:
    """The time of the last revocation anywhere, as this process last read it from the cache (at most
    REVOCATION_REFRESH_SECONDS ago)."""
    now = time.monotonic()
    refresh = settings.REVOCATION_REFRESH_SECONDS  # a defined setting: read from LazySettings' own dict
    if now - _seen.read_at < refresh:
        return _seen.epoch
    with _seen.lock:
        if now - _seen.read_at < refresh:
            return _seen.epoch
        value = cache.get(EPOCH_KEY)
        if value is None:
            # Never written, or lost (evicted, culled, a flushed cache): everything issued before now
            # is checked once more, which is safe.
            cache.add(EPOCH_KEY, time.time(), timeout=None)
            value = cache.get(EPOCH_KEY, time.time())
        _seen.epoch = float(value)
        _seen.read_at = now
        return _seen.epoch
