"""The embedded SQLite database takes writes from several processes at once without "database is locked"."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.hub.support import hub_env, run_django
from tests.live import REPO_ROOT, wait_until

pytestmark = pytest.mark.sqlite

WRITERS = 4
TRANSACTIONS = 50  # per writer; each makes a user, then an organization owned by them

WRITER = """
import os, sys, time
import django
django.setup()
from accounts.models import User
from accounts.services import organization_create
from django.db import connection, transaction

prefix, start, transactions = sys.argv[1], sys.argv[2], int(sys.argv[3])
connection.ensure_connection()
open(f"{start}.{prefix}.ready", "w").close()
while not os.path.exists(start):
    time.sleep(0.005)
for index in range(transactions):
    with transaction.atomic():
        user = User.objects.create_user(username=f"{prefix}user{index:03d}", password=None)
    organization_create(name=f"{prefix}org{index:03d}", owner=user)
print("done")
"""


def test_parallel_writers_never_see_database_is_locked(data_dir, tmp_path):
    env = hub_env(data_dir)
    start = tmp_path / "go"
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, f"w{number}x", str(start), str(TRANSACTIONS)], cwd=REPO_ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for number in range(WRITERS)
    ]
    try:
        wait_until(lambda: len(list(tmp_path.glob("go.*.ready"))) == WRITERS, timeout=30,
                   message="every writer connected")
        start.touch()  # the barrier: all writers start together
        deadline = time.monotonic() + 60
        outputs = [writer.communicate(timeout=max(1, deadline - time.monotonic())) for writer in writers]
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
    errors = "\n".join(err for _, err in outputs)
    assert "database is locked" not in errors
    assert [writer.returncode for writer in writers] == [0] * WRITERS, errors
    with sqlite3.connect(data_dir / "hub.sqlite3") as db:
        users = db.execute("SELECT COUNT(*) FROM accounts_user WHERE username GLOB 'w*xuser*'").fetchone()[0]
        organizations = db.execute("SELECT COUNT(*) FROM accounts_organization WHERE name GLOB 'w*xorg*'").fetchone()[0]
    assert (users, organizations) == (WRITERS * TRANSACTIONS, WRITERS * TRANSACTIONS)


PRAGMAS = """
import json
from django.db import connection
with connection.cursor() as cursor:
    values = {}
    for pragma in ("journal_mode", "busy_timeout", "foreign_keys", "synchronous"):
        cursor.execute(f"PRAGMA {pragma}")
        values[pragma] = cursor.fetchone()[0]
values["transaction_mode"] = connection.settings_dict["OPTIONS"].get("transaction_mode")
print(json.dumps(values))
"""


@pytest.fixture(scope="module")
def sqlite_pragmas(migrated_template, tmp_path_factory) -> dict:
    data_dir = tmp_path_factory.mktemp("pragmas") / "data"
    shutil.copytree(migrated_template, data_dir)
    output = run_django(hub_env(data_dir), PRAGMAS).stdout
    return json.loads(output.strip().splitlines()[-1])


def test_sqlite_runs_in_wal_mode(sqlite_pragmas):
    assert sqlite_pragmas["journal_mode"] == "wal"


def test_sqlite_waits_for_a_busy_database(sqlite_pragmas):
    assert sqlite_pragmas["busy_timeout"] >= 5000


def test_sqlite_transactions_take_the_write_lock_up_front(sqlite_pragmas):
    assert sqlite_pragmas["transaction_mode"] == "IMMEDIATE"


def test_sqlite_enforces_foreign_keys(sqlite_pragmas):
    assert sqlite_pragmas["foreign_keys"] == 1
