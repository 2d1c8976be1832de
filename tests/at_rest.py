"""Helpers for the encryption-at-rest tests: a column's raw stored value, and migrating to a chosen state."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def raw(table: str, column: str, pk) -> str:
    """The value stored in the column, as the database has it (no field decrypts it)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


def write_raw(table: str, column: str, pk, value: str) -> None:
    """Store `value` in the column as it is (no field encrypts it)."""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])


def migrate(target: list[tuple[str, str]]):
    """Migrate the test database to `target`; returns the app registry of that state."""
    executor = MigrationExecutor(connection)
    executor.migrate(target)
    executor.loader.build_graph()
    return executor.loader.project_state(target).apps
