"""The embedded cache backend: Django's database cache with counters that cannot lose updates.

Django's `DatabaseCache.incr` is a `get` and then a `set` with nothing between them, so two
processes that count the same failed login can both read 3 and both write 4. The login failure
budget (accounts/throttles.py, through `count_up`/`count_down` below) would under-count parallel guesses.

Here `incr` (and `decr`, which calls it) reads and writes inside one transaction that holds the
row's write lock: `SELECT … FOR UPDATE` on databases that have it (PostgreSQL), and on SQLite the
`BEGIN IMMEDIATE` that hub/settings.py configures (`transaction_mode`), which takes the database's
write lock when the transaction opens. The counter keeps its expiry, as Redis INCR does; Django's
`incr` would reset it to the default timeout. Everything else is Django's `DatabaseCache`.
"""

from __future__ import annotations

import base64
import pickle
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache.backends import db
from django.core.cache.backends.redis import RedisCache
from django.db import connections, router, transaction
from django.utils.connection import ConnectionProxy


class DatabaseCache(db.DatabaseCache):
    """Django's database cache with atomic `incr` and `decr`."""

    def incr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """Add `delta` to the value at `key` and return it; ValueError when the key is missing or expired."""
        alias = router.db_for_write(self.cache_model_class)
        connection = connections[alias]
        quote_name = connection.ops.quote_name
        table = quote_name(self._table)
        cache_key = self.make_and_validate_key(key, version=version)
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            if connection.features.has_select_for_update:
                # Waits for any other incr of this key to commit; then get() reads its result.
                cursor.execute(  # table and column names are quoted identifiers, the key a parameter
                    f"SELECT 1 FROM {table} WHERE {quote_name('cache_key')} = %s FOR UPDATE",  # noqa: S608
                    [cache_key],
                )
            value = self.get(key, self._missing_key, version=version)
            if value is self._missing_key:
                raise ValueError(f"Key '{key}' not found")
            new_value = value + delta
            # Stored as DatabaseCache._base_set stores values; the expiry is left as it is.
            encoded = base64.b64encode(pickle.dumps(new_value, self.pickle_protocol)).decode("latin1")
            cursor.execute(
                f"UPDATE {table} SET {quote_name('value')} = %s WHERE {quote_name('cache_key')} = %s",  # noqa: S608
                [encoded, cache_key],
            )
        return new_value

    async def aincr(self, key: Any, delta: int = 1, version: int | None = None) -> Any:
        """See incr(). BaseCache.aincr would do its own aget and aset, which are not atomic."""
        return await sync_to_async(self.incr, thread_sensitive=True)(key, delta, version)


# Django's RedisCache.incr is EXISTS then INCRBY: a key expiring between the two comes back from INCRBY
# with no expiry, and a failure counter would then never end. One script each, so nothing comes between.
_REDIS_COUNT_UP = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return count
"""
_REDIS_TAKE_BACK = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local count = redis.call('DECRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('DEL', KEYS[1]) end
return count
"""


def _backend(cache) -> Any:
    """The cache itself for `django.core.cache.cache`, a proxy to the default one."""
    return cache._connections[cache._alias] if isinstance(cache, ConnectionProxy) else cache


def _redis_eval(cache, script: str, key: str, *args: int) -> Any:
    raw_key = cache.make_and_validate_key(key)
    return cache._cache.get_client(raw_key, write=True).eval(script, 1, raw_key, *args)


def count_up(cache, key: str, timeout: float) -> int:
    """One more at `key` (made with `timeout` if new), atomically on any backend that has an atomic
    `incr` (Redis, locmem, the DatabaseCache above); returns the new count."""
    cache = _backend(cache)
    if isinstance(cache, RedisCache):
        return int(_redis_eval(cache, _REDIS_COUNT_UP, key, 1, max(1, int(timeout * 1000))))
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=timeout)
        return 1


def count_down(cache, key: str) -> None:
    """One less at `key`, if it still exists (a counter whose window ended stays ended)."""
    cache = _backend(cache)
    if isinstance(cache, RedisCache):
        _redis_eval(cache, _REDIS_TAKE_BACK, key, 1)
        return
    try:
        cache.decr(key)
    except ValueError:  # the window ended meanwhile
        pass
