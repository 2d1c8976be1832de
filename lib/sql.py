"""Hand-written SQL about each row of a query, for the few hot spots where the ORM was the cost.

Building a correlated subquery with the ORM (querysets, OuterRef, Subquery, resolving and compiling
them) takes about a millisecond each, for every statement that uses it: the visibility rule's four
subqueries, or the three per-row counts of the Hub API's repository lists, were most of those
requests' time. A `RowSQL` compiles in microseconds and still follows the outer table wherever
Django aliases it (joins, `__in` subqueries), because the columns it reads are real column
references resolved by Django.
"""

from __future__ import annotations

import functools

from django.db import connection
from django.db.models import Expression, F, Field, Model
from django.db.models.expressions import Col


class RowSQL(Expression):
    """`template` with `{name}` for each of `columns` (an outer column, compiled with its alias) and
    `%s` for each of `params`, in order. Identifiers in the template come from model metadata
    (`table()`, `column()`), never from input; values are always parameters."""

    def __init__(self, template: str, *, columns: dict[str, F], params: tuple = (), output_field: Field):
        super().__init__(output_field=output_field)
        self.template, self.params = template, tuple(params)
        self.names, self.columns = tuple(columns), list(columns.values())

    def get_source_expressions(self) -> list:
        return self.columns

    def set_source_expressions(self, expressions) -> None:
        self.columns = list(expressions)

    def as_sql(self, compiler, connection):
        compiled = {}
        for name, column in zip(self.names, self.columns, strict=True):
            sql, column_params = compiler.compile(column)
            if column_params:  # a column reference has none; anything else would upset the order of %s
                raise ValueError(f"RowSQL column {name} compiled with parameters")
            compiled[name] = sql
        return f"({self.template.format(**compiled)})", list(self.params)


def table(model) -> str:
    """The model's table name, quoted for the database in use (computed once per model and database)."""
    return _quoted_table(model, connection.vendor)


def columns_of(model, alias: str) -> str:
    """Every concrete column of `model` as `alias."column"`, in the model's field order (model_from_row's)."""
    return ", ".join(f"{alias}.{column(model, field.name)}" for field in model._meta.concrete_fields)


def column(model, field: str) -> str:
    """The field's column name, quoted for the database in use (computed once per field and database)."""
    return _quoted_column(model, field, connection.vendor)


@functools.cache
def _quoted_table(model, vendor: str) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@functools.cache
def _quoted_column(model, field: str, vendor: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(field).column)


def model_from_row(model: type[Model], row: tuple | list, fields: tuple[str, ...] | None = None) -> Model:
    """An instance of `model` from a hand-written SELECT of the columns of `fields` (default: every concrete
    field; either way in `model._meta.concrete_fields` order, which Model.from_db() assumes: another order
    raises ValueError rather than put values in the wrong fields), each value converted as the ORM converts it (JSON,
    binary, SQLite's dates). Fields not selected are deferred, as with `QuerySet.only()`: the first
    access loads them from the database, so none silently holds its default."""
    attnames, converters = _row_converters(model, fields, connection.vendor)
    values = []
    for field_converters, value in zip(converters, row, strict=True):
        for expression, converter in field_converters:
            value = converter(value, expression, connection)
        values.append(value)
    return model.from_db(connection.alias, attnames, values)


def selected_fields(model: type[Model], fields: tuple[str, ...] | None = None) -> list[Field]:
    """The concrete fields `fields` names (all of them when None), in that order."""
    if fields is None:
        return list(model._meta.concrete_fields)
    return [model._meta.get_field(name) for name in fields]


@functools.cache
def _row_converters(model: type[Model], fields: tuple[str, ...] | None, vendor: str
                    ) -> tuple[list[str], list[list[tuple]]]:
    """The attribute names and, per field, the ORM's value converters on this kind of database (looked
    up once: finding them per row was most of the manifest GET's time). The converters depend on the
    database's kind and settings, never on one connection's state."""
    converters = []
    selected = selected_fields(model, fields)
    order = [field for field in model._meta.concrete_fields if field in selected]
    if selected != order:  # Model.from_db() places a partial row's values in the model's field order
        raise ValueError(f"model_from_row({model.__name__}): fields must be in the model's order: "
                         f"{[field.name for field in order]}")
    for field in selected:
        expression = Col(model._meta.db_table, field)
        converters.append([(expression, converter) for converter in
                           connection.ops.get_db_converters(expression) + field.get_db_converters(connection)])
    return [field.attname for field in selected], converters
