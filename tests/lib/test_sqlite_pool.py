"""lib.sqlite_pool: the web workers' SQLite connections are kept open between requests and handed to the
next request of the same process, with nothing of their previous user left on them.

Each test opens Django connections ("wrappers") to a file of its own through a ConnectionHandler, as
the web workers' settings make them (hub/settings.py with HUB_DB_POOL)."""

import os
import sqlite3

import pytest
from django.db import DatabaseError
from django.db.utils import ConnectionHandler

from lib.sqlite_pool.base import pooled_connections
from tests.registry.test_db_pool import database_settings


def handler(path, *, max_idle: int = 10, pool: bool = True) -> ConnectionHandler:
    options = {"transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    if pool:
        options["pool"] = {"max_idle": max_idle}
    return ConnectionHandler({"default": {"ENGINE": "lib.sqlite_pool", "NAME": str(path), "CONN_MAX_AGE": 0,
                                          "OPTIONS": options}})


@pytest.fixture(autouse=True)
def own_databases(django_db_blocker):
    """These tests open connections to files of their own, not to the test database."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def database(tmp_path):
    """A WAL database with 500 rows in `item`."""
    path = tmp_path / "pool.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE item (id INTEGER PRIMARY KEY, name TEXT)")
        db.executemany("INSERT INTO item (name) VALUES (?)", [(f"n{i}",) for i in range(500)])
    db.close()
    return path


def wrapper(path, **kwargs):
    """A fresh Django connection (as a new greenlet gets one) to `path`."""
    return handler(path, **kwargs)["default"]


def count(connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM item")
        return cursor.fetchone()[0]


def rows_the_next_request_sees(path) -> int:
    """`item`'s rows as the next request counts them, on the pooled connection."""
    later = wrapper(path)
    try:
        return count(later)
    finally:
        later.close()


def test_a_closed_connection_is_the_next_requests_connection(database):
    first = wrapper(database)
    first.ensure_connection()
    raw = first.connection
    first.close()
    assert pooled_connections(str(database)) == 1

    second = wrapper(database)
    second.ensure_connection()

    assert second.connection is raw
    assert pooled_connections(str(database)) == 0
    assert count(second) == 500
    second.close()


def test_two_requests_at_once_never_share_a_connection(database):
    first, second = wrapper(database), wrapper(database)
    first.ensure_connection()
    first.close()
    first.ensure_connection()
    second.ensure_connection()

    assert first.connection is not second.connection
    first.close()
    second.close()


def test_an_unfinished_select_leaves_no_stale_snapshot_to_the_next_request(database):
    """A SELECT read only in part keeps a WAL read snapshot open: a request after it on the same
    connection would not see rows committed since (and the WAL could not be checkpointed)."""
    reader = wrapper(database)
    cursor = reader.cursor()
    cursor.execute("SELECT id, name FROM item")
    cursor.fetchone()  # 499 rows left unread: the statement stays active
    reader.close()

    with sqlite3.connect(database) as other:  # another process commits meanwhile
        other.execute("INSERT INTO item (name) VALUES ('new')")
    other.close()

    assert rows_the_next_request_sees(database) == 501


def test_an_open_transaction_is_rolled_back_not_committed_by_the_next_user(database):
    """Django turns autocommit back on when it reuses a connection, which would commit what was left open."""
    writer = wrapper(database)
    writer.set_autocommit(False)
    with writer.cursor() as cursor:
        cursor.execute("INSERT INTO item (name) VALUES ('abandoned')")
    writer.close()

    assert rows_the_next_request_sees(database) == 500


def test_a_connection_closed_inside_an_atomic_block_is_closed_not_pooled(database):
    """Django keeps its reference to a connection closed in an atomic block: pooled, another request could
    be handed the same connection while this one still holds it."""
    connections = handler(database)
    from django.db import transaction

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(transaction, "connections", connections)  # atomic() on this handler's connection
        with transaction.atomic():
            connection = connections["default"]
            count(connection)
            raw = connection.connection
            connection.close()
    assert pooled_connections(str(database)) == 0
    with pytest.raises(sqlite3.ProgrammingError):
        raw.execute("SELECT 1")  # really closed


def test_a_connection_that_had_a_database_error_is_closed_not_pooled(database):
    connection = wrapper(database)
    with pytest.raises(DatabaseError), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table")
    connection.close()

    assert pooled_connections(str(database)) == 0


def test_the_pool_keeps_at_most_max_idle_connections(database):
    connections = [wrapper(database, max_idle=2) for _ in range(4)]
    for connection in connections:
        connection.ensure_connection()
    for connection in connections:
        connection.close()

    assert pooled_connections(str(database)) == 2


def test_without_the_pool_setting_closing_closes(database):
    connection = wrapper(database, pool=False)
    connection.ensure_connection()
    raw = connection.connection
    connection.close()

    assert pooled_connections(str(database)) == 0
    with pytest.raises(sqlite3.ProgrammingError):
        raw.execute("SELECT 1")


def test_a_forked_child_opens_its_own_connections(database):
    """SQLite forbids using a connection across fork(): the child starts with an empty pool."""
    parent = wrapper(database)
    parent.ensure_connection()
    parent.close()
    assert pooled_connections(str(database)) == 1

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its pool held, then whether a new connection works
        try:
            before = pooled_connections(str(database))
            child = wrapper(database)
            rows = count(child)
            child.close()
            os.write(write, f"{before} {rows} {pooled_connections(str(database))}".encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    report = os.read(read, 100).decode()
    os.close(read)

    assert report == "0 500 1"
    assert pooled_connections(str(database)) == 1  # the parent's is still its own


def test_the_web_workers_sqlite_settings_pool_connections(tmp_path):
    database = database_settings(DATABASE_URL="", HUB_DATA_DIR=str(tmp_path), HUB_DB_POOL="true",
                                 HUB_DB_POOL_MAX_SIZE="7")  # no DATABASE_URL: SQLite, whatever the suite runs on

    assert database["ENGINE"] == "lib.sqlite_pool"
    assert database["OPTIONS"]["pool"] == {"max_idle": 7}
    assert database["CONN_MAX_AGE"] == 600  # a client connection's requests keep theirs; the pool is for the next


def test_other_processes_keep_djangos_sqlite_backend(tmp_path):
    database = database_settings(DATABASE_URL="", HUB_DATA_DIR=str(tmp_path))

    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert "pool" not in database["OPTIONS"]


def test_a_connection_whose_foreign_key_checks_were_turned_off_is_closed_not_pooled(database):
    """loaddata and migrations turn PRAGMA foreign_keys off for a while: that must not reach another request."""
    connection = wrapper(database)
    connection.ensure_connection()
    connection.disable_constraint_checking()
    connection.close()

    assert pooled_connections(str(database)) == 0
