"""rules.ladder.decide, the one decision function, on plain facts and the shipped rules.yaml."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from escalate.rules.facts import TicketFacts
from escalate.rules.ladder import ACKNOWLEDGED, ACTIVE, ENDED, ESCALATION, EXHAUSTED, NEXT_TIER, REMINDER, UNANSWERED, Ladder, decide
from escalate.rules.loader import load_ruleset

from tests.conftest import REPO

OPENED = datetime(2026, 11, 7, 9, 0, tzinfo=timezone.utc)  # a Saturday: urgent counts real time (24x7)


@pytest.fixture(scope="module")
def shipped():
    return load_ruleset(REPO / "rules.yaml")


def urgent(**changes) -> TicketFacts:
    facts = TicketFacts(status="new", severity="urgent", tier=None, created_at=OPENED, first_response_at=None,
                        last_customer_message_at=OPENED, last_agent_message_at=None, acknowledged=False)
    return replace(facts, **changes)


def walk(ruleset, facts, minutes, ladder=None):
    """decide at each of `minutes` after OPENED, carrying the ladder; the mails, in order."""
    ladder = ladder or Ladder()
    mails = []
    for minute in minutes:
        decision = decide(facts, ladder, ruleset, OPENED + timedelta(minutes=minute))
        ladder = decision.ladder
        if decision.mail is not None:
            mails.append((minute, decision.mail.kind, decision.mail.tier, decision.mail.step))
    return mails, ladder


def test_one_ladder_climbs_reminds_the_top_and_stops(shipped):
    # urgent-no-first-response: tier 1 at 15m, every 10m, next tier after 2 unanswered reminders
    mails, ladder = walk(shipped, urgent(), range(0, 25 * 60, 5))
    assert mails[:7] == [(15, ESCALATION, 1, 0), (25, REMINDER, 1, 1), (35, REMINDER, 1, 2),
                         (45, NEXT_TIER, 2, 0), (55, REMINDER, 2, 1), (65, REMINDER, 2, 2), (75, NEXT_TIER, 3, 0)]
    assert mails[7:] == [(85, REMINDER, 3, 1), (95, REMINDER, 3, 2), (105, REMINDER, 3, 3), (115, UNANSWERED, 3, 3)]
    assert ladder.state == EXHAUSTED
    # the matrix (urgent: tier 2 after 4h, tier 3 after 1d) fired meanwhile and was absorbed: no mail
    assert {"matrix/urgent/4h", "matrix/urgent/1d"} <= set(ladder.fired)


def test_a_rule_above_the_ladder_moves_it_up_at_once_and_one_below_is_absorbed(shipped):
    ladder = Ladder(state=ACTIVE, tier=1, step=0, rule="urgent-no-first-response", reasons=("urgent-no-first-response",),
                    started_at=OPENED, tier_since=OPENED, last_step_due_at=OPENED,
                    next_step_at=OPENED + timedelta(minutes=10),
                    fired={"urgent-no-first-response": OPENED + timedelta(minutes=15)})
    requested = urgent(escalation_requested_at=OPENED + timedelta(minutes=5))
    decision = decide(requested, ladder, shipped, OPENED + timedelta(minutes=5))
    assert (decision.mail.kind, decision.mail.tier, decision.mail.rule) == (NEXT_TIER, 2, "agent-requested")
    assert decision.ladder.forced and decision.ladder.reasons == ("urgent-no-first-response", "agent-requested")
    # stale-open-ticket (tier 1) fires later: absorbed, no mail; still recorded as fired
    later = decide(replace(requested, status="open"), decision.ladder, shipped, OPENED + timedelta(days=1, hours=1))
    assert any(f.rule.name == "stale-open-ticket" and f.absorbed for f in later.firings)
    assert later.mail is None or later.mail.tier >= 2


def test_an_ack_at_tier_one_absorbs_rules_up_to_it_and_a_higher_rule_starts_a_new_ladder(shipped):
    mails, ladder = walk(shipped, urgent(), range(0, 30, 5))
    acked = replace(ladder, state=ACKNOWLEDGED, ack_tier=1, ended_at=OPENED + timedelta(minutes=30), next_step_at=None)
    facts = urgent(acknowledged=True, status="open")
    quiet = decide(facts, acked, shipped, OPENED + timedelta(hours=3))
    assert quiet.mail is None and quiet.next_due == OPENED + timedelta(hours=4)  # the matrix's 4h cell
    moved = decide(facts, acked, shipped, OPENED + timedelta(hours=4))
    assert (moved.started, moved.mail.kind, moved.mail.tier) == (True, ESCALATION, 2)
    assert moved.ladder.state == ACTIVE and moved.ladder.reasons == ("matrix/urgent/4h",)


def test_an_exhausted_ladder_stays_quiet_until_the_customer_writes_again(shipped):
    _mails, ladder = walk(shipped, urgent(), range(0, 200, 5))
    assert ladder.state == EXHAUSTED
    quiet = decide(urgent(), ladder, shipped, OPENED + timedelta(days=1, hours=1))
    assert quiet.mail is None  # the matrix's tier-3 cell is absorbed: tier 3 was told and reminded
    wrote = OPENED + timedelta(days=2)
    again = decide(urgent(last_customer_message_at=wrote), quiet.ladder, shipped, wrote + timedelta(hours=1, minutes=1))
    # something new: what holds escalates again, one new ladder at the highest tier a rule that
    # holds asks for (the matrix's day-old cell), with every rule that holds as its reasons
    assert again.started and (again.mail.kind, again.mail.tier) == (ESCALATION, 3)
    assert {"urgent-no-first-response", "matrix/urgent/1d"} <= set(again.ladder.reasons)
    assert again.ladder.started_at == wrote
    assert not again.firings or all(f.rule.name not in ladder.fired for f in again.firings)  # no action runs twice


def test_waiting_on_the_customer_pauses_the_ladder_and_a_resolved_ticket_ends_it(shipped):
    _mails, ladder = walk(shipped, urgent(), range(0, 30, 5))
    paused = decide(urgent(status="waiting", waiting_since=OPENED + timedelta(minutes=30)), ladder, shipped,
                    OPENED + timedelta(minutes=40))
    assert paused.mail is None and paused.ladder.state == ACTIVE and paused.ladder.next_step_at is None
    answered = urgent(first_response_at=OPENED + timedelta(minutes=30), status="open")
    ended = decide(answered, ladder, shipped, OPENED + timedelta(minutes=40))
    assert ended.mail is None and ended.ladder.state == ENDED and ended.ended


def test_after_a_long_pause_one_mail_says_where_the_ladder_is(shipped):
    _mails, ladder = walk(shipped, urgent(), [15])
    decision = decide(urgent(), ladder, shipped, OPENED + timedelta(hours=10))
    assert decision.mail.kind == NEXT_TIER and decision.mail.tier == 3  # climbed while nobody looked
    assert decision.ladder.state == ACTIVE  # the tier it reached hears of it before the ladder gives up
    assert decision.next_due > OPENED + timedelta(hours=10)


def test_the_ladder_settings_are_read_and_checked(rules_file):
    from escalate.rules.loader import RulesError

    from tests.conftest import TEST_RULES

    ruleset = load_ruleset(rules_file(TEST_RULES.replace("group_mails_per_hour: 0",
                                                         "top_reminders: 5\n  group_mails_per_hour: 12")))
    assert (ruleset.top_reminders, ruleset.group_mails_per_hour) == (5, 12)
    assert (load_ruleset(REPO / "rules.yaml").top_reminders, load_ruleset(REPO / "rules.yaml").group_mails_per_hour) \
        == (3, 30)
    with pytest.raises(RulesError) as refused:
        load_ruleset(rules_file(TEST_RULES.replace("group_mails_per_hour: 0", "top_reminders: 500")))
    assert "ladder.top_reminders: at most 100 reminders, got 500" in str(refused.value)
    assert "rules.yaml:" in str(refused.value)  # the file and line, as every rules error
