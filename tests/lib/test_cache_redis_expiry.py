"""lib.cache counters on Redis never outlive their window, even when the window ends mid-count.

Django's RedisCache.incr is EXISTS then INCRBY: a key that expires between the two is re-created by
INCRBY with no expiry. A failure counter made that way would refuse an account's password logins for
good once it passed the budget (each refusal is taken back, so it never drains). Runs where the suite's
cache is Redis (CI); the expiry is made to fall between the two commands by deleting the key there.
"""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from accounts.throttles import LoginAttempt
from lib.cache import count_up

cache = caches["default"]
pytestmark = pytest.mark.skipif(not isinstance(cache, RedisCache), reason="the suite's cache is not Redis")


@pytest.fixture
def expiring_after_exists(monkeypatch):
    """Every EXISTS finds the key, and the key's window ends right after (as if it expired then)."""
    client_class = type(cache._cache.get_client(None, write=True))
    real_exists = client_class.exists

    def exists_then_expire(self, *names):
        found = real_exists(self, *names)
        self.delete(*names)
        return found

    monkeypatch.setattr(client_class, "exists", exists_then_expire)


def _remaining_seconds(key: str) -> int:
    """Redis TTL of `key`: -1 when it has no expiry, -2 when it does not exist."""
    return cache._cache.get_client(key).ttl(cache.make_and_validate_key(key))


@pytest.fixture
def key():
    key = f"test-counter:{uuid.uuid4().hex}"
    yield key
    cache.delete(key)


def test_a_count_when_the_window_ends_leaves_a_counter_that_expires(key, expiring_after_exists):
    cache.set(key, 7, timeout=300)
    count_up(cache, key, 300)
    assert _remaining_seconds(key) != -1


def test_a_take_back_when_the_window_ends_leaves_no_counter_without_expiry(key, expiring_after_exists):
    cache.set(key, 7, timeout=300)
    LoginAttempt(keys=(key,)).succeeded()
    assert _remaining_seconds(key) != -1
