"""The extended rules.yaml schema: calendars, severities with targets and calendars, tiers with
roles, incidents, the decision matrix and rule actions; every validation error class with its
exact text, line and column; and the version-1 files that existed before still load unchanged."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from escalate.outbound.templates import Renderer
from escalate.rules import check_rules, load_ruleset

from tests.conftest import TEST_RULES

REPO = Path(__file__).resolve().parents[2]

# Line numbers, for reading the expected messages below:
#  4 calendars  7 mon-fri  8 holidays  9 severities  15 normal  19 calendar  20 tiers
#  26 tier 2  29 roster  30 consulted  33 incidents  34 window  35 matrix  37 after  39 rows
#  42 rules  43 rule 0  44 when  50 template  51 rule 1  53 customers_affected  54 then
FULL = """\
version: 1
timezone: Europe/Berlin
support_address: support@example.com
calendars:
  office:
    hours:
      mon-fri: "09:00-17:00"
    holidays: [2026-12-24]
severities:
  urgent:
    keywords: [outage]
    first_response: 15m
    resolution: 4h
  normal:
    default: true
    first_response: 4h
    next_response: 1d
    resolution: 2d
    calendar: office
tiers:
  - level: 1
    name: Frontline
    group: tier1@example.com
    roster: [alice@example.com]
    lead: lead1@example.com
  - level: 2
    name: Specialists
    group: tier2@example.com
    roster: [erin@example.com]
    consulted:
      Legal: legal@example.com
    informed: [boss@example.com]
incidents:
  window: 1h
matrix:
  clock: unresolved
  after: [4h, 1d]
  rows:
    urgent: [1, 2]
    normal: [-, 1]
rules:
  - name: urgent-no-first-response
    when:
      severity: urgent
      no_first_response_for: 15m
    then:
      escalate_to: 1
      repeat_every: 10m
      next_tier_after: 2
      template: escalation
  - name: incident
    when:
      customers_affected: 3
    then:
      escalate_to: 2
      set_severity: urgent
      ask_consulted: true
      inform: true
      alert_lead: 1
