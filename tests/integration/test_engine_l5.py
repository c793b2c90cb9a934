"""A simulated long run, reduced: days of traffic under business-hours calendars, stepped with the clock,
yield exactly the escalations `rules simulate` predicts (the full 30 days × 500 tickets is
bench/l5_bench.py)."""

from __future__ import annotations

from bench.l5 import run_l5


def test_stepped_days_take_exactly_the_escalations_the_replay_predicts(tmp_path):
    result = run_l5(tmp_path / "l5.db", days=2, per_day=30)
    report = result.report
    assert result.tickets == 60
    assert report["tickets"] == 60
    # a run with something to compare: first escalations, reminders, next tiers, incidents
    rules = {step["rule"] for step in report["predicted"]}
    assert len(report["predicted"]) > 50
    assert {"urgent-no-first-response", "multi-customer-incident"} <= rules
    assert any(step["step"] > 0 for step in report["predicted"])
    assert report["only_predicted"] == [] and report["only_actual"] == []
    assert report["agree"] == report["actual"] == len(report["predicted"])
    # and each step the daemon took is one queued notification
    assert result.notifications == report["actual"]
