"""The cache is shared between processes: the database cache by default, Redis when REDIS_URL is set."""

from __future__ import annotations

import uuid

from tests.hub.support import hub_env, run_django, settings_values

COUNTER = """
from django.core.cache import cache
key = {key!r}
if {first!r}:
    cache.set(key, 0, 300)
print(cache.incr(key))
"""


def bump(env: dict[str, str], key: str, *, first: bool = False) -> int:
    """Increment `key` in a new process and return the value that process saw."""
    return int(run_django(env, COUNTER.format(key=key, first=first)).stdout.strip().splitlines()[-1])


def test_cache_defaults_to_the_database_cache(tmp_path):
    caches = settings_values(hub_env(tmp_path), "CACHES")["CACHES"]
    assert caches["default"]["BACKEND"] == "lib.cache.DatabaseCache"


def test_the_database_cache_keeps_enough_entries_that_failure_counters_are_not_culled(tmp_path):
    # Django culls a third of the rows, by key order, past MAX_ENTRIES (default 300): a burst of
    # failures from many addresses would otherwise reset another account's failure counter.
    caches = settings_values(hub_env(tmp_path), "CACHES")["CACHES"]
    assert caches["default"]["OPTIONS"]["MAX_ENTRIES"] >= 100_000


def test_database_cache_counters_are_shared_between_processes(data_dir):
    env = hub_env(data_dir)
    key = f"counter:{uuid.uuid4().hex}"
    assert [bump(env, key, first=True), bump(env, key), bump(env, key)] == [1, 2, 3]


def test_cache_uses_redis_when_redis_url_is_set(tmp_path, redis_url):
    caches = settings_values(hub_env(tmp_path, REDIS_URL=redis_url), "CACHES")["CACHES"]
    assert caches["default"] == {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}


def test_redis_cache_counters_are_shared_between_processes(data_dir, redis_url):
    env = hub_env(data_dir, REDIS_URL=redis_url)
    key = f"counter:{uuid.uuid4().hex}"
    assert [bump(env, key, first=True), bump(env, key), bump(env, key)] == [1, 2, 3]