"""


@pytest.fixture
def write(tmp_path):
    def write_file(text: str) -> Path:
        path = tmp_path / "rules.yaml"
        path.write_text(text, encoding="utf-8")
        return path
    return write_file


def issues(path: Path) -> list[str]:
    return [str(issue).removeprefix(str(path.parent) + "/") for issue in
            check_rules(path, template_names=Renderer().names())]


def test_the_full_schema_loads_into_values(write):
    ruleset = load_ruleset(write(FULL), template_names=Renderer().names())
    office = ruleset.calendar("office")
    assert (office.timezone, office.hours[0], office.hours[5], office.holidays) == (
        "Europe/Berlin", ((540, 1020),), (), frozenset({date(2026, 12, 24)}))
    assert ruleset.calendar_for_severity("normal") is office
    assert ruleset.calendar_for_severity("urgent").always
    assert ruleset.severity("normal").next_response == timedelta(days=1)
    assert ruleset.tier(2).consulted == (("Legal", "legal@example.com"),)
    assert ruleset.tier(2).informed == ("boss@example.com",)
    assert ruleset.incidents.window == timedelta(hours=1)
    assert [r.name for r in ruleset.rules] == ["urgent-no-first-response", "incident", "matrix/urgent/4h",
                                               "matrix/urgent/1d", "matrix/normal/1d"]
    incident = ruleset.rule("incident")
    assert incident.incident_wide and [a.name for a in incident.actions] == [
        "set_severity", "ask_consulted", "inform", "alert_lead"]
    matrix = ruleset.rule("matrix/normal/1d")
    assert (matrix.escalate_to, [b.describe() for b in matrix.criteria]) == (1, ["severity normal",
                                                                                 "unresolved for 1d"])


def test_version_1_files_from_before_still_load(write):
    for text in (TEST_RULES, (REPO / "rules.yaml").read_text()):
        ruleset = load_ruleset(write(text), template_names=Renderer().names())
        urgent = ruleset.rule("urgent-no-first-response")
        assert (urgent.escalate_to, urgent.repeat_every, urgent.next_tier_after) == (1, timedelta(minutes=10), 2)
        assert [t.group for t in ruleset.tiers] == ["tier1@example.com", "tier2@example.com", "tier3@example.com"][
            :len(ruleset.tiers)]
    # without calendars every clock counts real time, as version 1 always did
    assert load_ruleset(write(TEST_RULES)).calendar_for_severity("normal").always


def test_severity_from_sender_domain_and_importance(write):
    text = FULL.replace("    keywords: [outage]\n", "    keywords: [outage]\n    senders: [\"@big.example\", "
                        "ceo@other.example]\n    importance: high\n")
    ruleset = load_ruleset(write(text))
    assert ruleset.severity_for("hello", "", "Ann <ann@BIG.example>") == "urgent"
    assert ruleset.severity_for("hello", "", "ceo@other.example") == "urgent"
    assert ruleset.severity_for("hello", "", "someone@other.example") == "normal"
    assert ruleset.severity_for("hello", "", "x@y.example", [("X-Priority", "1 (Highest)")]) == "urgent"
    assert ruleset.severity_for("hello", "", "x@y.example", [("Importance", "Low")]) == "normal"


CASES = [
    # unknown keys, with a did-you-mean
    ("    holidays: [2026-12-24]", "    holidy: [2026-12-24]",
     ['rules.yaml:8:5: calendars.office.holidy: unknown key "holidy"; did you mean "holidays"? '
      "(known keys: timezone, hours, holidays)"]),
    ("    calendar: office", "    calendar: ofice",
     ['rules.yaml:19:15: severities.normal.calendar: unknown calendar "ofice"; did you mean "office"? '
      "(calendars: always, office)"]),
    ("      set_severity: urgent", "      set_severty: urgent",
     ['rules.yaml:56:7: rules[1].then.set_severty: unknown key "set_severty"; did you mean "set_severity"? '
      "(known keys: escalate_to, repeat_every, next_tier_after, template, alert_lead, ask_consulted, inform, "
      "set_severity)"]),
    # calendars
    ("    hours:\n      mon-fri", "    hours:\n      mon-fir",
     ['rules.yaml:7:7: calendars.office.hours.mon-fir: expected a day like "mon" or a range like "mon-fri", '
      'got "mon-fir" (days: mon, tue, wed, thu, fri, sat, sun, weekdays, weekend, daily)']),
    ('      mon-fri: "09:00-17:00"', '      mon-fri: "17:00-09:00"',
     ['rules.yaml:7:16: calendars.office.hours.mon-fri: opening hours must end after they start, '
      'got "17:00-09:00"']),
    ("    holidays: [2026-12-24]", "    holidays: [christmas]",
     ["rules.yaml:8:16: calendars.office.holidays[0]: expected a date like 2026-12-25, got \"christmas\""]),
    # bad durations
    ("  after: [4h, 1d]", "  after: [4h, a day]",
     ['rules.yaml:37:15: matrix.after[1]: expected a duration like "30m", got "a day"',
      "rules.yaml:39:13: matrix.rows.urgent: expected 1 cells (one per time in after), got 2",
      "rules.yaml:40:13: matrix.rows.normal: expected 1 cells (one per time in after), got 2"]),
    ("    next_response: 1d", "    next_response: 24",
     ['rules.yaml:17:20: severities.normal.next_response: expected a duration like "30m", got 24 '
      "(a bare number is ambiguous: add a unit, s, m, h, d or w)"]),
    ("  window: 1h", "  window: 10s",
     ['rules.yaml:34:11: incidents.window: must be at least 1m, got "10s"']),
    # a tier without a roster
    ("    roster: [erin@example.com]\n", "",
     ['rules.yaml:26:5: tiers[1]: missing required key "roster"']),
    # a missing template
    ("      template: escalation", "      template: escalaton",
     ['rules.yaml:50:17: rules[0].then.template: unknown template "escalaton"; did you mean "escalation"? '
      "(templates: TEMPLATES)"]),
    # rules that can never fire
    ("      severity: urgent\n      no_first", "      status: waiting\n      no_update_for: 1h\n      no_first",
     ['rules.yaml:44:7: rules[0].when: this rule can never fire: no ticket meets "status waiting", '
      '"no update for 1h", "no first response for 15m" at the same time']),
    ("      customers_affected: 3", "      status: resolved\n      unresolved_for: 1h",
     ['rules.yaml:53:7: rules[1].when: this rule can never fire: no ticket meets "status resolved", '
      '"unresolved for 1h" at the same time']),
    # overlapping rules
    ("  - name: incident\n    when:\n      customers_affected: 3",
     "  - name: incident\n    when:\n      severity: [urgent, normal]\n      no_first_response_for: 15m",
     ['rules.yaml:51:11: rules[1].name: overlaps rule "urgent-no-first-response" (line 42): both fire at the '
      "same moment for the same tickets (severity urgent or normal, no first response for 15m); merge them or "
      "make their criteria differ"]),
    # the matrix
    ("    normal: [-, 1]\n", "",
     ["rules.yaml:39:5: matrix.rows: the matrix has no row for normal; every severity needs one "
      "(a row of - means never)"]),
    ("    urgent: [1, 2]", "    urgent: [1, 4]",
     ["rules.yaml:39:17: matrix.rows.urgent[1]: no tier has level 4"]),
    ("  clock: unresolved", "  clock: unresolvd",
     ['rules.yaml:36:10: matrix.clock: unknown clock "unresolvd"; did you mean "unresolved"? '
      "(clocks: unresolved, no_first_response, no_update)"]),
    # actions and roles
    ("      alert_lead: 1", "      alert_lead: 2",
     ["rules.yaml:59:19: rules[1].then.alert_lead: tier 2 (Specialists) has no lead to alert; add lead: to the tier"]),
    ("      ask_consulted: true", "      ask_consulted: [Legl]",
     ['rules.yaml:57:22: rules[1].then.ask_consulted: tier 2 does not consult "Legl" (consulted: Legal)']),
    ("      set_severity: urgent", "      set_severity: urgnt",
     ['rules.yaml:56:21: rules[1].then.set_severity: unknown severity "urgnt"; did you mean "urgent"? '
      "(defined: urgent, normal)"]),
    ("    then:\n      escalate_to: 2\n", "    then:\n",
     ["rules.yaml:56:22: rules[1].then.ask_consulted: ask_consulted needs escalate_to: the departments are the "
      "ones that tier consults",
      "rules.yaml:57:15: rules[1].then.inform: inform needs escalate_to: the informed list is that tier's"]),
    # an unknown tier is said once, at escalate_to: not again as a missing escalate_to by the actions on it
    ("      escalate_to: 2\n      set_severity", "      escalate_to: 9\n      set_severity",
     ["rules.yaml:55:20: rules[1].then.escalate_to: no tier has level 9 (levels: 1, 2)"]),
    # incidents
    ("incidents:\n  window: 1h\n", "",
     ["rules.yaml:51:27: rules[1].when.customers_affected: needs an incidents: section (window, similarity) "
      "to group similar tickets"]),
    ("  window: 1h", "  window: 1h\n  similarity: 2",
     ["rules.yaml:35:15: incidents.similarity: expected a number above 0 and at most 1, like 0.6, got 2"]),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES, ids=[f"{i}:{c[1][:30]}" for i, c in enumerate(CASES)])
def test_each_error_has_its_text_and_place(write, old, new, expected):
    assert FULL.count(old) == 1, old
    templates = ", ".join(sorted(Renderer().names()))
    assert issues(write(FULL.replace(old, new))) == [e.replace("TEMPLATES", templates) for e in expected]


def test_rules_check_exits_2_and_names_the_line(write, tmp_path):
    from click.testing import CliRunner
    from escalate.cli import main

    path = write(FULL.replace("      severity: urgent\n      no_first",
                              "      status: waiting\n      no_update_for: 1h\n      no_first"))
    result = CliRunner().invoke(main, ["rules", "check", str(path)],
                                env={"ESCALATE_DB_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.exit_code == 2
    assert f"{path}:44:7: rules[0].when: this rule can never fire" in result.output
