"""Times as the team reads them: with `timezone: Europe/Berlin` in rules.yaml, a ticket opened at
09:00 UTC shows as 10:00 CET in winter and 11:00 CEST in summer — in the escalation mail (text and
HTML), `tickets list`, the text report and the HTML report. JSON keeps ISO 8601 with its offset."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from escalate.clock import parse_time
from escalate.testing.loopback import Dovecot, SmtpSink

from tests.conftest import TEST_RULES

SEASONS = [("winter", "2026-11-02T09:00:00+00:00", "2026-11-02 10:00 CET"),
           ("summer", "2026-07-06T09:00:00+00:00", "2026-07-06 11:00 CEST")]


@pytest.mark.parametrize(("season", "opened", "shown"), SEASONS, ids=[s[0] for s in SEASONS])
def test_times_show_in_the_teams_zone(season, opened, shown, cli, rules_file, dovecot: Dovecot,
                                      smtp_sink: SmtpSink, mail, tmp_path: Path):
    rules_file(TEST_RULES.replace("timezone: UTC", "timezone: Europe/Berlin"))
    start = parse_time(opened)

    def at(minutes: int) -> str:
        return (start + timedelta(minutes=minutes)).isoformat()

    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="Error 502.", date=opened))
    # urgent, unanswered: tier 1 at 15 minutes, reminders every 10, tier 2 (the top) at 45
    for minutes in (0, 16, 26, 36, 46):
        cli("run", "--once", "--now", at(minutes))
    escalation = smtp_sink.wait_for(4)[0].message
    text = escalation.get_body(("plain",)).get_content()
    html = escalation.get_body(("html",)).get_content()
    assert f"Opened {shown}" in text and f"Opened {shown}" in html
    assert "UTC" not in text  # no time in the mail is left in UTC
    assert f"Opened {shown} (16m ago)" in text

    listing = cli("tickets", "list").output
    assert shown in listing
    # the first escalation was queued at 09:16 UTC
    first_mail = shown.replace(":00 ", ":16 ")
    assert first_mail in cli("outbox", "list").output
    assert first_mail in cli("outbox", "show", "1").output
    # JSON keeps ISO 8601 with the offset, in UTC
    assert json.loads(cli("tickets", "list", "--json").output)[0]["created_at"] == opened

    report_text = cli("report", "--since", at(-60), "--until", at(60), "--now", at(60)).output
    # the window, and the ticket in the list of those that reached the top tier
    assert shown in report_text.split("Reached tier 2")[1]
    page = tmp_path / "report.html"
    cli("report", "--since", at(-60), "--until", at(60), "--now", at(60), "--html", str(page))
    html_report = page.read_text(encoding="utf-8")
    assert f"<td>{shown}</td>" in html_report
