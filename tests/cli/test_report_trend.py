"""`escalate report`'s trend: per ISO week in the team's zone (per day for a short window), each
week beside the same stretch one period earlier, with breaches as a share of the tickets — on a
history whose every number is worked out by hand below, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from escalate.cli import main
from escalate.store import db
from escalate.store.models import Escalation, Ticket

from tests.cli.test_report import REPO, WINDOW, _ticket, t

# Three whole ISO weeks in Berlin (W45-W47 of 2026), Monday 00:00 CET = Sunday 23:00 UTC.
SINCE, UNTIL, NOW = "2026-11-02T00:00:00+01:00", "2026-11-23T00:00:00+01:00", "2026-11-23T12:00:00+00:00"
BERLIN_WEEKS = ["--since", SINCE, "--until", UNTIL, "--now", NOW]


def _acknowledged(ticket: Ticket, started: str, acknowledged: str, tier: int = 1) -> None:
    Escalation.create(ticket=ticket, rule="urgent-no-first-response", tier=tier, step=0, started_at=t(started),
                      last_step_due_at=t(started), state="acknowledged", acknowledged_at=t(acknowledged),
                      acknowledged_by="alice@example.com")


def seed_weeks(db_url: str) -> None:
    """Urgent tickets (24x7: first response 15 min, resolution 4 h) in the window and the three
    weeks before it; the previous period runs 2026-10-11 23:00 to 2026-11-01 23:00 UTC."""
    db.connect(db_url)
    # W45: escalated, #ack after 30 min, first response 30 min (breach), resolved in 2 h
    a = _ticket(1, "Checkout is down", "a@customer.example", "urgent", "2026-11-02T09:00", status="resolved", tier=1,
                first_response="2026-11-02T09:45", acknowledged="2026-11-02T09:45", resolved="2026-11-02T11:00")
    _acknowledged(a, "2026-11-02T09:15", "2026-11-02T09:45")
    # W45 too: Sunday 23:30 in Berlin; answered in 10 min and resolved: no breach
    _ticket(2, "Outage", "c@customer.example", "urgent", "2026-11-08T22:30", status="resolved",
            first_response="2026-11-08T22:40", resolved="2026-11-08T23:00")
    # Sunday 23:30 UTC is Monday 00:30 in Berlin: W46 (in UTC it would be W45). #ack after 18 h;
    # both targets broken
    b = _ticket(3, "Data loss", "b@customer.example", "urgent", "2026-11-08T23:30", status="resolved", tier=2,
                first_response="2026-11-09T17:45", acknowledged="2026-11-09T17:45", resolved="2026-11-09T18:00")
    _acknowledged(b, "2026-11-08T23:45", "2026-11-09T17:45", tier=2)
    # W47: #ack after 10 min, first response in 25 min (breach)
    d = _ticket(4, "Site down", "d@customer.example", "urgent", "2026-11-17T10:00", status="resolved", tier=1,
                first_response="2026-11-17T10:25", acknowledged="2026-11-17T10:25", resolved="2026-11-17T11:00")
    _acknowledged(d, "2026-11-17T10:15", "2026-11-17T10:25")
    _ticket(5, "DRILL: practice", "support@example.com", "urgent", "2026-11-17T11:00", tier=1, drill=True)
    # the previous period's first week: one escalated (#ack after 2 h, first response broken), one fine
    p1 = _ticket(11, "Down again", "a@customer.example", "urgent", "2026-10-12T10:00", status="resolved", tier=1,
                 first_response="2026-10-12T12:15", acknowledged="2026-10-12T12:15", resolved="2026-10-12T13:00")
    _acknowledged(p1, "2026-10-12T10:15", "2026-10-12T12:15")
    _ticket(12, "Outage over", "e@customer.example", "urgent", "2026-10-13T10:00", status="resolved",
            first_response="2026-10-13T10:05", resolved="2026-10-13T10:30")
    # its last week: an hour before the window opens, never answered: both targets broken
    _ticket(13, "Urgent: export", "f@customer.example", "urgent", "2026-11-01T22:00")
    # before the previous period: in neither
    _ticket(14, "Emergency", "g@customer.example", "urgent", "2026-10-11T22:00")
    db.close()


@pytest.fixture
def run(tmp_path: Path, database_url: str):
    rules = tmp_path / "rules.yaml"
    rules.write_text(re.sub(r"^timezone: UTC$", "timezone: Europe/Berlin", (REPO / "rules.yaml").read_text(),
                            count=1, flags=re.M))
    env = {"ESCALATE_DB_URL": database_url, "ESCALATE_RULES": str(rules), "ESCALATE_SECRET": "test-secret",
           "ESCALATE_NOW": ""}
    seed_weeks(database_url)

    def invoke(*args: str):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        db.close()
        assert result.exit_code == 0, result.output
        return result
    return invoke


def numbers(tickets, escalations, breaches, share, first, resolution, acked, median, p90):
    return {"tickets": tickets, "escalations": escalations, "breaches": breaches, "breach_share": share,
            "first_response_breaches": first, "resolution_breaches": resolution, "acknowledged": acked,
            "ack_median_seconds": median, "ack_p90_seconds": p90}


NOTHING = numbers(0, 0, 0, None, 0, 0, 0, None, None)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_weekly_trend_in_the_team_zone_beside_the_previous_period(run):
    trend = json.loads(run("report", *BERLIN_WEEKS, "--json").stdout)["trend"]
    assert (trend["unit"], trend["zone"]) == ("week", "Europe/Berlin")
    assert trend["period"] == {"since": "2026-11-01T23:00:00+00:00", "until": "2026-11-22T23:00:00+00:00",
                               **numbers(4, 3, 3, 0.75, 3, 1, 3, 1800.0, 64800.0)}
    assert trend["previous_period"] == {"since": "2026-10-11T23:00:00+00:00", "until": "2026-11-01T23:00:00+00:00",
                                        **numbers(3, 1, 2, 0.667, 2, 1, 1, 7200.0, 7200.0)}
    weeks = trend["buckets"]
    assert [(w["label"], w["start"], w["end"], w["whole"]) for w in weeks] == [
        ("2026-W45", "2026-11-01T23:00:00+00:00", "2026-11-08T23:00:00+00:00", True),
        ("2026-W46", "2026-11-08T23:00:00+00:00", "2026-11-15T23:00:00+00:00", True),
        ("2026-W47", "2026-11-15T23:00:00+00:00", "2026-11-22T23:00:00+00:00", True)]
    strip = lambda w: {k: v for k, v in w.items() if k not in ("label", "start", "end", "whole", "previous")}  # noqa: E731
    assert [strip(w) for w in weeks] == [numbers(2, 1, 1, 0.5, 1, 0, 1, 1800.0, 1800.0),
                                         numbers(1, 1, 1, 1.0, 1, 1, 1, 64800.0, 64800.0),
                                         numbers(1, 1, 1, 1.0, 1, 0, 1, 600.0, 600.0)]
    # each week beside the same stretch three weeks (the window's length) earlier
    assert [(w["previous"]["start"], w["previous"]["end"]) for w in weeks] == [
        ("2026-10-11T23:00:00+00:00", "2026-10-18T23:00:00+00:00"),
        ("2026-10-18T23:00:00+00:00", "2026-10-25T23:00:00+00:00"),
        ("2026-10-25T23:00:00+00:00", "2026-11-01T23:00:00+00:00")]
    assert [strip(w["previous"]) for w in weeks] == [numbers(2, 1, 1, 0.5, 1, 0, 1, 7200.0, 7200.0), NOTHING,
                                                     numbers(1, 0, 1, 1.0, 1, 1, 0, None, None)]


def test_a_window_that_cuts_weeks_has_part_weeks_at_its_ends(run):
    """Dates given in UTC: the first week starts at 00:00 UTC (01:00 in Berlin), the last is one hour."""
    trend = json.loads(run("report", "--since", "2026-11-02", "--until", "2026-11-23", "--now", NOW,
                           "--json").stdout)["trend"]
    assert [(w["label"], w["whole"], w["tickets"]) for w in trend["buckets"]] == [
        ("2026-W45", False, 2), ("2026-W46", True, 1), ("2026-W47", True, 1), ("2026-W48", False, 0)]
    assert trend["buckets"][-1]["start"] == "2026-11-22T23:00:00+00:00"


def test_the_report_adds_breach_shares_and_keeps_its_keys(run):
    report = json.loads(run("report", *BERLIN_WEEKS, "--json").stdout)
    breaches = report["sla_breaches"]
    assert breaches["total"] == {"first_response": 3, "resolution": 1}
    assert breaches["share"] == {"first_response": 0.75, "resolution": 0.25, "tickets": 0.75}
    assert breaches["breached_tickets"] == 3
    urgent = next(row for row in breaches["by_severity"] if row["severity"] == "urgent")
    assert (urgent["tickets"], urgent["first_response_breached"], urgent["first_response_breach_share"],
            urgent["resolution_breached"], urgent["resolution_breach_share"]) == (4, 3, 0.75, 1, 0.25)
    high = next(row for row in breaches["by_severity"] if row["severity"] == "high")
    assert high["tickets"] == 0 and high["first_response_breach_share"] is None
    # the trend adds up to the report's own totals
    assert (report["trend"]["period"]["tickets"], report["trend"]["period"]["escalations"],
            report["trend"]["period"]["breaches"]) == (report["totals"]["tickets"], report["totals"]["escalated"],
                                                       breaches["breached_tickets"])


def test_a_short_window_is_shown_per_day(tmp_path: Path):
    """Below two weeks the buckets are days: the nine days of the report tests' history (UTC rules)."""
    from tests.cli.test_report import seed_history

    url = f"sqlite:///{tmp_path / 'escalate.db'}"
    seed_history(url)
    result = CliRunner().invoke(main, ["report", *WINDOW, "--json"], env={
        "ESCALATE_DB_URL": url, "ESCALATE_RULES": str(REPO / "rules.yaml"), "ESCALATE_SECRET": "s",
        "ESCALATE_NOW": ""}, catch_exceptions=False)
    trend = json.loads(result.stdout)["trend"]
    assert trend["unit"] == "day" and trend["zone"] == "UTC"
    assert [d["label"] for d in trend["buckets"]] == [f"2026-11-{day:02d}" for day in range(1, 10)]
    assert {d["label"]: d["tickets"] for d in trend["buckets"] if d["tickets"]} == {
        "2026-11-02": 3, "2026-11-06": 1, "2026-11-09": 1}
    assert trend["buckets"][0]["previous"]["start"] == "2026-10-23T00:00:00+00:00"
    assert trend["period"]["escalations"] == 2 and trend["period"]["breaches"] == 3  # T-1, T-2, T-4


