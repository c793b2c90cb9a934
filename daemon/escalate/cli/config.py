"""`escalate config …`: check the configuration before a deploy."""

from __future__ import annotations

import click

from escalate.cli.app import _emit, command, command_group, json_option

config_group = command_group("config", "Check the configuration before a deploy.")


@command(config_group, "check", short_help="Check every setting, connection and file before a deploy.")
@json_option
@click.pass_context
def config_check(ctx: click.Context, as_json: bool) -> None:
    """Check every setting in the environment and env file: URL syntax, the secret's strength, the
    IMAP login and folders, the SMTP server's EHLO and AUTH, the database reachable and migrated,
    rules.yaml, and the template overrides. One line per check (--json: a list of {check, ok,
    detail}). It sends no mail and changes nothing.

    \b
    Exit status:
      0  every check passed
      1  a check failed
      2  the configuration cannot be read (the env file is missing or malformed)
    """
    from escalate.ops import configcheck

    results = configcheck.run_checks(configcheck.read_environment(ctx.obj.get("env_file")))
    if as_json:
        _emit([result.as_dict() for result in results], True)
    else:
        width = max(len(result.check) for result in results)
        for result in results:
            click.echo(f"{'ok  ' if result.ok else 'FAIL'}  {result.check.ljust(width)}  {result.detail}")
    ctx.exit(configcheck.exit_status(results))
