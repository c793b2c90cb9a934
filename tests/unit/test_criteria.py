"""Criteria, durations and the model's methods, on plain facts: no files, no database."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from escalate.rules import (
    ALWAYS,
    CRITERIA,
    BoundCriterion,
    Rule,
    Ruleset,
    Severity,
    TicketFacts,
    Tier,
    format_duration,
    lookup,
    parse_duration,
    registry,
)
from escalate.rules.registry import UnknownCriterion, criterion

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
M = timedelta(minutes=1)
H = timedelta(hours=1)


def facts(**changes) -> TicketFacts:
    base = TicketFacts(status="open", severity="urgent", tier=None, created_at=T0, first_response_at=None,
                       last_customer_message_at=T0, last_agent_message_at=None, acknowledged=False)
    return replace(base, **changes)


def tier(level: int, *roster: str) -> Tier:
    return Tier(level=level, name=f"Tier {level}", group=f"tier{level}@example.com",
                roster=roster or (f"member{level}@example.com",), lead=None)


def ruleset(tiers=(1, 2, 3), rules=()) -> Ruleset:
    return Ruleset(
        version=1, source="rules.yaml", timezone="UTC", support_address="support@example.com", reference_prefix="T",
        severities=(
            Severity("urgent", ("outage", "down", "not working"), 15 * M, 4 * H, False),
            Severity("normal", (), 4 * H, None, True),
            Severity("low", ("question",), None, None, False),
        ),
        tiers=tuple(tier(level) if isinstance(level, int) else level for level in tiers),
        rules=tuple(rules),
    )


def bound(name: str, value) -> BoundCriterion:
    criterion_ = lookup(name)
    return BoundCriterion(name=name, value=criterion_.parse(value), plugin=criterion_)


def rule(*criteria: BoundCriterion, escalate_to=1, repeat_every=None, next_tier_after=None) -> Rule:
    return Rule(name="r", description="", criteria=criteria, escalate_to=escalate_to, repeat_every=repeat_every,
                next_tier_after=next_tier_after, template="escalation", line=1)


# -- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("45s", timedelta(seconds=45)),
    ("30m", 30 * M),
    ("2h", 2 * H),
    ("1d", timedelta(days=1)),
    ("1w", timedelta(weeks=1)),
    ("1h30m", 90 * M),
    ("1d 4h", timedelta(days=1, hours=4)),
    (" 2h 15m ", 135 * M),
    ("0m", timedelta(0)),
])
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(("value", "message"), [
    ("soon", 'expected a duration like "30m", got "soon"'),
    ("", 'expected a duration like "30m", got ""'),
    ("30", 'expected a duration like "30m", got "30"'),
    ("30M", 'expected a duration like "30m", got "30M"'),
    ("-5m", 'expected a duration like "30m", got "-5m"'),
    ("1.5h", 'expected a duration like "30m", got "1.5h"'),
    ("30m2h", 'expected a duration like "30m", got "30m2h" (units go largest first, each once: w, d, h, m, s)'),
    ("1h1h", 'expected a duration like "30m", got "1h1h" (units go largest first, each once: w, d, h, m, s)'),
    (30, 'expected a duration like "30m", got 30 (a bare number is ambiguous: add a unit, s, m, h, d or w)'),
    (True, 'expected a duration like "30m", got true'),
    (None, 'expected a duration like "30m", got nothing'),
])
def test_parse_duration_refuses(value, message):
    with pytest.raises(ValueError) as caught:
        parse_duration(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(("value", "text"), [
    (90 * M, "1h30m"),
    (timedelta(days=1, hours=4), "1d4h"),
    (timedelta(weeks=2), "2w"),
    (timedelta(days=30), "30d"),
    (timedelta(weeks=1, hours=3), "1w3h"),
    (timedelta(seconds=45), "45s"),
    (timedelta(0), "0s"),
    (-15 * M, "-15m"),
])
def test_format_duration(value, text):
    assert format_duration(value) == text
    assert parse_duration(text.lstrip("-")) == abs(value)


# -- the registry ----------------------------------------------------------------------------


def test_every_v1_criterion_is_registered_with_a_description():
    assert sorted(CRITERIA) == ["customers_affected", "escalation_requested", "max_age", "no_first_response_for",
                                "no_update_for", "past_target", "severity", "status", "tier", "unacknowledged",
                                "unresolved_for"]
    for name, registered in CRITERIA.items():
        assert registered.name == name
        assert registered.description.endswith(".")
    assert {name for name, c in CRITERIA.items() if c.timed} == {
        "max_age", "no_first_response_for", "no_update_for", "past_target", "unresolved_for"}


def test_an_unknown_criterion_lists_the_known_ones():
    with pytest.raises(UnknownCriterion) as caught:
        lookup("unresolved_fro")
    assert str(caught.value) == (
        'unknown criterion "unresolved_fro"; did you mean "unresolved_for"? (known criteria: customers_affected, '
        "escalation_requested, max_age, no_first_response_for, no_update_for, past_target, severity, status, tier, "
        "unacknowledged, unresolved_for)")
    with pytest.raises(KeyError):
        lookup("impact")


def test_a_new_criterion_is_a_decorated_class(monkeypatch):
    monkeypatch.setattr(registry, "CRITERIA", dict(CRITERIA))

    @criterion("waiting", "The ticket waits on the customer.")
    class Waiting:
        def parse(self, value):
            return bool(value)

        def holds_from(self, facts, parsed, ruleset):
            return ALWAYS if (facts.status == "waiting") == parsed else None

    registered = registry.CRITERIA["waiting"]
    assert isinstance(registered, Waiting)
    assert (registered.name, registered.description, registered.timed) == (
        "waiting", "The ticket waits on the customer.", False)
    assert list(registered.check(True, ruleset())) == []
    assert registered.describe(True) == "waiting: True"
    assert registered.holds_from(facts(status="waiting"), True, ruleset()) == ALWAYS

    with pytest.raises(ValueError, match="registered twice"):
        criterion("waiting", "again")(Waiting)
    with pytest.raises(TypeError, match="has no holds_from"):
        criterion("broken", "no holds_from")(type("Broken", (), {"parse": lambda self, value: value}))


# -- each criterion --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value", "ticket", "expected"), [
    # severity: a name or a list
    ("severity", "urgent", facts(), ALWAYS),
    ("severity", ["normal", "urgent"], facts(), ALWAYS),
    ("severity", "normal", facts(), None),
    # status
    ("status", ["open", "new"], facts(), ALWAYS),
    ("status", "waiting", facts(), None),
    ("status", "resolved", facts(status="resolved"), ALWAYS),
    # unresolved_for: from creation, until resolved or closed; paused while waiting on the customer
    ("unresolved_for", "6h", facts(), T0 + 6 * H),
    ("unresolved_for", "6h", facts(status="waiting", first_response_at=T0 + M, waiting_since=T0 + H), None),
    ("unresolved_for", "6h", facts(waiting_periods=((T0 + H, T0 + 3 * H),)), T0 + 8 * H),
    ("unresolved_for", "6h", facts(waiting_periods=((T0 + 7 * H, T0 + 9 * H),)), T0 + 6 * H),
    ("unresolved_for", "6h", facts(status="resolved"), None),
    ("unresolved_for", "6h", facts(status="closed"), None),
    # no_first_response_for: from creation, while nobody has answered
    ("no_first_response_for", "15m", facts(), T0 + 15 * M),
    ("no_first_response_for", "15m", facts(status="new"), T0 + 15 * M),
    ("no_first_response_for", "15m", facts(first_response_at=T0 + M), None),
    ("no_first_response_for", "15m", facts(status="closed"), None),
    # no_update_for: from the last agent message (or creation); paused while waiting
    ("no_update_for", "1d", facts(), T0 + 24 * H),
    ("no_update_for", "1d", facts(last_agent_message_at=T0 + 2 * H), T0 + 26 * H),
    ("no_update_for", "1d", facts(last_customer_message_at=T0 + 5 * H), T0 + 24 * H),
    ("no_update_for", "1d", facts(status="waiting"), None),
    ("no_update_for", "1d", facts(status="resolved"), None),
    # past_target: the ticket's severity's targets
    ("past_target", "first_response", facts(), T0 + 15 * M),
    ("past_target", "first_response", facts(severity="normal"), T0 + 4 * H),
    ("past_target", "first_response", facts(first_response_at=T0 + M), None),
    ("past_target", "first_response", facts(severity="low"), None),  # low has no such target
    ("past_target", "resolution", facts(first_response_at=T0 + M), T0 + 4 * H),
    ("past_target", "resolution", facts(severity="normal"), None),
    ("past_target", "resolution", facts(status="resolved"), None),
    # a severity removed from rules.yaml since the ticket was opened: the default's targets
    ("past_target", "first_response", facts(severity="gone"), T0 + 4 * H),
    # unacknowledged
    ("unacknowledged", True, facts(), ALWAYS),
    ("unacknowledged", True, facts(acknowledged=True), None),
    ("unacknowledged", False, facts(acknowledged=True), ALWAYS),
])
def test_criterion_holds_from(name, value, ticket, expected):
    assert bound(name, value).holds_from(ticket, ruleset()) == expected


@pytest.mark.parametrize(("name", "value", "message"), [
    ("severity", [], "expected a severity name or a list of severity names, got a list"),
    ("severity", 3, "expected a severity name or a list of severity names, got 3"),
    ("status", ["open", "closd"], 'unknown status "closd"; did you mean "closed"? '
                                  "(statuses: new, open, waiting, resolved, closed)"),
    ("status", "done", 'unknown status "done" (statuses: new, open, waiting, resolved, closed)'),
    ("status", {"a": 1}, "expected a status name or a list of status names, got a mapping"),
    ("unresolved_for", "2 hours", 'expected a duration like "30m", got "2 hours"'),
    ("past_target", "resolutoin", 'expected "first_response", "next_response" or "resolution", got "resolutoin"; '
                                'did you mean "resolution"?'),
    ("past_target", 1, 'expected "first_response", "next_response" or "resolution", got 1'),
    ("unacknowledged", "yes", 'expected true or false, got "yes"'),
])
def test_criterion_parse_refuses(name, value, message):
    with pytest.raises(ValueError) as caught:
        lookup(name).parse(value)
    assert str(caught.value) == message


def test_criteria_describe_themselves():
    assert [bound(name, value).describe() for name, value in [
        ("severity", ["urgent", "high"]), ("status", "open"), ("unresolved_for", "1h30m"),
        ("no_first_response_for", "15m"), ("no_update_for", "1d"), ("past_target", "first_response"),
        ("unacknowledged", True), ("unacknowledged", False),
    ]] == ["severity urgent or high", "status open", "unresolved for 1h30m", "no first response for 15m",
           "no update for 1d", "past the first response target", "unacknowledged", "acknowledged"]


# -- rules -----------------------------------------------------------------------------------


def test_a_rule_fires_from_the_moment_all_its_criteria_hold():
    r = rule(bound("severity", "urgent"), bound("no_first_response_for", "15m"), bound("unresolved_for", "1h"))
    assert r.fires_at(facts(), ruleset()) == T0 + H  # the latest of the moments
    assert r.fires_at(facts(severity="normal"), ruleset()) is None  # one criterion does not hold
    assert r.fires_at(facts(first_response_at=T0 + M), ruleset()) is None


def test_a_rule_without_time_criteria_fires_from_the_tickets_creation():
    # Each criterion holds ALWAYS, but the rule cannot hold before the ticket exists.
    assert bound("severity", "urgent").holds_from(facts(), ruleset()) == ALWAYS
    assert rule(bound("severity", "urgent"), bound("unacknowledged", True)).fires_at(facts(), ruleset()) == T0


@pytest.mark.parametrize(("tiers", "escalate_to", "after", "expected"), [
    ((1, 2, 3), 1, 2, [1, 1, 1, 2, 2, 2, 3, 3, 3, 3]),
    ((1, 2, 3), 1, 0, [1, 2, 3, 3]),
    ((1, 2, 3), 1, None, [1, 1, 1, 1, 1]),
    ((1, 2, 3), 2, 1, [2, 2, 3, 3, 3]),
    ((1, 2, 3), 3, 1, [3, 3, 3, 3]),  # already at the top
    ((1, 3, 5), 1, 1, [1, 1, 3, 3, 5, 5, 5]),  # levels need not be consecutive
])
def test_tier_for_step(tiers, escalate_to, after, expected):
    r = rule(bound("severity", "urgent"), escalate_to=escalate_to, repeat_every=10 * M, next_tier_after=after)
    assert [r.tier_for_step(step, ruleset(tiers)) for step in range(len(expected))] == expected


# -- the ruleset -----------------------------------------------------------------------------


@pytest.mark.parametrize(("subject", "body", "expected"), [
    ("Site DOWN", "", "urgent"),
    ("hello", "we have an Outage.", "urgent"),
    ("it is not\n  working", "", "urgent"),  # a phrase across line breaks
    ("a question about the outage", "", "urgent"),  # the first severity in file order wins
    ("a question", "", "low"),
    ("download failed", "questions", "normal"),  # whole words only
    ("", "", "normal"),
])
def test_severity_for(subject, body, expected):
    assert ruleset().severity_for(subject, body) == expected


def test_ruleset_lookups():
    rs = ruleset(tiers=(tier(1, "alice@example.com"), tier(3, "bob@example.com")))
    assert rs.tier(3).name == "Tier 3"
    with pytest.raises(KeyError):
        rs.tier(2)
    assert rs.next_tier(1).level == 3
    assert rs.next_tier(3) is None
    assert rs.max_tier_level == 3
    assert rs.severity("low").keywords == ("question",)
    with pytest.raises(KeyError):
        rs.severity("high")
    assert rs.default_severity.name == "normal"


@pytest.mark.parametrize(("address", "member"), [
    ("alice@example.com", True),
    ("Alice@Example.COM", True),
    ("Alice Smith <alice@example.com>", True),
    (" alice@example.com ", True),
    ("alice@example.org", False),
    ("mallory+alice@example.com", False),
    ("", False),
])
def test_roster_membership_is_a_case_insensitive_exact_match(address, member):
    rs = ruleset(tiers=(tier(1, "alice@example.com"), tier(2, "bob@example.com")))
    assert rs.tier(1).has_member(address) is member
    assert rs.tier(2).has_member(address) is False
    assert rs.is_roster_member(address) is member


def test_a_rulesets_team_and_group_addresses_are_its_own_and_computed_once():
    first = ruleset(tiers=(Tier(level=1, name="One", group="One@Example.com", roster=("m@example.com",),
                                lead="Lead <LEAD@example.com>"),))
    second = replace(first, tiers=(tier(2),))  # a reloaded rules.yaml: its own people, not the last ruleset's
    assert first.team_addresses == {"support@example.com", "one@example.com", "m@example.com", "lead@example.com"}
    assert first.group_addresses == {"one@example.com", "lead@example.com"}
    assert second.team_addresses == {"support@example.com", "tier2@example.com", "member2@example.com"}
    assert second.group_addresses == {"tier2@example.com"}
    assert first.team_addresses is first.team_addresses  # a tick asks once per recipient
