"""One CLI style, checked on every command there is (walked from `escalate.cli.main`, so a command
added tomorrow is checked too): every option says what it does, every command answers `--json`
unless it is one of the few listed below with the reason, `--now` is offered exactly where the
result depends on the time, the rules file is given the same way to every `rules` command, and no
command's help is cut short in its group's listing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from escalate.cli import main
from escalate.cli.manpage import walk

COMMANDS = [(path, command) for path, command in walk(main) if path]

# Commands without --json, and why. Groups that only list their subcommands are not in this list:
# they print nothing of their own.
WITHOUT_JSON = {
    ("demo",): "a narrated run on throwaway loopback servers; its state stays behind for the other commands",
    ("rules", "doc"): "its output is a Markdown document; `rules matrix --json` gives the matrix as data",
}

# The commands whose result depends on the time: they act at it, or count ages and due times from it.
TIME_DEPENDENT = {
    ("run",), ("status",), ("report",), ("import",), ("drill",),
    ("tickets", "list"),  # --overdue
    *(("tickets", action) for action in ("ack", "resolve", "note", "escalate", "assign", "reply", "severity", "wait",
                                         "close", "snooze")),
    ("rules", "explain"), ("rules", "simulate"),
    ("outbox", "retry"), ("outbox", "cancel"), ("quarantine", "retry"),
}


def names(path: tuple[str, ...]) -> str:
    return " ".join(path)


def prints_something(command: click.Command) -> bool:
    return not isinstance(command, click.Group) or command.invoke_without_command


def option_names(command: click.Command) -> set[str]:
    return {name for param in command.params if isinstance(param, click.Option) for name in param.opts}


def test_the_walk_reaches_every_level():
    found = {names(path) for path, _ in COMMANDS}
    assert {"tickets ack", "rules check", "outbox list", "drill report", "init", "status"} <= found


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[names(p) for p, _ in COMMANDS])
def test_every_option_says_what_it_does(path, command):
    silent = [param.opts for param in command.params if isinstance(param, click.Option) and not param.help]
    assert not silent, f"escalate {names(path)}: options without help: {silent}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[names(p) for p, _ in COMMANDS])
def test_every_command_answers_json_unless_listed(path, command):
    if not prints_something(command):
        return
    if path in WITHOUT_JSON:
        assert "--json" not in option_names(command), f"escalate {names(path)} has --json now: drop its exception"
    else:
        assert "--json" in option_names(command), f"escalate {names(path)} has no --json"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[names(p) for p, _ in COMMANDS])
def test_now_is_offered_exactly_where_time_matters(path, command):
    offered = "--now" in option_names(command)
    if path in TIME_DEPENDENT:
        assert offered, f"escalate {names(path)} depends on the time but takes no --now"
    else:
        assert not offered, f"escalate {names(path)} takes --now, which changes nothing it does"


def test_every_rules_command_takes_the_rules_file_the_same_way():
    rules = [(path, command) for path, command in COMMANDS if path[0] == "rules" and len(path) == 2]
    assert {path[1] for path, _ in rules} >= {"check", "matrix", "explain", "simulate", "doc"}
    for path, command in rules:
        arguments = [param for param in command.params if isinstance(param, click.Argument)]
        assert arguments and arguments[-1].name == "file" and not arguments[-1].required, names(path)
        assert not any("--rules" in param.opts for param in command.params if not getattr(param, "hidden", False))


@pytest.mark.parametrize("group", [path for path, command in walk(main) if isinstance(command, click.Group)],
                         ids=lambda path: names(path) or "escalate")
def test_no_command_help_is_cut_short_in_its_group_listing(group):
    listing = CliRunner().invoke(main, [*group, "--help"], terminal_width=80).output
    commands = listing.split("Commands:\n", 1)[1].splitlines() if "Commands:\n" in listing else []
    assert commands
    for line in commands:
        assert not line.endswith("..."), line
        assert line.count("(") == line.count(")"), line


def test_json_without_once_is_bad_usage():
    result = CliRunner().invoke(main, ["run", "--json"])
    assert result.exit_code == 2 and "--once" in result.output


def test_rules_check_and_init_answer_json(tmp_path: Path):
    repo = Path(__file__).resolve().parents[2]
    good = CliRunner().invoke(main, ["rules", "check", str(repo / "rules.yaml"), "--json"], env={"ESCALATE_RULES": ""})
    assert good.exit_code == 0
    checked = json.loads(good.stdout)
    assert checked["ok"] is True and checked["errors"] == [] and checked["file"] == str(repo / "rules.yaml")
    bad = tmp_path / "rules.yaml"
    bad.write_text(re.sub(r"(?m)^(\s+repeat_every:) 10m$", r"\1 soon", (repo / "rules.yaml").read_text(), count=1))
    refused = CliRunner().invoke(main, ["rules", "check", str(bad), "--json"], env={"ESCALATE_RULES": ""})
    assert refused.exit_code == 2  # the JSON on stdout, the one-line summary on stderr
    [error] = json.loads(refused.stdout)["errors"]
    assert error.startswith(f"{bad}:") and "repeat_every" in error and "1 error in" in refused.stderr

    site = tmp_path / "site"
    written = CliRunner().invoke(main, ["init", str(site), "--json"], env={"ESCALATE_DB_URL": ""})
    assert written.exit_code == 0, written.output
    assert json.loads(written.stdout) == {"rules": str((site / "rules.yaml").resolve()),
                                          "env_file": str((site / "escalate.env").resolve()),
                                          "database": f"sqlite:///{(site / 'escalate.db').resolve()}"}
