"""`escalate demo`: the whole loop on loopback servers."""

from __future__ import annotations

from pathlib import Path

import click

from escalate.cli.app import command, example_rules_path, main


@command(main, "demo", short_help="Run the whole loop on loopback servers with simulated time.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the demo's database and server files here (default: a new temp dir).")
@click.option("--rules", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Rules to demonstrate (default: the example rules.yaml).")
def demo_command(workdir: Path | None, rules: Path | None) -> None:
    """Run the whole loop on loopback servers with simulated time (needs Debian's dovecot-imapd).

    A narrated story for people: it has no --json (its state stays behind for the other commands)."""
    try:  # the demo pulls in the loopback servers; keep them out of normal runs
        from escalate.testing.demo import run_demo
    except ModuleNotFoundError as error:
        if error.name != "aiosmtpd":
            raise
        raise click.ClickException("escalate demo needs the demo extra (its loopback SMTP server): "
                                   "pip install 'escalate[demo]'") from None

    kept = run_demo(workdir, rules or example_rules_path())
    click.echo(f"\nThe demo's state is in {kept} (inspect it with "
               f"`escalate --env-file {kept / 'escalate.env'} tickets list`).")
