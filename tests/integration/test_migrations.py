"""Schema migrations on SQLite and PostgreSQL: a fresh database gets the models' schema, a database
made before migrations is adopted with its data, and several processes migrating at once apply
each migration once."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone

import peewee
import pytest
from click.testing import CliRunner
from escalate.cli import main
from escalate.store import db, migrations
from escalate.store.models import ALL_MODELS, Incident, Instance, Ticket, UTCDateTimeField

MIGRATIONS_NOW = list(migrations.MIGRATIONS)
pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def another_database(request, database_url: str, tmp_path) -> str:
    if database_url.startswith("postgresql"):
        return request.getfixturevalue("postgres").create_database()
    return f"sqlite:///{tmp_path / 'other.db'}"


def schema(database: peewee.Database) -> dict:
    """Every model table's columns (type, nullable) and indexes (columns, unique), by name."""
    tables = {}
    for model in ALL_MODELS:
        table = model._meta.table_name
        tables[table] = (
            {c.name: (c.data_type.lower(), c.null) for c in database.get_columns(table)},
            {i.name: (tuple(i.columns), i.unique) for i in database.get_indexes(table)},
        )
    return tables


def migrate_cli(url: str, *args: str) -> str:
    result = CliRunner().invoke(main, ["db", "migrate", *args], env={"ESCALATE_DB_URL": url}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_fresh_database_is_migrated_to_exactly_the_schema_of_the_models(request, database_url, tmp_path):
    migrated = db.connect(database_url)
    assert migrations.current_version(migrated) == migrations.latest()
    got = schema(migrated)
    db.close()

    reference = db.connect(another_database(request, database_url, tmp_path), migrate=False)
    reference.create_tables(ALL_MODELS)
    # a model changed without its migration (or the other way round) shows here
    assert got == schema(reference)


def test_a_database_from_before_migrations_is_adopted_with_its_data(database_url):
    old = db.connect(database_url, migrate=False)
    migrations.sql_file("0001_baseline")(old)  # what escalate created before it had migrations
    now = datetime.now(timezone.utc)
    Ticket.create(subject="Site down", normalised_subject="site down", requester="carl@customer.example",
                  severity="high", created_at=now, updated_at=now)
    db.close()

    assert "pending migration 1: baseline" in migrate_cli(database_url, "--dry-run")
    output = migrate_cli(database_url)
    assert [line.split(":")[0] for line in output.splitlines()[:-1]] == [
        f"applied migration {m.version}" for m in migrations.MIGRATIONS]
    assert f"schema up to date (migration {migrations.latest()})" in migrate_cli(database_url)

    db.connect(database_url)
    assert [t.subject for t in Ticket.select()] == ["Site down"]  # adopted, not re-created
    Instance.create(name="h:1:abc", host="h", pid=1, version="0", started_at=now, heartbeat_at=now)
    assert Instance.select().count() == 1


def test_several_processes_migrating_at_once_apply_each_migration_once(database_url):
    env = {**os.environ, "ESCALATE_DB_URL": database_url}
    processes = [subprocess.Popen([sys.executable, "-m", "escalate", "db", "migrate"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        outputs.append(out)
    applied = [line for out in outputs for line in out.splitlines() if line.startswith("applied migration")]
    assert sorted(applied) == sorted(f"applied migration {m.version}: {m.name}" for m in migrations.MIGRATIONS)
    database = db.connect(database_url, migrate=False)
    rows = database.execute_sql("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [v for (v,) in rows] == [m.version for m in migrations.MIGRATIONS]


def test_a_failing_migration_leaves_the_schema_as_it_was(database_url, monkeypatch):
    database = db.connect(database_url)

    def half_done(database: peewee.Database) -> None:
        migrations.run_sql(sqlite='ALTER TABLE "ticket" ADD COLUMN "half" INTEGER',
                           postgresql='ALTER TABLE "ticket" ADD COLUMN "half" INTEGER')(database)
        raise RuntimeError("migration bug")

    broken = migrations.Migration(migrations.latest() + 1, "broken", half_done)
    monkeypatch.setattr(migrations, "MIGRATIONS", [*migrations.MIGRATIONS, broken])
    with pytest.raises(RuntimeError, match="migration bug"):
        migrations.migrate(database)
    assert "half" not in {c.name for c in database.get_columns("ticket")}
    assert migrations.current_version(database) == broken.version - 1


def test_add_column_gives_existing_rows_the_default(database_url, monkeypatch):
    database = db.connect(database_url)
    now = datetime.now(timezone.utc)
    Ticket.create(subject="Old", normalised_subject="old", requester="a@example.com", severity="low",
                  created_at=now, updated_at=now)

    class TicketWithLease(Ticket):
        lease_owner = peewee.CharField(default="")

        class Meta:
            table_name = "ticket"

    step = migrations.add_column(TicketWithLease.lease_owner, default_sql="''")
    monkeypatch.setattr(migrations, "MIGRATIONS",
                        [*migrations.MIGRATIONS, migrations.Migration(migrations.latest() + 1, "lease", step)])
    assert [m.name for m in migrations.migrate(database)] == ["lease"]
    assert [t.lease_owner for t in TicketWithLease.select()] == [""]
    with pytest.raises(ValueError, match="NOT NULL"):
        migrations.add_column(TicketWithLease.lease_owner)


def test_per_rule_escalations_are_folded_into_one_ladder_per_ticket(database_url):
    """Before ladders a ticket had an escalation per rule, several active at once. The migration
    keeps the highest-tier active one as the ticket's ladder and ends the others where they were;
    the rules they stand for count as fired, so the first tick after the upgrade starts nothing again."""
    old = db.connect(database_url, migrate=False)
    for migration in migrations.MIGRATIONS[:7]:  # the schema of the last version without ladders
        migration.apply(old)
    t = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
    stamp = lambda value: value.strftime("%Y-%m-%d %H:%M:%S")  # noqa: E731 -- how both dialects stored times
    ticket = Ticket.create(subject="Site down", normalised_subject="site down", requester="carl@customer.example",
                           severity="urgent", created_at=t, updated_at=t, status="new")
    for rule, tier, state in (("urgent-no-first-response", 1, "active"), ("matrix/urgent/4h", 2, "active"),
                              ("stale-open-ticket", 1, "ended")):
        old.execute_sql(f'INSERT INTO "escalation" ("ticket_id", "rule", "tier", "step", "started_at", '
                        f'"last_step_due_at", "state") VALUES ({ticket.id}, \'{rule}\', {tier}, 2, '
                        f"'{stamp(t)}', '{stamp(t)}', '{state}')")
    db.close()
    migrate_cli(database_url)

    db.connect(database_url)
    from escalate.store.models import Escalation
    from escalate.tickets import ladders
    rows = list(Escalation.select().order_by(Escalation.id))
    assert [(r.rule, r.state) for r in rows] == [("urgent-no-first-response", "ended"), ("matrix/urgent/4h", "active"),
                                                 ("stale-open-ticket", "ended")]
    ladder = ladders.ladder_of(Ticket.get_by_id(ticket.id), rows)
    assert (ladder.state, ladder.tier, ladder.reasons) == ("active", 2, ("matrix/urgent/4h",))
    assert set(ladder.fired) == {"urgent-no-first-response", "matrix/urgent/4h", "stale-open-ticket"}
    # and the database now refuses a second active ladder for the ticket
    with pytest.raises(peewee.IntegrityError), db.write_transaction():
        Escalation.create(ticket=ticket, rule="x", tier=1, started_at=t, last_step_due_at=t, state="active")


def test_the_incident_migration_backfills_customers_primaries_and_the_words_of_open_tickets(database_url, monkeypatch):
    database = db.connect(database_url, migrate=False)
    before = [m for m in migrations.MIGRATIONS if m.version < 9]
    monkeypatch.setattr(migrations, "MIGRATIONS", before)
    migrations.migrate(database)  # the schema as it was before incidents kept their own facts
    t0 = datetime(2026, 11, 4, 9, 0, tzinfo=timezone.utc)
    when = Incident.created_at.db_value  # a bound field: text for SQLite, a datetime for PostgreSQL
    database.execute_sql('INSERT INTO "incident" ("subject", "created_at", "last_ticket_at", "customers") '
                         "VALUES ('Login error 500', ?, ?, 2)", [when(t0), when(t0)])
    for number, (subject, requester, status, incident) in enumerate([
            ("Login error 500", "ann@one.example", "resolved", 1),  # no longer speaks for it
            ("login error 500 again", "bob@two.example", "open", 1),
            ("Login error 500 still", "ann@one.example", "new", 1),
            ("Invoice address change", "cid@three.example", "closed", None),
            ("(no subject)", "dan@four.example", "new", None)]):
        at = when(t0.replace(minute=number))
        database.execute_sql(
            'INSERT INTO "ticket" ("ref", "subject", "normalised_subject", "requester", "requester_name", "status", '
            '"severity", "created_at", "updated_at", "message_count", "waiting_periods", "incident_id", "drill") '
            "VALUES (?, ?, ?, ?, '', ?, 'normal', ?, ?, 1, '[]', ?, ?)",
            [f"T-{number + 1}", subject, subject.lower() if subject[0] != "(" else "", requester, status, at, at,
             incident, False])
    monkeypatch.setattr(migrations, "MIGRATIONS", [*before, *[m for m in MIGRATIONS_NOW if m.version >= 9]])
    assert [m.version for m in migrations.migrate(database)][0] == 9

    customers = database.execute_sql('SELECT "requester", "joined_at" FROM "incident_customer" ORDER BY "requester"')
    assert [(r, UTCDateTimeField().python_value(at).minute) for r, at in customers.fetchall()] == [
        ("ann@one.example", 0), ("bob@two.example", 1)]  # each customer once, from its first ticket
    assert database.execute_sql('SELECT "primary_ticket_id" FROM "incident"').fetchall() == [(2,)]
    words = database.execute_sql('SELECT "ticket_id", "word" FROM "ticket_word" ORDER BY 1, 2').fetchall()
    # open tickets only, and a placeholder subject gives none
    assert words == [(2, "500"), (2, "again"), (2, "error"), (2, "login"),
                     (3, "500"), (3, "error"), (3, "login"), (3, "still")]
