"""The database: open it from ESCALATE_DB_URL, migrate the schema (migrations/), and give writers a transaction
that cannot fail half-way with "database is locked".

SQLite runs in WAL mode with `synchronous=FULL` (commits survive power loss, not only process
crashes), foreign keys on, and a busy timeout. Writers take the lock up
front (`BEGIN IMMEDIATE`), because a deferred transaction that reads then writes can fail without
waiting for the busy timeout when it upgrades its lock.
"""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote, urlsplit

import peewee

from escalate.errors import InputError
from escalate.store import durability, migrations, private
from escalate.store.models import database


class DatabaseUrlError(InputError, ValueError):
    """ESCALATE_DB_URL names a database this build cannot open."""


class DatabaseMissing(DatabaseUrlError):
    """ESCALATE_DB_URL names a database that does not exist (or holds no escalate schema). Only
    `escalate init` and `escalate db migrate` create one: a mistyped path must not quietly become
    a new, empty database that the daemon then fills while the real one waits."""

    def __init__(self, url: str, why: str):
        from escalate.config import redact_url

        super().__init__(f"no escalate database at {redact_url(url)} (ESCALATE_DB_URL): {why}. Correct "
                         "ESCALATE_DB_URL, or create the database with `escalate init DIR` or `escalate db migrate`")


class SqliteDatabase(peewee.SqliteDatabase):
    """SQLite that switches a new file to WAL before anything else (see _use_wal)."""

    def _set_pragmas(self, conn: sqlite3.Connection) -> None:
        _use_wal(conn, timeout=BUSY_TIMEOUT_SECONDS)
        super()._set_pragmas(conn)


BUSY_TIMEOUT_SECONDS = 10  # how long a statement waits for another connection's lock


def _use_wal(conn: sqlite3.Connection, *, timeout: float) -> None:
    """Put the database in WAL mode (a property of the file: once switched, this only reads it).

    The switch needs the file to itself, and SQLite does not wait for it like for any other lock:
    the switching connection already holds a read lock, so waiting could deadlock, and it answers
    "database is locked" at once while another connection writes, or switches it too (several
    processes opening a new database together: `escalate db migrate` beside the daemon). This
    waits instead, with the read lock released, as long as the busy timeout."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while True:
        try:
            conn.execute("PRAGMA journal_mode = wal").fetchall()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


class PortablePostgresqlDatabase(peewee.PostgresqlDatabase):
    """PostgreSQL that also takes the `?` placeholders of the hand-written statements (store/,
    rows.py), so one SQL text serves both databases: this is where they are translated, once per
    statement run. peewee's own queries already use `%s` here; `?` never appears in them outside a
    parameter."""

    def execute_sql(self, sql, params=None, *args, **kwargs):
        if params and "?" in sql:
            sql = sql.replace("%", "%%").replace("?", "%s")
        return super().execute_sql(sql, params, *args, **kwargs)


def sqlite_path(url: str) -> str | None:
    """The file of a sqlite:// URL (sqlite:///relative.db, sqlite:////absolute.db), else None."""
    if not url.startswith("sqlite:"):
        return None
    return url[len("sqlite:///"):] if url.startswith("sqlite:///") else urlsplit(url).path


