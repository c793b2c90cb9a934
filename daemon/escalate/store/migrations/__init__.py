"""Schema migrations for SQLite and PostgreSQL: an ordered list, each applied once, under a lock.

The database records what it has in `schema_migrations` (version, name, applied_at). `migrate()`
applies the pending migrations in order in one transaction while holding a lock, so several
instances starting together migrate once and the others wait, then find nothing to do:
PostgreSQL takes `pg_advisory_xact_lock` on a fixed key, SQLite takes the write lock up front
(`BEGIN IMMEDIATE`). Both databases have transactional DDL: a failing migration leaves nothing
half-done. `db.connect()` migrates (the daemon, `run --once`, `init`, every command); when the
schema is current that costs one query and no lock.

Migration 1 is the baseline: the tables escalate created before it had migrations, frozen as one
SQL text for both dialects (`0001_baseline.sql`), every statement `IF NOT EXISTS`. The dialects'
texts differed only in column types, so those stand there as tokens (`{serial}`, `{bigint}`,
`{timestamp}`, `{bytes}`, `{boolean}`) that BASELINE_TYPES fills in with the types each dialect
had then; what runs is exactly the SQL the two per-dialect files of before held. A database made
by that version (its tables, no `schema_migrations`) is adopted: the baseline changes nothing in
it, and the later migrations bring it up to date.

Adding a migration (a column, an index or a table), e.g. a lease on Delivery:

 1. change the model in models.py as usual (`lease_until = UTCDateTimeField(null=True)`);
 2. append one entry to MIGRATIONS below, with the next version number:
        Migration(4, "delivery lease", add_column(Delivery.lease_until)),
    Steps: `create_table(Model)`, `add_column(Model.field, default_sql=…)` (NOT NULL needs a
    default for the rows already there), `add_index(Model, ("a", "b"), unique=True)`,
    `run_sql(sqlite=…, postgresql=…)`; several steps: `steps(a, b, …)`. The helpers skip what
    already exists, so a table created from today's model and a later column on it do not clash;
 3. `pytest tests/unit/test_migrations.py` fails until the migrated schema equals the models.

Never edit a migration that has shipped: add another. On SQLite, avoid anything that rebuilds a
table (changing a column's type or nullability): with foreign keys on, dropping the old table
would cascade-delete its children.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import peewee

from escalate.store.models import (
    Attachment,
    Delivery,
    Digest,
    Escalation,
    FolderState,
    Incident,
    IncidentCustomer,
    Instance,
    Outbox,
    Problem,
    Quarantine,
    Ticket,
    TicketWord,
    UTCDateTimeField,
    database,
)

log = logging.getLogger(__name__)

Step = Callable[[peewee.Database], None]

# pg_advisory_xact_lock key of the migration: fixed, derived from a name so it cannot clash by accident
MIGRATE_LOCK_KEY = int.from_bytes(hashlib.sha256(b"escalate:migrate").digest()[:8], "big", signed=True)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Step


class SchemaMigration(peewee.Model):
    """One applied migration."""

    version = peewee.IntegerField(primary_key=True)
    name = peewee.CharField()
    applied_at = UTCDateTimeField()

    class Meta:
        database = database
        table_name = "schema_migrations"


def dialect(db: peewee.Database) -> str:
    return "postgresql" if isinstance(db, peewee.PostgresqlDatabase) else "sqlite"


# ------------------------------------------------------------------------------------------------
# steps


def run_sql(*, sqlite: str | Iterable[str], postgresql: str | Iterable[str]) -> Step:
    """Hand-written SQL, one text (or a list of statements) per dialect."""
    def apply(db: peewee.Database) -> None:
        statements = {"sqlite": sqlite, "postgresql": postgresql}[dialect(db)]
        for statement in [statements] if isinstance(statements, str) else statements:
            db.execute_sql(statement)
    return apply


# The column types the baseline's tokens stand for, as peewee wrote them for each dialect then.
BASELINE_TYPES = {
    "sqlite": {"serial": "INTEGER", "bigint": "INTEGER", "timestamp": "DATETIME", "bytes": "BLOB",
               "boolean": "INTEGER"},
    "postgresql": {"serial": "SERIAL", "bigint": "BIGINT", "timestamp": "TIMESTAMP", "bytes": "BYTEA",
                   "boolean": "BOOLEAN"},
}


def sql_statements(stem: str, dialect_name: str) -> list[str]:
    """The statements of `<stem>.sql` next to this module for one dialect: `;` at line ends, `--`
    comments, `{token}`s replaced by that dialect's BASELINE_TYPES."""
    text = (Path(__file__).parent / f"{stem}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    body = body.format_map(BASELINE_TYPES[dialect_name])
    return [statement.strip().rstrip(";") for statement in body.split(";\n") if statement.strip()]


def sql_file(stem: str) -> Step:
    """The statements of `<stem>.sql` (see sql_statements), run in order."""
    def apply(db: peewee.Database) -> None:
        for statement in sql_statements(stem, dialect(db)):
            db.execute_sql(statement)
    return apply


def create_table(*models: type[peewee.Model]) -> Step:
    """New tables (with their indexes) from today's models; a table already there is left alone."""
    def apply(db: peewee.Database) -> None:
        db.create_tables(models, safe=True)
    return apply


def add_column(field: peewee.Field, *, default_sql: str | None = None) -> Step:
    """ALTER TABLE … ADD COLUMN for a model field, unless the column exists. A NOT NULL column
    needs `default_sql` (an SQL literal both dialects read alike, e.g. "0" or "''") for existing rows."""
    if not field.null and default_sql is None:
        raise ValueError(f"{field.model.__name__}.{field.name} is NOT NULL: give default_sql for the rows already there")

    def apply(db: peewee.Database) -> None:
        table = field.model._meta.table_name
        if field.column_name in {c.name for c in db.get_columns(table)}:
            return
        context = db.get_sql_context()
        column = context.sql(field.ddl(context)).query()[0]
        db.execute_sql(f'ALTER TABLE "{table}" ADD COLUMN {column}' + (f" DEFAULT {default_sql}" if default_sql else ""))
    return apply


def add_index(model: type[peewee.Model], columns: tuple[str, ...], *, unique: bool = False) -> Step:
    """CREATE [UNIQUE] INDEX IF NOT EXISTS, named as peewee names the indexes of Meta.indexes."""
    def apply(db: peewee.Database) -> None:
        table = model._meta.table_name
        fields = [model._meta.fields[c] for c in columns]
        names = [f.column_name for f in fields]
        quoted = ", ".join(f'"{n}"' for n in names)
        db.execute_sql(f'CREATE {"UNIQUE " if unique else ""}INDEX IF NOT EXISTS "{table}_{"_".join(names)}" '
                       f'ON "{table}" ({quoted})')
    return apply


def steps(*parts: Step) -> Step:
    def apply(db: peewee.Database) -> None:
        for part in parts:
            part(db)
    return apply


# ------------------------------------------------------------------------------------------------
# the migrations, in order: append only

_LEGACY_ATTACHMENT_DIGESTS = ("UPDATE attachment SET sha256 = substr(stored_path, 4, 64) "
                              "WHERE sha256 IS NULL AND stored_offset IS NULL AND length(stored_path) = 71 "
                              "AND substr(stored_path, 3, 1) = '/' AND substr(stored_path, 68) = '.bin'")

# Before ladders a ticket had one escalation per rule, each with its own repeats. The highest-tier
# active one of a ticket stays its active ladder; the others end where they were. Which rules fired
# is read from the rows themselves (rule, started_at) while a ticket's `rules_fired` is empty (ladders.py).
_DROP_RULE_KEY = 'DROP INDEX IF EXISTS "escalation_ticket_id_rule"'
_FOLD_LADDERS = [
    """UPDATE "escalation" SET "state" = 'ended', "ended_at" = "last_step_due_at"
       WHERE "state" = 'active' AND "id" <> (
         SELECT "keep"."id" FROM "escalation" AS "keep"
         WHERE "keep"."ticket_id" = "escalation"."ticket_id" AND "keep"."state" = 'active'
         ORDER BY "keep"."tier" DESC, "keep"."id" DESC LIMIT 1)""",
    """UPDATE "escalation" SET "tier_since" = "last_step_due_at", "reasons" = '["' || "rule" || '"]'
       WHERE "reasons" IS NULL""",
]

_ONE_ACTIVE_LADDER = ('CREATE UNIQUE INDEX IF NOT EXISTS "escalation_one_active_per_ticket" '
                      'ON "escalation" ("ticket_id") WHERE "state" = \'active\'')

_MAIL_AT_FROM_CHECKPOINT = "UPDATE folder_state SET mail_at = updated_at WHERE last_uid > 0 AND mail_at IS NULL"

_INCIDENT_CUSTOMERS = ('INSERT INTO "incident_customer" ("incident_id", "requester", "joined_at") '
                       'SELECT "incident_id", "requester", MIN("created_at") FROM "ticket" '
                       'WHERE "incident_id" IS NOT NULL GROUP BY "incident_id", "requester"')
_INCIDENT_PRIMARIES = ('UPDATE "incident" SET "primary_ticket_id" = (SELECT t."id" FROM "ticket" t '
                       'WHERE t."incident_id" = "incident"."id" AND t."status" IN (\'new\', \'open\', \'waiting\') '
                       'ORDER BY t."created_at", t."id" LIMIT 1)')


def _index_open_ticket_words(db: peewee.Database) -> None:
    """The subject words of the tickets still open, so incidents find them as they find new ones."""
    from escalate.mail.subjects import ticket_words

    found = db.execute_sql('SELECT "id", "normalised_subject", "subject", "created_at" FROM "ticket" '
                           "WHERE \"status\" IN ('new', 'open', 'waiting')").fetchall()
    rows = []
    for ticket_id, normalised, subject, created_at in found:
        words = ticket_words(normalised, subject)
        rows += [(word, ticket_id, created_at, len(words)) for word in sorted(words)]
    if rows:  # created_at as read: the same stored form
        param = db.param
        db.cursor().executemany(f'INSERT INTO "ticket_word" ("word", "ticket_id", "created_at", "word_count") '
                                f"VALUES ({param}, {param}, {param}, {param})", rows)


MIGRATIONS: list[Migration] = [
    Migration(1, "baseline: the schema from before migrations", sql_file("0001_baseline")),
    Migration(2, "instances: heartbeats of the daemons sharing the database", create_table(Instance)),
    Migration(3, "quarantine: one record per folder message, even when two instances race",
              add_index(Quarantine, ("folder", "uidvalidity", "uid"), unique=True)),
    Migration(4, "folder_state per account: several IMAP accounts may each have an INBOX",
              steps(add_column(FolderState.account, default_sql="''"),
                    run_sql(sqlite='DROP INDEX IF EXISTS "folder_state_folder"',
                            postgresql='DROP INDEX IF EXISTS "folder_state_folder"'),
                    add_index(FolderState, ("account", "folder"), unique=True))),
    Migration(5, "outbox rendered by the sender: the template and its variables as decided; daily digests once",
              steps(add_column(Outbox.template), add_column(Outbox.context), add_column(Outbox.headers),
                    create_table(Digest))),
    Migration(6, "delivery leases: several senders on PostgreSQL claim a delivery for a while",
              steps(add_column(Delivery.lease_owner), add_column(Delivery.lease_until))),
    Migration(7, "attachment packs: a batch's attachment contents in one file, found again by their digest",
              steps(add_column(Attachment.stored_offset), add_column(Attachment.sha256),
                    add_index(Attachment, ("sha256",)),
                    # the files of before were named after their digest ("ab/<sha256>.bin"): reuse them
                    run_sql(sqlite=_LEGACY_ATTACHMENT_DIGESTS, postgresql=_LEGACY_ATTACHMENT_DIGESTS))),
    Migration(8, "one escalation ladder per ticket: the rows of a ticket's rules folded into one active ladder",
              steps(run_sql(sqlite=_DROP_RULE_KEY, postgresql=_DROP_RULE_KEY),
                    add_column(Escalation.tier_since), add_column(Escalation.next_step_at),
                    add_column(Escalation.reasons), add_column(Ticket.rules_fired),
                    add_column(Escalation.forced, default_sql="FALSE"), add_column(Escalation.ack_tier),
                    add_column(Escalation.ended_at), add_column(Escalation.severity),
                    add_column(Incident.rules_fired),
                    run_sql(sqlite=_FOLD_LADDERS, postgresql=_FOLD_LADDERS),
                    run_sql(sqlite=_ONE_ACTIVE_LADDER, postgresql=_ONE_ACTIVE_LADDER))),
    Migration(9, "incidents keep their own facts (customers, primary ticket); subject words indexed for candidates",
              steps(add_column(Incident.primary_ticket_id), create_table(IncidentCustomer, TicketWord),
                    run_sql(sqlite=_INCIDENT_CUSTOMERS, postgresql=_INCIDENT_CUSTOMERS),
                    run_sql(sqlite=_INCIDENT_PRIMARIES, postgresql=_INCIDENT_PRIMARIES),
                    _index_open_ticket_words)),
    Migration(10, "problems: what stops a stage until a person fixes it (an SMTP login refused), for status",
              create_table(Problem)),
    Migration(12, "folder_state: when a folder was last polled and when mail last arrived, apart",
              steps(add_column(FolderState.polled_at), add_column(FolderState.mail_at),
                    # until now updated_at moved only when mail came: it is the last arrival
                    run_sql(sqlite=_MAIL_AT_FROM_CHECKPOINT, postgresql=_MAIL_AT_FROM_CHECKPOINT))),
]


# ------------------------------------------------------------------------------------------------
# applying them


def latest() -> int:
    return MIGRATIONS[-1].version


def applied_versions(db: peewee.Database) -> set[int]:
    if not db.table_exists(SchemaMigration._meta.table_name):
        return set()
    return {version for (version,) in db.execute_sql("SELECT version FROM schema_migrations").fetchall()}


def current_version(db: peewee.Database) -> int:
    """The highest applied migration; 0 for an empty database or one made before migrations."""
    return max(applied_versions(db), default=0)


def pending(db: peewee.Database) -> list[Migration]:
    done = applied_versions(db)
    return [m for m in MIGRATIONS if m.version not in done]


def is_pre_migration_database(db: peewee.Database) -> bool:
    """Tables made by the version before migrations, but no record of any migration."""
    return not db.table_exists(SchemaMigration._meta.table_name) and db.table_exists("ticket")


def migrate(db: peewee.Database) -> list[Migration]:
    """Apply the pending migrations once, whoever else is migrating; returns what this call applied."""
    done = applied_versions(db)
    if max(done, default=0) > latest():
        log.warning("the database schema is at migration %d, newer than this escalate knows (%d); upgrade it",
                    max(done), latest())
    if all(m.version in done for m in MIGRATIONS):
        return []  # the common case: no lock, one query
    with _migration_lock(db):
        db.create_tables([SchemaMigration], safe=True)
        todo = pending(db)  # again, under the lock: another instance may just have done them
        if todo and todo[0].version == 1 and db.table_exists("ticket"):
            log.info("adopting a database made before migrations as the baseline")
        for migration in todo:
            log.info("applying migration %d: %s", migration.version, migration.name)
            migration.apply(db)
            SchemaMigration.insert(version=migration.version, name=migration.name,
                                   applied_at=datetime.now(timezone.utc)).execute()
    return todo


class _migration_lock:
    """One transaction holding the migration lock until it commits (or rolls back)."""

    def __init__(self, db: peewee.Database):
        self.db = db
        self.transaction = db.atomic("IMMEDIATE") if dialect(db) == "sqlite" else db.atomic()

    def __enter__(self) -> None:
        self.transaction.__enter__()
        if dialect(self.db) == "postgresql":
            self.db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK_KEY,))

    def __exit__(self, *exc) -> bool | None:
        return self.transaction.__exit__(*exc)
