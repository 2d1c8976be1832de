"""The plan the database picks for a statement, for tests that hold a query to its indexes."""

from __future__ import annotations

from django.db import connection

from accounts.models import Namespace


def plan_of(sql: str) -> str:
    """EXPLAIN on PostgreSQL with sequential scans forbidden (a test database is small enough to scan
    whatever indexes exist, so the plan then shows whether an index can answer at all); EXPLAIN
    QUERY PLAN on SQLite."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = off")
            try:
                cursor.execute("EXPLAIN " + sql)
                rows = cursor.fetchall()
            finally:
                cursor.execute("RESET enable_seqscan")
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql)
            rows = cursor.fetchall()
    return "\n".join(str(row[-1]) for row in rows)


def many_accounts(count: int = 3000) -> None:
    """Namespaces of `count` other users, as on the Hub, and PostgreSQL's statistics that say so
    (SQLite, without statistics, takes an index on an equality wherever there is one)."""
    Namespace.objects.bulk_create([Namespace(name=f"account{i}", kind=Namespace.Kind.USER) for i in range(count)])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def looks_up_namespaces_by(plan: str, column: str) -> bool:
    """Whether the plan finds namespaces through the unique index on `column` (user_id,
    organization_id), rather than reading all of them and filtering."""
    if connection.vendor == "postgresql":
        return f"accounts_namespace_{column}_key" in plan
    return f"({column}=?)" in plan
