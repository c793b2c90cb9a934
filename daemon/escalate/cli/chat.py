"""`escalate chat …`: the chat channels beside the email groups."""

from __future__ import annotations

import click

from escalate.cli.app import _emit, _open_db, _settings, command, command_group, json_option

chat_group = command_group("chat", "Chat channels beside the email groups (ESCALATE_CHAT_<NAME>=<Apprise URL>).",
                           short_help="Chat channels beside the email groups.")


@command(chat_group, "list")
@json_option
@click.pass_context
def chat_list(ctx: click.Context, as_json: bool) -> None:
    """The configured channels (URLs redacted) and each one's last delivery."""
    from escalate.outbound import chatsend
    from escalate.reports import views

    _open_db(ctx)
    found = chatsend.channels()
    _emit(found, as_json, views.chat_table)


@command(chat_group, "test", short_help="Post a test message to channel NAME now.")
@click.argument("name")
@json_option
@click.pass_context
def chat_test(ctx: click.Context, name: str, as_json: bool) -> None:
    """Post a test message to channel NAME now and print the service's answer."""
    from escalate.outbound import chat, chatsend

    _settings(ctx)  # the log redactor learns the channel URLs
    name = name.lower()
    problem = chat.channel_problem(name)
    if problem:
        raise click.UsageError(problem)
    outcome = chatsend.post(chat.channel_url(name), "escalate test message",
                            f"A test from escalate: channel **{name}** reaches this chat.")
    if as_json:
        _emit({"channel": name, "posted": outcome.ok, "reason": None if outcome.ok else outcome.reason}, True)
    elif outcome.ok:
        click.echo(f"{name}: posted; the service accepted it")
    else:
        click.echo(f"{name}: not posted: {outcome.reason}", err=True)
    if not outcome.ok:
        ctx.exit(1)
