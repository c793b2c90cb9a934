"""`escalate report`: every number in its text and JSON output, on a small history whose answers
are known by hand — including the cases the clocks must get right (a weekend under business
hours, a wait on the customer) and a drill ticket that must stay out of the numbers."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from escalate.cli import main
from escalate.clock import parse_time
from escalate.ingest.conversations import normalise_subject
from escalate.store import db
from escalate.store.models import Escalation, Message, Outbox, Ticket
from escalate.tickets import audit

REPO = Path(__file__).resolve().parents[2]
NOW = "2026-11-09T12:00:00+00:00"  # a Monday; 2026-11-02 is the Monday before
WINDOW = ["--since", "2026-11-01", "--until", "2026-11-10", "--now", NOW]


def t(text: str) -> datetime:
    return parse_time(text)


def _ticket(number: int, subject: str, requester: str, severity: str, created: str, *, status: str = "open",
            tier: int | None = None, first_response: str | None = None, acknowledged: str | None = None,
            resolved: str | None = None, waiting_since: str | None = None, drill: bool = False) -> Ticket:
    return Ticket.create(
        id=number, ref=f"T-{number}", subject=subject, normalised_subject=normalise_subject(subject),
        requester=requester, status=status, severity=severity, tier=tier, created_at=t(created), updated_at=t(created),
        first_response_at=t(first_response) if first_response else None,
        acknowledged_at=t(acknowledged) if acknowledged else None, acknowledged_by="alice@example.com" if acknowledged else None,
        resolved_at=t(resolved) if resolved else None, waiting_since=t(waiting_since) if waiting_since else None,
        message_count=1, drill=drill, next_due_at=t(NOW) if status in ("new", "open") and not drill else None)


def _notifications(ticket: Ticket, rule: str, started: str, tiers_and_kinds: list[tuple[int, str]]) -> None:
    for step, (tier, kind) in enumerate(tiers_and_kinds):
        at = t(started) + timedelta(minutes=10 * step)
        Outbox.create(ticket=ticket, kind=kind, rule=rule, step=step, due_at=at, tier=tier,
                      message_id=f"<n.{ticket.id}.{step}@example.com>", mail_from="support@example.com",
                      recipients=[f"tier{tier}@example.com"], subject=f"[{ticket.ref}] {ticket.subject}", raw=b"",
                      status="sent", next_attempt_at=at, created_at=at, sent_at=at)


def seed_history(db_url: str) -> None:
    """Six tickets in the week of 2026-11-02 (rules: the example rules.yaml; "normal" counts the
    office calendar, Mon–Fri 08:00–18:00 Europe/Berlin = 07:00–17:00 UTC in November)."""
    db.connect(db_url)
    # urgent, acknowledged after one reminder (10 min), resolved in 3 h: first response 25 min > 15 min target
    one = _ticket(1, "Checkout is down", "carl@customer.example", "urgent", "2026-11-02T09:00", status="resolved",
                  tier=1, first_response="2026-11-02T09:25", acknowledged="2026-11-02T09:25", resolved="2026-11-02T12:00")
    Escalation.create(ticket=one, rule="urgent-no-first-response", tier=1, step=1, started_at=t("2026-11-02T09:15"),
                      last_step_due_at=t("2026-11-02T09:25"), state="acknowledged",
                      acknowledged_at=t("2026-11-02T09:25"), acknowledged_by="alice@example.com")
    _notifications(one, "urgent-no-first-response", "2026-11-02T09:15", [(1, "escalation"), (1, "reminder")])
    # the same problem from another customer: climbed to tier 3 after six reminders, #ack after 75 min,
    # resolved after 6 h (past the 4 h target)
    two = _ticket(2, "RE: Checkout is down", "dana@other.example", "urgent", "2026-11-02T09:00", status="resolved",
                  tier=3, first_response="2026-11-02T10:30", acknowledged="2026-11-02T10:30", resolved="2026-11-02T15:00")
    Escalation.create(ticket=two, rule="urgent-no-first-response", tier=3, step=6, started_at=t("2026-11-02T09:15"),
                      last_step_due_at=t("2026-11-02T10:15"), state="acknowledged",
                      acknowledged_at=t("2026-11-02T10:30"), acknowledged_by="heidi@example.com")
    _notifications(two, "urgent-no-first-response", "2026-11-02T09:15",
                   [(1, "escalation"), (1, "reminder"), (1, "reminder"), (2, "next-tier"), (2, "reminder"),
                    (2, "reminder"), (3, "next-tier")])
    audit.record(two, t("2026-11-02T09:00"), "dana@other.example", "created", severity="urgent", reason="new mail")
    audit.record(two, t("2026-11-02T09:15"), "escalate", "escalated", rule="urgent-no-first-response", tier=1, step=0)
    audit.record(two, t("2026-11-02T10:15"), "escalate", "escalated-next-tier", rule="urgent-no-first-response",
                 tier=3, step=6)
    audit.record(two, t("2026-11-02T10:30"), "heidi@example.com", "acknowledged", via="mail", escalations_stopped=1)
    # Friday 18:00 Berlin to Monday 09:30 Berlin is 63.5 h on the wall but 1.5 h of office time: no breach
    _ticket(3, "Invoice question", "erin@third.example", "normal", "2026-11-06T17:00", first_response="2026-11-09T08:30")
    # no answer for a week: both normal targets broken (4 h first response, 2 d resolution)
    four = _ticket(4, "Export fails", "frank@customer.example", "normal", "2026-11-02T08:00")
    Message.create(ticket=four, dedupe_key="m4@customer.example", message_id="m4@customer.example", sha256="x",
                   kind="customer", from_addr="frank@customer.example", subject="Export fails",
                   received_at=t("2026-11-02T08:00"), body_text="The CSV export stops with error 0x80.",
                   new_text="The CSV export stops with error 0x80.", raw=b"")
    # 4.5 h of office time since it came in, 3 h of them waiting on the customer: 1.5 h counted, no breach
    _ticket(5, "Login slow", "gina@customer.example", "normal", "2026-11-09T07:30", status="waiting",
            waiting_since="2026-11-09T09:00")
    # a drill: escalated and acknowledged, but never part of the numbers unless asked
    six = _ticket(6, "DRILL: practice escalation for Frontline (tier 1), no customer is waiting", "support@example.com",
                  "normal", "2026-11-03T10:00", tier=1, acknowledged="2026-11-03T10:05", drill=True)
    Escalation.create(ticket=six, rule="drill", tier=1, step=0, started_at=t("2026-11-03T10:00"),
                      last_step_due_at=t("2026-11-03T10:00"), state="acknowledged",
                      acknowledged_at=t("2026-11-03T10:05"), acknowledged_by="bob@example.com")
    _notifications(six, "drill", "2026-11-03T10:00", [(1, "escalation")])
    db.close()


@pytest.fixture
def run(tmp_path: Path):
    env = {"ESCALATE_DB_URL": f"sqlite:///{tmp_path / 'escalate.db'}", "ESCALATE_RULES": str(REPO / "rules.yaml"),
           # a secret of full strength: the ticket actions (tests/cli/test_ticket_actions_roster.py) refuse a weak one
           "ESCALATE_SECRET": "5e" * 32, "ESCALATE_NOW": ""}
    seed_history(env["ESCALATE_DB_URL"])

    def invoke(*args: str, expect: int = 0):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        db.close()
        assert result.exit_code == expect, result.output
        return result
    return invoke


def test_report_json_has_every_number(run):
    report = json.loads(run("report", *WINDOW, "--json").stdout)
    assert report["window"] == {"since": "2026-11-01T00:00:00+00:00", "until": "2026-11-10T00:00:00+00:00",
                                "now": NOW, "drills_included": False}
    assert report["totals"] == {"tickets": 5, "escalated": 2, "acknowledged": 2, "resolved": 2, "reached_top_tier": 1,
                                  "ladder_exhausted": 0}
    assert report["escalations_per_tier"] == [
        {"tier": 1, "name": "Frontline", "tickets": 2, "notifications": 5, "reminders": 3},
        {"tier": 2, "name": "Specialists", "tickets": 1, "notifications": 3, "reminders": 2},
        {"tier": 3, "name": "Critical response", "tickets": 1, "notifications": 1, "reminders": 0},
    ]
    [rule] = report["escalations_per_rule"]
    assert rule == {"rule": "urgent-no-first-response",
                    "description": "Urgent tickets must get a first response within 15 minutes.",
                    "tickets": 2, "acknowledged": 2, "ack_median_seconds": 600.0, "ack_p90_seconds": 4500.0}
    ack = report["time_to_acknowledge"]
    assert ack["by_tier"] == [
        {"tier": 1, "name": "Frontline", "count": 1, "median_seconds": 600.0, "p90_seconds": 600.0},
        {"tier": 3, "name": "Critical response", "count": 1, "median_seconds": 4500.0, "p90_seconds": 4500.0}]
    assert ack["by_severity"] == [{"severity": "urgent", "count": 2, "median_seconds": 600.0, "p90_seconds": 4500.0}]
    resolve = report["time_to_resolve"]
    assert [(r["tier"], r["median_seconds"]) for r in resolve["by_tier"]] == [(1, 10800.0), (3, 21600.0)]
    assert resolve["by_severity"] == [{"severity": "urgent", "count": 2, "median_seconds": 10800.0, "p90_seconds": 21600.0}]
    repeats = report["repeats_before_ack"]
    assert [h["tickets"] for h in repeats["histogram"]] == [0, 1, 0, 0, 0, 0, 1]
    assert repeats["mean"] == 3.5 and repeats["first_notice_share"] == 0.0
    breaches = {row["severity"]: row for row in report["sla_breaches"]["by_severity"]}
    assert breaches["urgent"] == {"severity": "urgent", "tickets": 2, "first_response_target_seconds": 900.0,
                                  "first_response_breached": 2, "first_response_breach_share": 1.0,
                                  "resolution_target_seconds": 14400.0, "resolution_breached": 1,
                                  "resolution_breach_share": 0.5}
    # T-4 broke both; T-3 (a weekend in between) and T-5 (waiting on the customer) broke nothing
    assert (breaches["normal"]["tickets"], breaches["normal"]["first_response_breached"],
            breaches["normal"]["resolution_breached"]) == (3, 1, 1)
    assert breaches["high"]["tickets"] == 0 and breaches["low"]["first_response_breached"] == 0
    assert report["sla_breaches"]["total"] == {"first_response": 3, "resolution": 2}
    top = report["top_tier"]
    assert (top["level"], top["name"], top["count"]) == (3, "Critical response", 1)
    assert [x["ref"] for x in top["tickets"]] == ["T-2"]
    assert report["recurring_issues"] == [{"subject": "checkout is down", "tickets": 2, "customers": 2,
                                           "escalated": 2, "latest_ref": "T-2"}]
    assert report["top_senders"] == [{"requester": "carl@customer.example", "escalated_tickets": 1},
                                     {"requester": "dana@other.example", "escalated_tickets": 1}]
    assert report["top_domains"] == [{"domain": "customer.example", "escalated_tickets": 1, "senders": 1},
                                     {"domain": "other.example", "escalated_tickets": 1, "senders": 1}]


def test_drills_count_only_when_asked(run):
    report = json.loads(run("report", *WINDOW, "--drills", "--json").stdout)
    assert report["window"]["drills_included"] is True
    assert report["totals"]["tickets"] == 6 and report["totals"]["escalated"] == 3
    assert report["escalations_per_tier"][0]["tickets"] == 3
    assert {r["rule"] for r in report["escalations_per_rule"]} == {"urgent-no-first-response", "drill"}


def test_report_text_for_people(run):
    out = run("report", *WINDOW).stdout
    assert "Escalation report: tickets opened 2026-11-01 00:00 UTC to 2026-11-10 00:00 UTC (drills left out)" in out
    assert ("5 tickets, 2 escalated, 2 acknowledged, 2 resolved, 1 reached tier 3 (Critical response), "
            "0 went unanswered to the end of their ladder.") in " ".join(out.split())
    rows = [" ".join(line.split()) for line in out.splitlines()]
    for row in ("1 Frontline 2 5 3", "2 Specialists 1 3 2", "3 Critical response 1 1 0",
                "urgent-no-first-response 2 2 10m 1h 15m",
                "tier 1 Frontline 1 10m 10m", "severity urgent 2 10m 1h 15m",  # time to acknowledge
                "tier 3 Critical response 1 6h 6h",  # time to resolve
                # SLA breaches, as counts and as shares of the severity's tickets
                "urgent 2 15m 2 (100%) 4h 1 (50%)", "normal 3 4h 1 (33%) 2d 1 (33%)", "low 0 1d 0 (-) 7d 0 (-)",
                "6 1",  # six reminders before one #ack
                "checkout is down 2 2 2 T-2",
                # senders and domains in tables of their own: no row pairs a sender with a domain
                "carl@customer.example 1", "dana@other.example 1", "customer.example 1 1", "other.example 1 1",
                # the trend per day beside the nine days before: 2 November, and the whole period
                "2026-11-02 3 2 3 (100%) 10m 0 0 0 (-) -", "whole period 5 2 3 (60%) 10m 0 0 0 (-) -"):
        assert row in rows, f"{row!r} not in the report:\n{out}"
    assert "carl@customer.example 1 customer.example 1 1" not in rows
    assert "0% acknowledged at the first notice; 3.5 reminders on average." in out
    assert any(r.startswith("T-2 urgent resolved 2026-11-02 09:00 UTC dana@other.example") for r in rows)
    assert "DRILL" not in out
    assert "\x1b[" not in out  # no colour codes when piped


def test_empty_window_says_what_to_try(run):
    out = run("report", "--since", "2020-01-01", "--until", "2020-02-01", "--now", NOW).stdout
    assert "0 tickets" in out and "try an earlier --since" in out
    assert json.loads(run("report", "--since", "2020-01-01", "--until", "2020-02-01", "--json").stdout)["totals"]["tickets"] == 0


def test_default_window_is_the_last_30_days(run):
    report = json.loads(run("report", "--now", NOW, "--json").stdout)
    assert report["window"]["since"] == "2026-10-10T12:00:00+00:00" and report["window"]["until"] == NOW
    assert report["totals"]["tickets"] == 5


def test_bad_dates_are_bad_usage_with_the_fix(run):
    out = run("report", "--since", "last week", expect=2).output
    assert "--since" in out and "2026-11-01" in out
    out = run("report", "--since", "2026-11-10", "--until", "2026-11-01", expect=2).output
    assert "must be before --until" in out


def test_html_file_that_cannot_be_written_is_a_runtime_failure(run, tmp_path: Path):
    out = run("report", *WINDOW, "--html", str(tmp_path / "missing" / "report.html"), expect=1).output
    assert "cannot write" in out and "choose a writable path for --html" in out


def test_html_next_to_json_keeps_stdout_json(run, tmp_path: Path):
    target = tmp_path / "report.html"
    result = run("report", *WINDOW, "--json", "--html", str(target))
    assert json.loads(result.stdout)["totals"]["tickets"] == 5
    assert f"wrote {target}" in result.stderr
    html = target.read_text()
    assert html.count("<svg") == 6 and "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")


def test_report_names_a_rules_problem(run, tmp_path: Path):
    broken = tmp_path / "rules.yaml"
    broken.write_text("version: 1\nseverities: soon\n")
    result = CliRunner().invoke(main, ["report", "--json"], env={
        "ESCALATE_DB_URL": f"sqlite:///{tmp_path / 'escalate.db'}", "ESCALATE_RULES": str(broken)})
    assert result.exit_code == 2 and str(broken) in result.output


def test_percentiles_are_nearest_rank():
    from escalate.reports.window import durations
    assert durations([]) == {"count": 0, "median_seconds": None, "p90_seconds": None}
    assert durations(range(1, 11)) == {"count": 10, "median_seconds": 5, "p90_seconds": 9}
    assert durations([3, 1, 2]) == {"count": 3, "median_seconds": 2, "p90_seconds": 3}


def test_working_time_tables_agree_with_the_calendar():
    """sla.WorkingTime (the report's fast sums) against Calendar.business_time (the engine's),
    across a DST change (Europe/Berlin, 25 Oct 2026) and the Christmas holidays of the example rules."""
    import random

    from escalate.rules.loader import load_ruleset
    from escalate.tickets.sla import WorkingTime

    office = load_ruleset(REPO / "rules.yaml").calendar("office")
    start, end = t("2026-10-01T00:00"), t("2027-01-10T00:00")
    table = WorkingTime(office, start.timestamp(), end.timestamp())
    rng = random.Random(8)
    for _ in range(300):
        a = start + timedelta(seconds=rng.uniform(0, (end - start).total_seconds()))
        b = a + timedelta(seconds=rng.uniform(0, 20 * 86400))
        b = min(b, end)
        assert abs(table.between(a.timestamp(), b.timestamp()) - office.business_time(a, b).total_seconds()) < 1e-3
