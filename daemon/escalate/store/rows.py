"""Row reads and writes for the hot paths (ingest, the tick), without peewee's query builder.

Ingest writes five to seven rows per mail (message, attachments, ticket, audit events); a tick
writes an escalation step, its audit event, outbox rows and deliveries per due ticket. peewee
builds each INSERT or UPDATE afresh from expression objects, which costs more Python than SQLite
takes to run the statement (~0.3 ms against ~0.03 ms, bench/ingest_bench.py). These helpers keep
the SQL text per (model, columns) and still convert every value with the field's own `db_value`,
and `create` starts from a model instance, so Python-side defaults, JSON and UTC datetime fields,
foreign keys given as instances, and columns that others add to a model later all behave as
with `Model.create`. One SQL text serves SQLite (≥ 3.35) and PostgreSQL (`?` vs `%s`, RETURNING).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, TypeVar

import peewee

from escalate.store.models import database

M = TypeVar("M", bound=peewee.Model)


def create(model: type[M], **values: Any) -> M:
    """`model.create(**values)`: insert one row, return the instance with its id."""
    instance = model(**values)  # applies the model's defaults, as peewee's create does
    data = instance.__data__
    row_id = insert(model, {name: data[name] for name in _insertable(model) if name in data})
    setattr(instance, model._meta.primary_key.name, row_id)
    instance._dirty.clear()
    return instance


def insert(model: type[peewee.Model], values: dict[str, Any], *, ignore_conflict: bool = False) -> int | None:
    """INSERT one row of exactly these values (no model defaults); its id, or None when
    `ignore_conflict` and a unique key already had it (a step is written once)."""
    names = tuple(values)
    sql = _insert_sql(model, names, True, ignore_conflict)
    row = database.execute_sql(sql, _stored(_writers(model, names), values)).fetchone()
    return row[0] if row else None


def insert_returning(model: type[peewee.Model], rows: list[dict[str, Any]], key: str | tuple[str, ...], *,
                     ignore_conflict: bool = False) -> list[tuple[Any, int]]:
    """INSERT rows that all name the same columns in one statement; (row[key], id) of each row
    written (with `ignore_conflict`, rows a unique key already had are left out). `key` names a
    unique column, or the columns of a unique key (then row[key] is a tuple of their stored
    values: a foreign key's id): RETURNING gives rows in no promised order."""
    if not rows:
        return []
    names = tuple(rows[0])
    keys = (key,) if isinstance(key, str) else key
    sql = _insert_values_sql(model, names, len(rows), keys, ignore_conflict)
    writers = _writers(model, names)
    found = database.execute_sql(sql, [value for row in rows for value in _stored(writers, row)]).fetchall()
    if isinstance(key, str):
        return [(value, row_id) for value, row_id in found]
    return [(tuple(row[:-1]), row[-1]) for row in found]


def insert_many(model: type[peewee.Model], rows: list[dict[str, Any]]) -> None:
    """Insert rows that all name the same columns, in one executemany. No model defaults are filled
    in (no instance per row: a tick batch's audit events and deliveries, a mail's attachments), so
    give every column that has one."""
    if not rows:
        return
    names = tuple(rows[0])
    writers = _writers(model, names)
    execute_many(_insert_sql(model, names, False, False), [_stored(writers, row) for row in rows])


def execute_many(sql: str, params: list) -> None:
    """One hand-written statement (`?` placeholders) for each parameter row, in one executemany."""
    database.obj.cursor().executemany(_placeholders(sql), params)


def update(instance: peewee.Model, *names: str) -> None:
    """Write only the named fields of `instance` (peewee's `save(only=…)`, without its query builder)."""
    model = type(instance)
    fields = _fields(model)
    sql = _update_sql(model, names)
    data = instance.__data__
    primary_key = model._meta.primary_key
    database.execute_sql(sql, [fields[name].db_value(data.get(name)) for name in names]
                         + [primary_key.db_value(data[primary_key.name])])
    for name in names:
        instance._dirty.discard(name)


def get_by_id(model: type[M], row_id: int) -> M:
    """`model.get_by_id(row_id)` from a stored SQL text; raises model.DoesNotExist likewise.
    (Not via `model.raw`: a model may have a field of that name, Outbox does.)"""
    row = database.execute_sql(_select_sql(model), [row_id]).fetchone()
    if row is None:
        raise model.DoesNotExist(f"{model.__name__} with id {row_id!r} does not exist")
    return loaded(model, row)


def select_models(model: type[M], condition: str, params: list[Any]) -> list[M]:
    """`model.select().where(…)` from a hand-written condition (and ORDER BY, LIMIT, FOR UPDATE)
    after `SELECT <every column> FROM <table>`; `?` placeholders."""
    cursor = database.execute_sql(f"{_select_all_sql(model)} {condition}", params)
    return [loaded(model, row) for row in cursor.fetchall()]


def unsaved(model: type[M], values: dict[str, Any]) -> M:
    """`model(**values)`, an instance of a row not written yet, without a descriptor call per field
    (a tick makes two per notification it decides). Foreign keys may be instances, kept for
    `instance.ticket` as peewee keeps them; fields not given read as None."""
    instance = model.__new__(model)
    data, related = dict(values), {}
    for name in _foreign_keys(model):
        value = data.get(name)
        if isinstance(value, peewee.Model):
            related[name] = value
            data[name] = value.get_id()
    instance.__data__, instance.__rel__, instance._dirty = data, related, set(data)
    return instance


def loaded(model: type[M], row: tuple) -> M:
    """An instance from a row of every column in `sorted_fields` order, as peewee's
    `Model(__no_default__=1, **values)` makes it (converted by each field's `python_value`, nothing
    dirty), without a descriptor call per field: a tick loads up to 500 tickets."""
    instance = model.__new__(model)
    instance.__data__ = {name: value if value is None or type(value) is plain else read(value)
                         for (name, read, plain), value in zip(_readers(model), row)}
    instance._dirty = set()
    instance.__rel__ = {}
    return instance


# --- SQL texts, built once per model and column set ---------------------------------------------


@lru_cache(maxsize=None)
def _fields(model: type[peewee.Model]) -> dict[str, peewee.Field]:
    return dict(model._meta.fields)


@lru_cache(maxsize=None)
def _insertable(model: type[peewee.Model]) -> tuple[str, ...]:
    primary_key = model._meta.primary_key
    return tuple(field.name for field in model._meta.sorted_fields
                 if not (field is primary_key and isinstance(field, peewee.AutoField)))


@lru_cache(maxsize=None)
def _foreign_keys(model: type[peewee.Model]) -> tuple[str, ...]:
    return tuple(field.name for field in model._meta.sorted_fields if isinstance(field, peewee.ForeignKeyField))


class _Never:
    """A type no value has: the field's converter always runs."""


# Fields whose converters give back a value of this exact type unchanged, both ways (peewee's
# CharField coerces with str(), IntegerField with int(), a foreign key as its target's id): a
# tick converts some thirty values per ticket it reads and twenty per row it writes, and skipping
# the call for these is the same result. Subclasses are not listed: they may convert (JSONField is
# a TextField). A value of any other type still goes through the field.
_PLAIN = {peewee.CharField: str, peewee.TextField: str, peewee.IntegerField: int, peewee.BigIntegerField: int,
          peewee.AutoField: int}


def _plain_type(field: peewee.Field) -> type:
    if type(field) is peewee.ForeignKeyField:
        return _plain_type(field.rel_field)
    return _PLAIN.get(type(field), _Never)


@lru_cache(maxsize=None)
def _readers(model: type[peewee.Model]) -> tuple[tuple[str, Any, type], ...]:
    """(name, python_value, the type it leaves alone) of every column, in `sorted_fields` order."""
    return tuple((field.name, field.python_value, _plain_type(field)) for field in model._meta.sorted_fields)


def _stored(writers: tuple[tuple[str, Any, type], ...], row: dict[str, Any]) -> list[Any]:
    """The values of `row` named by `writers` (`_writers`), as the database stores them."""
    return [value if type(value := row[name]) is plain else write(value) for name, write, plain in writers]


@lru_cache(maxsize=256)
def _writers(model: type[peewee.Model], names: tuple[str, ...]) -> tuple[tuple[str, Any, type], ...]:
    """(name, db_value, the type it leaves alone) of the named columns."""
    fields = _fields(model)
    return tuple((name, fields[name].db_value, _plain_type(fields[name])) for name in names)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@lru_cache(maxsize=256)
def _insert_sql(model: type[peewee.Model], names: tuple[str, ...], returning: bool, ignore_conflict: bool) -> str:
    fields = _fields(model)
    columns = ", ".join(_quote(fields[name].column_name) for name in names)
    sql = f"INSERT INTO {_quote(model._meta.table_name)} ({columns}) VALUES ({', '.join('?' * len(names))})"
    if ignore_conflict:
        sql += " ON CONFLICT DO NOTHING"
    if returning:
        sql += f" RETURNING {_quote(model._meta.primary_key.column_name)}"
    return sql


@lru_cache(maxsize=256)
def _insert_values_sql(model: type[peewee.Model], names: tuple[str, ...], count: int, keys: tuple[str, ...],
                       ignore_conflict: bool) -> str:
    fields = _fields(model)
    columns = ", ".join(_quote(fields[name].column_name) for name in names)
    one = "(" + ", ".join("?" * len(names)) + ")"
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflict else ""
    return (f"INSERT INTO {_quote(model._meta.table_name)} ({columns}) VALUES {', '.join([one] * count)}"
            f"{conflict} RETURNING {', '.join(_quote(fields[key].column_name) for key in keys)}, "
            f"{_quote(model._meta.primary_key.column_name)}")


@lru_cache(maxsize=256)
def _update_sql(model: type[peewee.Model], names: tuple[str, ...]) -> str:
    fields = _fields(model)
    assignments = ", ".join(f"{_quote(fields[name].column_name)} = ?" for name in names)
    return (f"UPDATE {_quote(model._meta.table_name)} SET {assignments} "
            f"WHERE {_quote(model._meta.primary_key.column_name)} = ?")


@lru_cache(maxsize=None)
def _select_all_sql(model: type[peewee.Model]) -> str:
    columns = ", ".join(_quote(field.column_name) for field in model._meta.sorted_fields)
    return f"SELECT {columns} FROM {_quote(model._meta.table_name)}"


@lru_cache(maxsize=None)
def _select_sql(model: type[peewee.Model]) -> str:
    return f"{_select_all_sql(model)} WHERE {_quote(model._meta.primary_key.column_name)} = ?"


def _placeholders(sql: str) -> str:
    """executemany goes to the driver directly: PostgreSQL's wants `%s` (execute_sql translates
    `?` itself, see db.PortablePostgresqlDatabase)."""
    return sql if database.param == "?" else sql.replace("%", "%%").replace("?", database.param)
