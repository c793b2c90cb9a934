"""What the admin is told about working days: `rules check` notes the durations whose "d" and "w"
now count working days (with both readings), `rules doc` explains it with an example, and
`rules explain` shows a target of days as working time and its due date."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_cli import REPO, run
from tests.cli.test_tickets_list import run as seeded  # noqa: F401  (the fixture: the report tests' history)
from tests.conftest import TEST_RULES


def test_rules_check_notes_durations_that_now_mean_working_days(tmp_path: Path):
    short = run("rules", "check", str(REPO / "rules.yaml")).output
    assert len(short.splitlines()) == 2 and "durations here count so (`rules check --notes` lists them)" in short
    out = run("rules", "check", str(REPO / "rules.yaml"), "--notes").output
    assert out.splitlines()[0].endswith(": ok")
    assert "note: days (d) and weeks (w) now count working days and weeks" in out
    assert "severity normal, resolution: 2d on office is now 20h of working time (was 48h)" in out
    assert "rule stale-open-ticket, no_update_for: 1d on office is now 10h of working time (was 24h)" in out
    # urgent counts 24×7: its matrix cell "1d" still means 24 hours, so it is not listed
    assert "matrix/urgent/1d" not in out
    # a file whose severities all count 24×7 means what it meant: no note
    plain = tmp_path / "rules.yaml"
    plain.write_text(TEST_RULES)
    assert "note:" not in run("rules", "check", str(plain)).output


def test_rules_doc_says_what_a_day_is_with_an_example():
    doc = run("rules", "doc", str(REPO / "rules.yaml")).output
    assert ("Days (d) and weeks (w) are working days and weeks of the calendar: on office a day is 10h and a week "
            "50h of working time, so 3d from Monday 10:00 is Thursday 10:00, weekends and holidays skipped.") in doc
    assert "On the 24×7 calendar a day is 24 hours." in doc


def test_rules_explain_counts_a_target_of_days_in_working_time(seeded):
    # T-4: normal (office, Mon–Fri 08:00–18:00 Berlin), opened Monday 2 Nov 08:00 UTC, never answered.
    # Its resolution target 2d is 20 working hours: Monday 9 h, Tuesday 10 h, Wednesday 09:00 CET.
    text = seeded("rules", "explain", "T-4", "--now", "2026-11-02T11:00:00+00:00").output
    assert "resolution       3h counted of 2d (20h working time); 17h left, due 2026-11-04 08:00 UTC" in text
