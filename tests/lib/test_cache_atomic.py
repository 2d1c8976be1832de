"""lib.cache.DatabaseCache: parallel writers cannot under-count a counter (the embedded cache, no Redis).

Runs on the suite's database: PostgreSQL in the main suite, and the SQLite file database with
`-m sqlite`. The main suite's CACHES is Redis, so each test builds the database cache itself.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.cache import cache as default_cache
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection, connections

from accounts.throttles import failure_keys, login_attempt_begin
from lib.cache import DatabaseCache

pytestmark = [pytest.mark.sqlite, pytest.mark.django_db(transaction=True)]

TABLE = "hub_cache"
BACKEND = "lib.cache.DatabaseCache"
THREADS = 8
TIMES = 25  # per thread
IP = "192.0.2.77"


@pytest.fixture
def cache_table(transactional_db) -> str:
    # Migration hub 0001 creates it only when CACHES names a database cache: not under Redis.
    call_command("createcachetable", TABLE, verbosity=0)
    return TABLE


@pytest.fixture
def database_cache(cache_table) -> DatabaseCache:
    return DatabaseCache(cache_table, {})


@pytest.fixture
def key(database_cache) -> Iterator[str]:
    key = f"counter:{uuid.uuid4().hex}"
    yield key
    database_cache.delete(key)


def run_together(work: Callable[[], object], threads: int = THREADS) -> None:
    """Run `work` in `threads` threads, each on its own database connection, released at once."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            connection.ensure_connection()  # this thread's own connection, opened before the start
            barrier.wait(timeout=60)
            work()
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            barrier.abort()
            errors.append(error)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert not any(worker.is_alive() for worker in workers), "a worker thread never finished"
    if errors:
        raise errors[0]


@pytest.mark.parametrize(("operation", "start", "end"), [("incr", 0, THREADS * TIMES), ("decr", THREADS * TIMES, 0)])
def test_parallel_counting_loses_no_update(database_cache, key, operation, start, end):
    database_cache.set(key, start, 300)
    step = getattr(database_cache, operation)

    run_together(lambda: [step(key) for _ in range(TIMES)])

    assert database_cache.get(key) == end


def test_incr_returns_the_new_value(database_cache, key):
    database_cache.set(key, 5, 300)
    assert database_cache.incr(key, 3) == 8
    assert database_cache.decr(key) == 7


def test_async_incr_is_the_atomic_incr(database_cache, key, monkeypatch):
    database_cache.set(key, 1, 300)
    calls = []
    monkeypatch.setattr(database_cache, "incr", lambda *args: calls.append(args) or 42)
    # In a thread of its own: a browser test earlier in the run may leave an event loop in this one.
    with ThreadPoolExecutor(max_workers=1) as pool:
        assert pool.submit(asyncio.run, database_cache.aincr(key)).result(timeout=30) == 42
    assert calls == [(key, 1, None)]


def test_incr_of_a_missing_key_raises_value_error(database_cache, key):
    with pytest.raises(ValueError):
        database_cache.incr(key)


def test_incr_keeps_the_expiry(database_cache, key):
    database_cache.set(key, 0, 1000)  # not the default timeout, which Django's incr would set

    def expires() -> object:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT expires FROM {TABLE} WHERE cache_key = %s", [database_cache.make_key(key)])
            return cursor.fetchone()[0]

    before = expires()
    database_cache.incr(key)
    assert expires() == before


def test_sqlite_cache_transactions_take_the_write_lock_up_front(database_cache):
    # On SQLite, incr relies on BEGIN IMMEDIATE (hub/settings.py) to serialize writers.
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL locks the row with SELECT ... FOR UPDATE")
    connection.ensure_connection()
    assert connection.transaction_mode == "IMMEDIATE"


@pytest.fixture
def throttle_on_database_cache(cache_table, settings) -> Iterator[tuple[str, str]]:
    settings.CACHES = {"default": {"BACKEND": BACKEND, "LOCATION": cache_table}}
    username = f"user-{uuid.uuid4().hex[:8]}"
    yield username, IP
    default_cache.delete_many(list(failure_keys(identifier=username, address=IP, user=None)))


def test_parallel_login_failures_are_all_counted(throttle_on_database_cache, settings):
    username, address = throttle_on_database_cache
    assert type(caches["default"]) is DatabaseCache
    # Budgets above the attempts made: an attempt refused is taken back, and every one is to be counted.
    settings.REGISTRY_AUTH_MAX_FAILURES = settings.REGISTRY_AUTH_MAX_FAILURES_PER_IP = THREADS * TIMES

    def attempt() -> None:
        login_attempt_begin(identifier=username, address=address, user=None)

    run_together(lambda: [attempt() for _ in range(TIMES)])

    account_key, ip_key = failure_keys(identifier=username, address=address, user=None)
    assert default_cache.get_many([account_key, ip_key]) == {account_key: THREADS * TIMES, ip_key: THREADS * TIMES}


@pytest.fixture
def login_rate(cache_table, settings, monkeypatch) -> Iterator[tuple[str, int]]:
    """The Hub API's login rate on the database cache, 50 a window, the clock held inside one window."""
    from rest_framework.settings import api_settings

    from hub.api import AtomicScopedRateThrottle

    settings.CACHES = {"default": {"BACKEND": BACKEND, "LOCATION": cache_table}}
    monkeypatch.setattr(AtomicScopedRateThrottle, "THROTTLE_RATES",
                        {**api_settings.DEFAULT_THROTTLE_RATES, "login": "50/min"})
    monkeypatch.setattr(AtomicScopedRateThrottle, "timer", staticmethod(lambda: 6_000_030.0))
    address = f"test-{uuid.uuid4().hex}"
    yield address, 50
    default_cache.delete_many([f"throttle_login_{address}", f"throttle_login_{address}:100000"])


def test_parallel_api_logins_are_all_counted_by_the_login_rate(login_rate):
    """DRF's ScopedRateThrottle reads the history, appends and writes it back: parallel requests read
    the same history and most go uncounted. The hub's counts each one."""
    from types import SimpleNamespace

    from django.contrib.auth.models import AnonymousUser
    from rest_framework.test import APIRequestFactory

    from hub.api import AtomicScopedRateThrottle

    address, limit = login_rate
    request = APIRequestFactory().post("/v2/users/login", REMOTE_ADDR=address)
    request.user = AnonymousUser()
    view = SimpleNamespace(throttle_scope="login")
    allowed: list[bool] = []
    lock = threading.Lock()

    def attempt() -> None:
        for _ in range(TIMES):
            verdict = AtomicScopedRateThrottle().allow_request(request, view)
            with lock:
                allowed.append(verdict)

    run_together(attempt)
    assert len(allowed) == THREADS * TIMES and allowed.count(True) == limit