def test_the_trend_costs_the_same_queries_for_a_year_as_for_three_weeks(run, caplog):
    """Per-bucket queries would make a year's 53 weeks cost 53 times more round trips."""
    def queries(*window: str) -> int:
        caplog.clear()
        with caplog.at_level(logging.DEBUG, logger="peewee"):
            run("report", *window, "--json")
        return len(caplog.records)

    three_weeks = queries(*BERLIN_WEEKS)
    year = queries("--since", "2025-11-23", "--until", "2026-11-23", "--now", NOW)
    assert three_weeks == year and three_weeks > 5


def test_boundaries_follow_the_zone_across_a_dst_change():
    import zoneinfo
    from datetime import timezone

    from escalate.reports.trend import boundaries, label

    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    days = boundaries(t("2026-10-24T00:00"), t("2026-10-27T00:00"), berlin, "day")
    # Sunday 25 October has 25 hours in Berlin: midnight is 22:00 UTC before the change, 23:00 UTC after
    assert [d.astimezone(timezone.utc).isoformat() for d in days] == [
        "2026-10-24T00:00:00+00:00", "2026-10-24T22:00:00+00:00", "2026-10-25T23:00:00+00:00",
        "2026-10-26T23:00:00+00:00", "2026-10-27T00:00:00+00:00"]
    assert [label(d, berlin, "day") for d in days[:-1]] == ["2026-10-24", "2026-10-25", "2026-10-26", "2026-10-27"]
