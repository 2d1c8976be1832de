"""Hand-written SQL about each row of a query, for the few hot spots where the ORM was the cost.

Building a correlated subquery with the ORM (querysets, OuterRef, Subquery, resolving and compiling
them) takes about a millisecond each, for every statement that uses it: the visibility rule's four
subqueries, or the three per-row counts of the Hub API's repository lists, were most of those
requests' time. A `RowSQL` compiles in microseconds and still follows the outer table wherever
Django aliases it (joins, `__in` subqueries), because the columns it reads are real column
references resolved by Django.
"""

from __future__ import annotations

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
    return connection.ops.quote_name(model._meta.db_table)


def column(model, field: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(field).column)


def model_from_row(model: type[Model], row: tuple | list) -> Model:
    """An instance of `model` from a hand-written SELECT of all its concrete fields' columns, in their
    order (`model._meta.concrete_fields`), each value converted as the ORM converts it (JSON, binary,
    SQLite's dates), so that no field silently holds its default."""
    fields = model._meta.concrete_fields
    values = []
    for field, value in zip(fields, row, strict=True):
        expression = Col(model._meta.db_table, field)
        for converter in connection.ops.get_db_converters(expression) + field.get_db_converters(connection):
            value = converter(value, expression, connection)
        values.append(value)
    return model.from_db(connection.alias, [field.attname for field in fields], values)
