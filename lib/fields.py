"""Model fields that encrypt on save and decrypt on load (lib/crypto.py), so callers see plain values.

Both are text columns holding `enc:v1:<token>`. An empty EncryptedTextField stays "" (so `blank` keeps its
meaning and "has a secret?" needs no key); every other value, and every JSON value, is encrypted. Values
cannot be searched: the only lookups are `isnull` and `exact` against "" (anything else raises TypeError,
rather than silently matching nothing).

`encrypt_column`, `decrypt_column` (data migrations: `encrypt_columns`, `decrypt_columns` for several) and
`reencrypt_column` (rotation) rewrite raw columns in SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.apps import apps
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models.lookups import Exact, IsNull

from lib import crypto


class _EmptyOnlyExact(Exact):
    def get_prep_lookup(self) -> Any:
        if self.rhs not in ("", None):
            raise TypeError(f"{self.lhs.output_field.name} is encrypted: it can only be compared with ''")
        return super().get_prep_lookup()


class _EncryptedMixin:
    def get_lookup(self, lookup_name: str) -> type | None:
        return {"exact": _EmptyOnlyExact, "isnull": IsNull}.get(lookup_name)

    def get_transform(self, lookup_name: str) -> None:
        return None


class EncryptedTextField(_EncryptedMixin, models.TextField):
    """A string kept encrypted in the database ("" stays "")."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return None if value is None else crypto.decrypt(value)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return crypto.encrypt(value)


class EncryptedJSONField(_EncryptedMixin, models.JSONField):
    """A JSON value (build secrets, headers…) kept encrypted in a text column.

    A JSONField to everything above the database (forms, DRF's ModelSerializer, validation), so the API still
    shows a dict where it shows one; no JSON lookups or key transforms.
    """

    def get_internal_type(self) -> str:
        return "TextField"

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        if value is None:
            return None
        return json.loads(crypto.decrypt(value), cls=self.decoder)

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return crypto.encrypt(json.dumps(value, cls=self.encoder))

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> str | None:
        return value if prepared else self.get_prep_value(value)


# --- Whole columns in SQL: the data migrations and `manage.py reencrypt_secrets` ---------------------------


def _rewrite_column(model: type[models.Model], column: str, connection: BaseDatabaseWrapper,
                    change: Callable[[str], str], batch: int = 500) -> int:
    """Apply `change` to every non-null value of a column, in batches by primary key; returns the rows changed."""
    quote = connection.ops.quote_name  # identifiers from the model, quoted; values go as parameters
    table, pk, column = quote(model._meta.db_table), quote(model._meta.pk.column), quote(column)
    count, last = 0, None
    with connection.cursor() as cursor:
        while True:
            where = f"WHERE {pk} > %s " if last is not None else ""
            cursor.execute(f"SELECT {pk}, {column} FROM {table} {where}ORDER BY {pk} LIMIT {batch}",  # noqa: S608
                           [] if last is None else [last])
            rows = cursor.fetchall()
            for key, value in rows:
                new = value if value is None else change(value)
                if new != value:
                    # Only if unchanged since read (a row saved meanwhile keeps its new value).
                    cursor.execute(f"UPDATE {table} SET {column} = %s WHERE {pk} = %s AND {column} = %s",  # noqa: S608
                                   [new, key, value])
                    count += cursor.rowcount
            if len(rows) < batch:
                return count
            last = rows[-1][0]


def encrypt_column(model: type[models.Model], field_name: str, schema_editor: Any) -> int:
    """Encrypt the legacy plaintext values of a column (values already encrypted are left); returns the count.

    Raises DecryptionError on an `enc:v1:` value that no configured key can read, rather than wrap it again.
    """
    field = model._meta.get_field(field_name)
    is_text = isinstance(field, EncryptedTextField)

    def change(value: str) -> str:
        if crypto.is_encrypted(value):
            crypto.decrypt(value)  # readable with the configured keys, or raise
            return value
        if is_text and value == "":
            return value
        return crypto.encrypt(value)

    return _rewrite_column(model, field.column, schema_editor.connection, change)


def decrypt_column(model: type[models.Model], field_name: str, schema_editor: Any) -> int:
    """Write the column back in clear (to reverse a migration); returns the count."""
    return _rewrite_column(model, model._meta.get_field(field_name).column, schema_editor.connection, crypto.decrypt)


def encrypt_columns(apps: Any, schema_editor: Any, app_label: str, fields: dict[str, list[str]]) -> None:
    """A data migration's forward step: `encrypt_column` for each of `fields` ({model name: [field names]})."""
    for model_name, names in fields.items():
        for name in names:
            encrypt_column(apps.get_model(app_label, model_name), name, schema_editor)


def decrypt_columns(apps: Any, schema_editor: Any, app_label: str, fields: dict[str, list[str]]) -> None:
    """A data migration's backward step: `decrypt_column` for each of `fields` ({model name: [field names]})."""
    for model_name, names in fields.items():
        for name in names:
            decrypt_column(apps.get_model(app_label, model_name), name, schema_editor)


def reencrypt_column(model: type[models.Model], field_name: str, connection: BaseDatabaseWrapper) -> int:
    """Encrypt every value of a column with the current key (after a rotation); returns the count."""
    field = model._meta.get_field(field_name)
    is_text = isinstance(field, EncryptedTextField)

    def change(value: str) -> str:
        return value if is_text and value == "" else crypto.reencrypt(value)

    return _rewrite_column(model, field.column, connection, change)


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    """(model, field name) for every encrypted field of the installed apps."""
    return [(model, field.name) for model in apps.get_models() for field in model._meta.get_fields()
            if isinstance(field, EncryptedTextField | EncryptedJSONField)]
