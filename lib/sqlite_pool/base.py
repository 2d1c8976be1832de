"""Django's SQLite backend, with the connections a process closes kept open for its next request.

Under gunicorn's gevent workers every client connection is a greenlet with Django connections of its
own, so each one opened a SQLite connection (a file open, Django's SQL functions registered, the
PRAGMAs run) and closed it when the client left: a seventh of a worker's CPU in 16 simultaneous
skopeo pulls. With OPTIONS["pool"] (hub/settings.py sets it in the web workers), closing a connection
puts it on its process's pool and the next connect() takes it back. A client connection's greenlet
still keeps its connection for all its requests (CONN_MAX_AGE): giving it back after every request
would make many simultaneous keep-alive clients open and close connections past the pool's bound.
What a pooled connection may not carry to its next user is dropped first:

- an unfinished SELECT holds a WAL read snapshot (the next user would read stale rows, and the WAL
  could not be checkpointed past it): every cursor the wrapper made is closed;
- an open transaction is rolled back (Django's autocommit switch on reuse would commit it);
- a connection closed inside an atomic block (Django keeps a reference to it), after a database
  error, or after its foreign key checks were turned off (loaddata, migrations), is really closed.

The pool belongs to one process (a forked child starts with none of its parent's connections, which
SQLite forbids using across fork()) and one database file; it keeps at most "max_idle" connections.
A deque, not a lock: append and pop are atomic in CPython, from greenlets and threads alike.
"""

from __future__ import annotations

import os
import sqlite3
import weakref
from collections import deque

from django.db.backends.sqlite3 import base

_pools: dict[tuple[int, str], deque[sqlite3.Connection]] = {}
_inherited: list[deque[sqlite3.Connection]] = []  # a parent's pools after fork(): never used, never closed


def _pool(name: str) -> deque[sqlite3.Connection]:
    key = (os.getpid(), name)
    pool = _pools.get(key)
    if pool is None:
        for stale in [k for k in _pools if k[0] != key[0]]:
            _inherited.append(_pools.pop(stale))  # closing them here could disturb the parent's locks
        pool = _pools.setdefault(key, deque())
    return pool


def pooled_connections(name: str) -> int:
    """How many idle connections to `name` this process holds (for tests and diagnostics)."""
    return len(_pools.get((os.getpid(), name), ()))


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.max_idle = int((self.settings_dict["OPTIONS"].get("pool") or {}).get("max_idle", 0))
        self._cursors: weakref.WeakSet = weakref.WeakSet()
        self._altered = False  # a PRAGMA changed on this connection: not for another user

    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        params.pop("pool", None)  # this module's setting, not sqlite3.connect()'s
        return params

    def _pooling(self) -> bool:
        return self.max_idle > 0 and not self.is_in_memory_db()

    def get_new_connection(self, conn_params: dict) -> sqlite3.Connection:
        if self._pooling():
            try:
                return _pool(self.settings_dict["NAME"]).pop()
            except IndexError:
                pass
        return super().get_new_connection(conn_params)

    def disable_constraint_checking(self) -> bool:
        self._altered = True
        return super().disable_constraint_checking()

    def create_cursor(self, name=None):
        cursor = super().create_cursor(name)
        self._cursors.add(cursor)
        return cursor

    def _close(self) -> None:
        connection, cursors, altered = self.connection, list(self._cursors), self._altered
        self._cursors, self._altered = weakref.WeakSet(), False
        if connection is None:
            return None
        pool = _pool(self.settings_dict["NAME"]) if self._pooling() else None
        if pool is None or altered or self.in_atomic_block or self.errors_occurred or len(pool) >= self.max_idle:
            return super()._close()
        with self.wrap_database_errors:
            try:
                for cursor in cursors:
                    cursor.close()  # resets its statement: no read snapshot outlives the request
                if connection.in_transaction:
                    connection.rollback()
            except Exception:
                connection.close()
                raise
        pool.append(connection)
        return None
