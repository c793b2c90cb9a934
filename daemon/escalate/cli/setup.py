"""`escalate init`: a working configuration in a directory."""

from __future__ import annotations

import os
from pathlib import Path

import click

from escalate.cli.app import _emit, command, example_rules_path, json_option, main
from escalate.config import redact_url


@command(main, "init", short_help="Write rules.yaml and escalate.env, create the database.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing rules.yaml and env file.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Where the database goes (default: /var/lib/escalate, the systemd unit's state directory, "
                   "when DIRECTORY is under /etc; else DIRECTORY). ESCALATE_DB_URL, when set, wins.")
@json_option
def init_command(directory: Path, force: bool, state_dir: Path | None, as_json: bool) -> None:
    """Write DIR/rules.yaml and DIR/escalate.env and create the database."""
    from escalate.ops.initdir import init_directory

    written = init_directory(directory, example_rules_path(), force=force, db_url=os.environ.get("ESCALATE_DB_URL"),
                             state_directory=state_dir)
    if as_json:
        _emit({"rules": str(written.rules_path.resolve()), "env_file": str(written.env_path.resolve()),
               "database": redact_url(written.db_url)}, True)
        return
    click.echo(f"wrote {written.rules_path}\nwrote {written.env_path} (mode 0600: it holds the secret)\n"
               f"created database {written.db_url}\n"
               f"next: edit both, check with `escalate --env-file {written.env_path} config check`, then "
               f"`escalate --env-file {written.env_path} run`")
