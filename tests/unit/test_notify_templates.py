"""Templates for every kind of mail: shipped ones render, admin overrides are checked in the
sandbox, customer text stays data and is escaped in HTML."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from escalate.cli import main
from escalate.outbound.templates import KINDS, Renderer, check_templates

from tests.conftest import TEST_RULES

HOSTILE = ["{{ 7*7 }}", "{% for x in range(10**9) %}x{% endfor %}", "{{ ''.__class__.__mro__ }}", "{{ config }}",
           "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


def test_every_kind_ships_as_text_and_html_and_passes_the_check():
    renderer = Renderer()
    assert set(KINDS) <= renderer.names()
    assert {"escalation", "reminder", "next-tier", "breach", "input-request", "digest", "acknowledgement",
            "resolution", "confirmation"} <= set(KINDS)
    assert check_templates(renderer) == []
    assert not any(name.startswith("_") for name in renderer.names())  # shared parts are not mail


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_customer_text_is_data_in_text_and_escaped_in_html(kind):
    """Every string a template receives may be customer text; none of it is ever code."""
    def poison(value):
        if isinstance(value, str):
            return " ".join(HOSTILE)
        if isinstance(value, dict):
            return {k: poison(v) for k, v in value.items()}
        if isinstance(value, list):
            return [poison(v) for v in value]
        return value
    mail = Renderer().render(kind, poison(KINDS[kind]))
    assert "{{ 7*7 }}" in mail.text and "49" not in mail.text.replace("2049", "")
    assert "<script>alert(1)</script>" in mail.text  # the text part shows it literally
    assert "<script>" not in mail.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "<img" not in mail.html and "&#34;&gt;&lt;img" in mail.html
    assert "{{ 7*7 }}" in mail.html


def _admin_dir(tmp_path: Path, name: str, text: str, html: str = "<p>{{ ticket.ref }}</p>") -> Path:
    directory = tmp_path / "admin-templates"
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.txt.j2").write_text(text, encoding="utf-8")
    (directory / f"{name}.html.j2").write_text(html, encoding="utf-8")
    return directory


def test_an_admin_override_is_used_before_the_shipped_template(tmp_path):
    directory = _admin_dir(tmp_path, "reminder", "Still open: {{ ticket.ref }}, step {{ step_in_tier }}.\n")
    renderer = Renderer(directory)
    assert check_templates(renderer) == []
    assert renderer.render("reminder", KINDS["reminder"]).text == "Still open: T-1, step 1.\n"


@pytest.mark.parametrize("source, problem", [
    ("{{ ''.__class__.__mro__ }}", "refused by the sandbox"),
    ("{% for x in range(10**9) %}{% endfor %}", "OverflowError"),
    ("{{ config }}", "'config' is undefined"),
    ("{{ ticket.reff }}", "has no attribute 'reff'"),
    ("{% if %}", "reminder.txt.j2:1"),
])
def test_the_sandbox_rejects_unsafe_or_broken_admin_templates(tmp_path, source, problem):
    problems = check_templates(Renderer(_admin_dir(tmp_path, "reminder", source)))
    assert len(problems) == 1 and "reminder" in problems[0] and problem in problems[0], problems


def test_an_admin_html_template_that_unescapes_customer_text_is_refused(tmp_path):
    directory = _admin_dir(tmp_path, "escalation", "{{ ticket.subject }}\n", "<p>{{ ticket.subject | safe }}</p>")
    [problem] = check_templates(Renderer(directory))
    assert "escalation.html.j2" in problem and "not HTML-escaped" in problem


def test_rules_check_validates_the_admin_templates(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(TEST_RULES, encoding="utf-8")
    env = {"ESCALATE_RULES": str(rules), "ESCALATE_DB_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    ok = CliRunner().invoke(main, ["rules", "check"], env=env)
    assert ok.exit_code == 0, ok.output
    env["ESCALATE_TEMPLATES"] = str(_admin_dir(tmp_path, "breach", "{{ ''.__class__.__mro__ }}"))
    bad = CliRunner().invoke(main, ["rules", "check"], env=env)
    assert bad.exit_code == 2
    assert "template breach.txt.j2" in bad.output and "refused by the sandbox" in bad.output


@pytest.mark.parametrize("kind", ["escalation", "reminder", "next-tier", "breach", "resolution"])
def test_mail_queued_by_the_previous_version_still_renders(kind):
    """Outbox rows keep the variables as they were decided; after an upgrade the sender renders
    rows the previous version queued, whose contexts lack what the templates learned since (the
    ladder's other rules, the overdue mark, history in words)."""
    old = {key: value for key, value in KINDS[kind].items() if key != "rules"}
    if "ticket" in old:
        old["ticket"] = {k: v for k, v in old["ticket"].items() if k != "resolution_overdue"}
    if "history" in old:
        old["history"] = [{"at": "2026-11-02 09:00 UTC", "actor": "escalate", "action": "escalated", "rule": "r"}]
    mail = Renderer().render(kind, old)
    assert "T-1" in mail.text and (kind == "breach" or "escalated" in mail.text or kind == "resolution")


def test_a_ladder_mail_names_every_rule_that_holds_and_marks_a_passed_target_overdue():
    context = {**KINDS["escalation"], "rules": [KINDS["escalation"]["rule"],
                                                {"name": "matrix/urgent/4h", "description": "The matrix."}],
               "ticket": {**KINDS["escalation"]["ticket"], "resolution_overdue": "2h"}}
    mail = Renderer().render("escalation", context)
    assert 'Also holding: "matrix/urgent/4h"' in mail.text and "OVERDUE by 2h" in mail.text
    assert "matrix/urgent/4h" in mail.html and "overdue by 2h" in mail.html


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_no_line_of_any_mail_reads_as_a_command(kind):
    """A reply quoting our mail inline, under a header no quote detector knows, must not find a
    command in it: the help names #ack and #resolve, never at the start of a line, in either part
    (the HTML part as our own reader and clients turn it into text)."""
    from escalate.mail.parse import html_to_text
    from escalate.tickets.commands import find_commands, is_command_line

    mail = Renderer().render(kind, KINDS[kind])
    for text in (mail.text, html_to_text(mail.html)):
        assert [line for line in text.splitlines() if is_command_line(line)] == []
        assert find_commands(text) == []
    if kind in ("escalation", "reminder", "next-tier"):
        assert "#ack" in mail.text and "#resolve" in mail.text and "#ack" in mail.html  # still told how to act
