"""`escalate db …`: the database schema."""

from __future__ import annotations

import click

from escalate.cli.app import _emit, _settings, command, command_group, json_option
from escalate.store import db

db_group = command_group("db", "The database schema: migrations.")


@command(db_group, "migrate", short_help="Apply pending schema migrations.")
@click.option("--dry-run", is_flag=True, help="List the pending migrations; apply nothing.")
@json_option
@click.pass_context
def db_migrate(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Apply pending schema migrations (once, under a lock; the daemon also does this at start)."""
    from escalate.store import migrations

    database = db.connect(_settings(ctx).db_url, migrate=False)
    done = migrations.pending(database) if dry_run else migrations.migrate(database)
    version = migrations.current_version(database) if not dry_run else None
    if as_json:
        _emit({"dry_run": dry_run, "migrations": [{"version": m.version, "name": m.name} for m in done],
               "schema_version": version}, True)
        return
    verb = "pending" if dry_run else "applied"
    for migration in done:
        click.echo(f"{verb} migration {migration.version}: {migration.name}")
    if not done:
        click.echo(f"schema up to date (migration {migrations.current_version(database)})")
    elif not dry_run:
        click.echo(f"schema at migration {version}")
