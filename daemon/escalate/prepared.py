"""SQL for the tick's hot path, built once per statement shape instead of once per call.

peewee builds a query's SQL text anew on every call, and for the small indexed statements an
escalation makes (an audit event, an outbox row, its deliveries, a few lookups) that costs ten
times more than SQLite takes to run them: 100 escalations in one tick spent most of their time
there. These helpers write the same statements peewee would, once per shape and database, and
convert values with the model's own fields, so what is stored is identical. The text is portable:
the database's own placeholder, `ON CONFLICT DO NOTHING` and `RETURNING` (SQLite ≥ 3.35, PostgreSQL).
"""

from __future__ import annotations

from typing import Any, Iterable

import peewee

from .models import database

_texts: dict[tuple, str] = {}


def _text(key: tuple, build) -> str:
    param = database.obj.param  # the only thing in the text that differs between the databases
    full = (param, *key)
    text = _texts.get(full)
    if text is None:
        text = _texts[full] = build(param)
    return text


def _columns(model: type[peewee.Model], names: Iterable[str]) -> list[peewee.Field]:
    return [model._meta.fields[name] for name in names]


def insert(model: type[peewee.Model], values: dict[str, Any], *, ignore_conflict: bool = False) -> int | None:
    """INSERT one row; its id, or None when `ignore_conflict` and a unique key already had it."""
    fields = _columns(model, values)

    def build(p: str) -> str:
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        conflict = " ON CONFLICT DO NOTHING" if ignore_conflict else ""
        return (f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({", ".join([p] * len(fields))})'
                f'{conflict} RETURNING "id"')

    text = _text(("insert", model, tuple(values), ignore_conflict), build)
    row = database.obj.execute_sql(text, [f.db_value(v) for f, v in zip(fields, values.values())]).fetchone()
    return row[0] if row else None


def insert_returning(model: type[peewee.Model], rows: list[dict[str, Any]], key: str, *,
                     ignore_conflict: bool = False) -> list[tuple[Any, int]]:
    """INSERT rows that all name the same columns in one statement; (row[key], id) of each row
    written (with `ignore_conflict`, rows a unique key already had are left out). `key` names a
    unique column: RETURNING gives rows in no promised order."""
    if not rows:
        return []
    fields = _columns(model, rows[0])
    returned = model._meta.fields[key].column_name

    def build(p: str) -> str:
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        one = "(" + ", ".join([p] * len(fields)) + ")"
        conflict = " ON CONFLICT DO NOTHING" if ignore_conflict else ""
        return (f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES {", ".join([one] * len(rows))}'
                f'{conflict} RETURNING "{returned}", "id"')

    text = _text(("insert_returning", model, tuple(rows[0]), len(rows), key, ignore_conflict), build)
    params = [f.db_value(v) for row in rows for f, v in zip(fields, row.values())]
    return [(value, row_id) for value, row_id in database.obj.execute_sql(text, params).fetchall()]


def insert_many(model: type[peewee.Model], rows: list[dict[str, Any]]) -> None:
    """INSERT rows that all name the same columns, in one executemany."""
    if not rows:
        return
    fields = _columns(model, rows[0])

    def build(p: str) -> str:
        columns = ", ".join(f'"{f.column_name}"' for f in fields)
        return f'INSERT INTO "{model._meta.table_name}" ({columns}) VALUES ({", ".join([p] * len(fields))})'

    text = _text(("insert_many", model, tuple(rows[0])), build)
    params = [[f.db_value(v) for f, v in zip(fields, row.values())] for row in rows]
    database.obj.cursor().executemany(text, params)


def update(model: type[peewee.Model], row_id: int, values: dict[str, Any]) -> None:
    """UPDATE the named columns of one row by id."""
    fields = _columns(model, values)

    def build(p: str) -> str:
        assignments = ", ".join(f'"{f.column_name}" = {p}' for f in fields)
        return f'UPDATE "{model._meta.table_name}" SET {assignments} WHERE "id" = {p}'

    text = _text(("update", model, tuple(values)), build)
    database.obj.execute_sql(text, [*(f.db_value(v) for f, v in zip(fields, values.values())), row_id])


def select(key: str, sql: str, params: list[Any]) -> list[tuple]:
    """Run a hand-written SELECT (written with `?` placeholders); rows as tuples."""
    text = _text(("select", key), lambda p: sql.replace("?", p))
    return database.obj.execute_sql(text, params).fetchall()