def connect(url: str, *, migrate: bool = True, create: bool = True) -> peewee.Database:
    """Open the database named by `url`, bind the models to it and bring its schema up to date
    (migrations/: once, under a lock, whoever else is starting).

    `create=False` (every command but `init` and `db migrate`): a database that does not exist, or
    holds no escalate schema, raises DatabaseMissing instead of being created."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = sqlite_path(url)
        if not path:
            raise DatabaseUrlError("ESCALATE_DB_URL: sqlite URL has no file path (sqlite:///path/to/escalate.db)")
        if path != ":memory:" and not create and not Path(path).exists():
            raise DatabaseMissing(url, f"the file {path} does not exist")
        if path != ":memory:":
            _private_database_file(Path(path))
        db = SqliteDatabase(
            path,
            pragmas={  # journal_mode: _use_wal, first
                "synchronous": durability.DURABLE,  # crash_safe_commits relaxes it for one block
                "foreign_keys": 1,
                "busy_timeout": BUSY_TIMEOUT_SECONDS * 1000,
            },
            timeout=BUSY_TIMEOUT_SECONDS,
        )
    elif parts.scheme in ("postgresql", "postgres"):
        params = postgres_params(url)
        db = PortablePostgresqlDatabase(params.pop("dbname"), **params, application_name="escalate")
    else:
        raise DatabaseUrlError(f"ESCALATE_DB_URL: unsupported database {parts.scheme!r}; "
                               "use sqlite:///path or postgresql://user:pass@host/dbname")
    close()  # a connection to the database bound before (another URL, or the same one reopened)
    global _url
    _url = url
    database.initialize(db)
    _connect(db, url)
    if not create and not has_schema(db):
        db.close()
        raise DatabaseMissing(url, "it holds no escalate tables")
    if isinstance(db, peewee.SqliteDatabase) and db.database != ":memory:":
        for suffix in ("-wal", "-shm"):  # SQLite gives them the database file's mode; older ones may be wider
            private.tighten(db.database + suffix)
    if migrate:
        migrations.migrate(db)
    return db


def has_schema(db: peewee.Database) -> bool:
    """Whether escalate made this database: a record of its migrations, or the tables of the version
    before migrations (an empty PostgreSQL database a DBA created is not one yet)."""
    return bool(migrations.applied_versions(db)) or migrations.is_pre_migration_database(db)


def open_read_only(url: str) -> peewee.Database:
    """A connection that cannot change the database (`config check`): SQLite opened read-only, a
    PostgreSQL session whose transactions are read-only. The models are not bound to it. A
    database that does not exist raises DatabaseMissing, as `connect(create=False)` does."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = sqlite_path(url)
        if not path or path == ":memory:":
            raise DatabaseUrlError("ESCALATE_DB_URL: sqlite URL has no file path (sqlite:///path/to/escalate.db)")
        if not Path(path).exists():
            raise DatabaseMissing(url, f"the file {path} does not exist")
        db = peewee.SqliteDatabase(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    elif parts.scheme in ("postgresql", "postgres"):
        params = postgres_params(url)
        db = peewee.PostgresqlDatabase(params.pop("dbname"), **params, application_name="escalate config check",
                                       options="-c default_transaction_read_only=on")
    else:
        raise DatabaseUrlError(f"ESCALATE_DB_URL: unsupported database {parts.scheme!r}; "
                               "use sqlite:///path or postgresql://user:pass@host/dbname")
    _connect(db, url)
    return db


def _connect(db: peewee.Database, url: str) -> None:
    try:
        db.connect(reuse_if_open=True)
    except peewee.OperationalError as error:
        message = str(error)
        if 'database "' in message and "does not exist" in message:  # PostgreSQL's; escalate never creates one
            raise DatabaseMissing(url, f"the server has no such database ({' '.join(str(error).split())})") from None
        raise


def _private_database_file(path: Path) -> None:
    """The SQLite file, its directory made 0700 if escalate creates it, and the file created 0600
    before SQLite opens it (SQLite then gives its -wal and -shm files the same mode); a database
    made by an older version is tightened."""
    private.make_directory(path.parent)
    try:
        os.close(private.open_file(path, os.O_RDWR | os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        private.tighten(path)


_url: str | None = None  # the database connect() opened last, for `explain`


def explain(error: peewee.DatabaseError) -> str:
    """One line for a person: what failed, where, and what to do (the CLI's message for a database
    that cannot be opened or written)."""
    from escalate.config import redact_url

    message = " ".join(str(error).split()) or type(error).__name__
    url = _url or ""
    path = sqlite_path(url)
    if path:
        directory = Path(path).resolve().parent
        if "disk is full" in message or "disk I/O error" in message:
            return (f"the database {path} could not be written: {message}. Free space on the disk of {directory} "
                    "and run again; nothing was lost (mail not stored stays on the IMAP server)")
        if "readonly" in message or "unable to open" in message or "read-only" in message:
            return (f"the database {path} cannot be opened for writing: {message}. Make {directory} and the "
                    f"escalate.db* files in it writable by user {_user()} (and its filesystem not read-only)")
        return f"the database {path} failed: {message}"
    where = redact_url(url) if url else "ESCALATE_DB_URL"
    if "connection" in message.lower() or "timeout" in message.lower() or "could not" in message.lower():
        return (f"cannot reach the database {where}: {message}. Is PostgreSQL up, and ESCALATE_DB_URL right? "
                "Nothing was lost; run again once it is reachable")
    return f"the database {where} failed: {message}"


def _user() -> str:
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def postgres_params(url: str) -> dict:
    """psycopg connection parameters of a postgresql:// URL (also for connections outside peewee)."""
    parts = urlsplit(url)
    if not parts.path.strip("/"):
        raise DatabaseUrlError("ESCALATE_DB_URL: the postgresql URL names no database (postgresql://user:pass@host/dbname)")
    return {"dbname": unquote(parts.path.strip("/")), "user": unquote(parts.username) if parts.username else None,
            "password": unquote(parts.password) if parts.password else None, "host": parts.hostname or None,
            "port": parts.port or 5432, "connect_timeout": 10}


def close() -> None:
    db = database.obj
    if db is not None and not db.is_closed():
        db.close()


def shared() -> bool:
    """Whether several instances may work on this database at once (PostgreSQL), so that claims
    must lock rows (`FOR UPDATE SKIP LOCKED`, leases). SQLite has one instance (instance.py)."""
    return not isinstance(database.obj, peewee.SqliteDatabase)


@contextmanager
def write_transaction() -> Iterator[None]:
    """One atomic unit of work that writes: state change, its audit event and its outbox rows."""
    db = database.obj
    try:
        if isinstance(db, peewee.SqliteDatabase) and not db.in_transaction():
            with db.atomic("IMMEDIATE"):
                yield
        else:
            with db.atomic():
                yield
    except peewee.OperationalError as error:
        raise _cause(error) from None


def transaction_gone() -> bool:
    """Whether SQLite has already rolled the whole transaction back itself, as it does on some
    errors (SQLITE_FULL: the disk is full): then there is no savepoint or transaction left to undo."""
    db = database.obj
    return isinstance(db, peewee.SqliteDatabase) and not db.is_closed() and not db.connection().in_transaction


_UNDO_FAILED = ("cannot rollback - no transaction is active", "no such savepoint")


def _cause(error: peewee.OperationalError) -> BaseException:
    """The error that made us undo, rather than the failure of the undo that SQLite had already
    done ("cannot rollback - no transaction is active" hid "database or disk is full")."""
    found: BaseException = error
    while any(text in str(found) for text in _UNDO_FAILED) and found.__context__ is not None:
        found = found.__context__
    return found


def connection_lost() -> bool:
    """Whether this thread's PostgreSQL connection was closed by the server (a restart,
    `pg_terminate_backend`): every further statement on it fails, so there is no point going on."""
    db = database.obj
    if db is None or db.is_closed() or isinstance(db, peewee.SqliteDatabase):
        return False
    connection = db.connection()
    return bool(getattr(connection, "closed", False) or getattr(connection, "broken", False))


def drop_broken_connection() -> bool:
    """Forget this thread's connection if the server has closed it (a restart, `pg_terminate_backend`),
    so the next statement opens a new one: peewee never reconnects by itself, and every statement
    on a dead psycopg connection fails with "the connection is closed". For code that carries on
    after a failed statement in the same thread; the daemon's stages also close after every run.
    True when it dropped one (a retry may succeed now)."""
    if not connection_lost():
        return False
    db = database.obj
    try:
        db.close()
    except peewee.OperationalError:  # "transaction is open": only a caller inside one gets here
        return False
    return True
