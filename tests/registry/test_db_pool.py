"""PostgreSQL connections come from a pool per process (hub/settings.py, HUB_DB_POOL): gunicorn's gevent
workers serve each client connection on a greenlet of its own, and Django's connections are per
thread, so without the pool every client connection opened a PostgreSQL connection of its own.

The live tests give gunicorn's connections an application name of their own (libpq's PGAPPNAME) and
watch them in pg_stat_activity."""

import json
import os
import subprocess
import sys
import threading
import uuid

import psycopg
import pytest
import requests
from django.db import connection

from tests import live
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.e2e]

WORKERS, POOL_MAX = 2, 2
on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="the pool is PostgreSQL's")


def environment_without_pool_settings() -> dict:
    """This process's environment without HUB_DB_POOL*: a test that loaded gunicorn.conf.py in process (its
    setdefault) leaves HUB_DB_POOL=true behind for the rest of the run."""
    return {key: value for key, value in os.environ.items() if not key.startswith("HUB_DB_POOL")}


def database_settings(**env: str) -> dict:
    """DATABASES["default"] as hub/settings.py makes it from `env` (in a fresh interpreter), or the
    error that stopped it ({"error": stderr})."""
    code = "import json, hub.settings as s; print(json.dumps(s.DATABASES['default'], default=str))"
    result = subprocess.run([sys.executable, "-c", code], cwd=live.REPO_ROOT, capture_output=True, text=True,
                            env={**environment_without_pool_settings(), "DJANGO_SETTINGS_MODULE": "hub.settings",
                                 **env})
    return json.loads(result.stdout) if result.returncode == 0 else {"error": result.stderr}


def test_postgresql_gets_a_pool_and_no_persistent_connections():
    database = database_settings(DATABASE_URL="postgres://u:p@db.invalid:5432/wharf", HUB_DB_POOL="true",
                                 HUB_DB_POOL_MAX_SIZE="7")

    assert database["OPTIONS"]["pool"] == {"min_size": 1, "max_size": 7, "timeout": 30.0}
    assert database["CONN_MAX_AGE"] == 0  # the pool requires it: a request gives its connection back
    assert database["CONN_HEALTH_CHECKS"] is True  # then the pool's check of each connection it hands out


def test_hub_db_pool_off_brings_back_persistent_connections():
    database = database_settings(DATABASE_URL="postgres://u:p@db.invalid:5432/wharf", HUB_DB_POOL="false")

    assert "pool" not in database.get("OPTIONS", {})
    assert database["CONN_MAX_AGE"] == 60


def test_a_pool_larger_than_its_maximum_stops_the_start():
    database = database_settings(DATABASE_URL="postgres://u:p@db.invalid:5432/wharf", HUB_DB_POOL="true",
                                 HUB_DB_POOL_MIN_SIZE="5", HUB_DB_POOL_MAX_SIZE="2")

    assert "HUB_DB_POOL_MIN_SIZE=5" in database["error"]


def test_only_gunicorns_workers_pool_by_default():
    """A manage.py command or a Celery process connects plainly (an unreachable database is reported at once,
    not after the pool's retries); gunicorn.conf.py turns the pool on for the web workers."""
    plain = database_settings(DATABASE_URL="postgres://u:p@db.invalid:5432/wharf")
    assert "pool" not in plain.get("OPTIONS", {}) and plain["CONN_MAX_AGE"] == 60
    code = ("import os, runpy; runpy.run_path('gunicorn.conf.py'); import hub.settings as s; "
            "print('pool' in s.DATABASES['default'].get('OPTIONS', {}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=live.REPO_ROOT, capture_output=True, text=True,
                            env={**environment_without_pool_settings(), "DJANGO_SETTINGS_MODULE": "hub.settings",
                                 "DATABASE_URL": "postgres://u:p@db.invalid:5432/wharf"})
    assert result.stdout.strip().splitlines()[-1] == "True", result.stderr


@pytest.fixture(scope="module")
def pooled_hub(django_db_setup, artifacts_dir):
    application = f"wharf-pool-{uuid.uuid4().hex[:8]}"
    hub = live.start_hub(artifacts_dir, with_worker=False, PGAPPNAME=application, HUB_WEB_WORKERS=str(WORKERS),
                    HUB_DB_POOL_MAX_SIZE=str(POOL_MAX))
    hub.application = application
    yield hub
    hub.stop()


def backends(application: str) -> set[tuple[int, str]]:
    """The PostgreSQL sessions gunicorn holds now: (pid, start time)."""
    with psycopg.connect(live.test_database_url(), autocommit=True) as watcher:
        rows = watcher.execute("SELECT pid, backend_start::text FROM pg_stat_activity WHERE application_name = %s",
                               [application]).fetchall()
    return set(rows)


def signed_in_token(hub, username: str) -> int:
    """A signed-in token request on a new TCP connection (a new greenlet): it reads the account and the
    repository."""
    response = requests.get(f"{hub.url}/token", params={"service": hub.host, "scope": f"repository:{username}/x:pull"},
                            auth=(username, PASSWORD), headers={"Connection": "close"}, timeout=30)
    return response.status_code


@on_postgresql
def test_requests_on_new_client_connections_reuse_the_pools_connections(pooled_hub, live_user):
    user = live_user()
    seen: list[set] = []
    for _ in range(30):
        assert signed_in_token(pooled_hub, user.username) == 200
        seen.append(backends(pooled_hub.application))

    every = set().union(*seen)
    assert seen[-1], "no connection kept between requests"
    assert len(every) <= WORKERS * POOL_MAX, f"{len(every)} PostgreSQL sessions for 30 requests"
    assert seen[-1] & seen[2], "the connections of the first requests were not the ones of the last"


@on_postgresql
def test_more_requests_at_once_than_the_pool_holds_wait_for_a_connection(pooled_hub, live_user):
    user = live_user()
    statuses: list[int] = []
    peak: list[int] = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], len(backends(pooled_hub.application)))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        clients = [threading.Thread(target=lambda: statuses.append(signed_in_token(pooled_hub, user.username)))
                   for _ in range(24)]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
    finally:
        done.set()
        watcher.join()

    assert statuses == [200] * 24
    assert 1 <= peak[0] <= WORKERS * POOL_MAX
