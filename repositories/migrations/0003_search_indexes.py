"""Indexes for repository search (repositories.search).

PostgreSQL: trigram GIN indexes (pg_trgm) on the expressions Django's `icontains` compares,
`UPPER(col::text)`, for the repository name and short description and the namespace name, so a
substring search reads the matching rows instead of the whole table. Creating the extension
needs a superuser (or a database owner on PostgreSQL 13+, pg_trgm being a trusted extension);
when it cannot be created the migration logs how to add it later and skips the trigram indexes:
search still works, it just scans. Run this migration again (migrate repositories 0002, then
migrate) after `CREATE EXTENSION pg_trgm` to add them.

Every database: a btree on (star_count DESC, pull_count DESC), the order of "most stars" and of
a search without words.
"""

import logging

from django.db import migrations, transaction

logger = logging.getLogger("repositories.migrations")

TRIGRAM_INDEXES = {
    "repository_name_trgm": ("repositories_repository", "name"),
    "repository_description_trgm": ("repositories_repository", "description"),
    "namespace_name_trgm": ("accounts_namespace", "name"),
}


def _has_trigram_extension(schema_editor) -> bool:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone():
            return True
        try:
            with transaction.atomic(using=schema_editor.connection.alias):  # a savepoint
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        except Exception as error:  # noqa: BLE001 - any refusal means: go on without trigram indexes
            logger.warning(
                "Search runs without trigram indexes: could not CREATE EXTENSION pg_trgm (%s). As a "
                "superuser run `CREATE EXTENSION pg_trgm;` in this database, then "
                "`manage.py migrate repositories 0002 && manage.py migrate` to add them.",
                str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__,
            )
            return False
    return True


def add_trigram_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql" or not _has_trigram_extension(schema_editor):
        return
    for index, (table, column) in TRIGRAM_INDEXES.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" USING gin ((UPPER("{column}"::text)) gin_trgm_ops)'
        )


def drop_trigram_indexes(apps, schema_editor) -> None:
    if schema_editor.connection.vendor != "postgresql":
        return
    for index in TRIGRAM_INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{index}"')


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0002_library_namespace"),
        ("repositories", "0002_pullstat_star"),
    ]

    operations = [
        migrations.RunPython(add_trigram_indexes, drop_trigram_indexes, elidable=False),
        migrations.RunSQL(
            'CREATE INDEX "repository_stars_pulls" ON "repositories_repository" (star_count DESC, pull_count DESC)',
            'DROP INDEX "repository_stars_pulls"',
        ),
    ]
