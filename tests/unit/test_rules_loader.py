"""rules.yaml -> Ruleset: the example file loads, and every error has its exact text and line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from escalate.rules import RuleIssue, RulesError, check_rules, load_ruleset
from escalate.rules.loader import RulesLoader

EXAMPLE = Path(__file__).resolve().parents[2] / "rules.yaml"

# A valid file; the error cases below change one piece of it. Line numbers, for reading the
# expected messages:
#   1 version   5 severities   6 urgent   10 normal   13 tiers   14 tier 1   19 tier 2
#   23 rules    24 the rule    26 when    29 then     30 escalate_to  31 repeat_every
BASE = """\
version: 1
timezone: UTC
support_address: support@example.com
reference_prefix: T
severities:
  urgent:
    keywords: [outage, down]
    first_response: 15m
    resolution: 4h
  normal:
    default: true
    first_response: 4h
tiers:
  - level: 1
    name: Frontline
    group: tier1@example.com
    roster: [alice@example.com, bob@example.com]
    lead: lead1@example.com
  - level: 2
    name: Specialists
    group: tier2@example.com
    roster: [erin@example.com]
rules:
  - name: urgent-no-first-response
    description: Urgent tickets get a first response within 15 minutes.
    when:
      severity: urgent
      no_first_response_for: 15m
    then:
      escalate_to: 1
      repeat_every: 10m
      next_tier_after: 2
      template: escalation
"""

ANOTHER_RULE = """\
  - name: urgent-no-first-response
    when: {severity: urgent}
    then: {escalate_to: 2}
"""


@pytest.fixture
def rules_file(tmp_path, monkeypatch):
    """Write YAML to ./rules.yaml in a temporary directory, so messages start "rules.yaml:"."""
    monkeypatch.chdir(tmp_path)

    def write(text: str) -> str:
        Path("rules.yaml").write_text(text, encoding="utf-8")
        return "rules.yaml"

    return write


def changed(old: str, new: str) -> str:
    assert BASE.count(old) == 1, f"{old!r} must occur exactly once in BASE"
    return BASE.replace(old, new)


def messages(path: str, **kwargs) -> list[str]:
    return [str(issue) for issue in check_rules(path, **kwargs)]


# -- the example file ------------------------------------------------------------------------


def test_the_example_rules_file_loads_without_issues():
    assert check_rules(EXAMPLE, template_names={"escalation"}) == []
    ruleset = load_ruleset(EXAMPLE, template_names={"escalation"})
    assert [s.name for s in ruleset.severities] == ["urgent", "high", "normal", "low"]
    assert ruleset.default_severity.name == "normal"
    assert [(t.level, t.name) for t in ruleset.tiers] == [(1, "Frontline"), (2, "Specialists"),
                                                          (3, "Critical response")]
    assert all(2 <= len(t.roster) <= 3 and t.lead for t in ruleset.tiers)
    urgent = ruleset.rule("urgent-no-first-response")
    assert (urgent.escalate_to, urgent.repeat_every, urgent.next_tier_after) == (1, timedelta(minutes=10), 2)
    assert [urgent.tier_for_step(step, ruleset) for step in range(7)] == [1, 1, 1, 2, 2, 2, 3]
    assert ruleset.severity_for("Checkout is DOWN", "") == "urgent"


def test_the_example_rules_file_has_no_secrets_and_explains_every_key():
    text = EXAMPLE.read_text()
    for key in ("version", "timezone", "support_address", "reference_prefix", "keywords", "first_response",
                "resolution", "default", "level", "group", "roster", "lead", "escalate_to", "repeat_every",
                "next_tier_after", "template", "no_first_response_for", "unresolved_for", "no_update_for",
                "past_target", "unacknowledged", "status"):
        assert any(line.lstrip().startswith("#") and key in line for line in text.splitlines()), key


# -- a valid file ----------------------------------------------------------------------------


def test_a_valid_file_becomes_frozen_objects(rules_file):
    path = rules_file(
        changed("roster: [alice@example.com, bob@example.com]", "roster: [Alice@Example.com, bob@example.com]")
        .replace("timezone: UTC\n", "")
        .replace("reference_prefix: T\n", "")
    )
    ruleset = load_ruleset(path)
    assert ruleset.source == "rules.yaml"
    assert (ruleset.version, ruleset.timezone, ruleset.reference_prefix) == (1, "UTC", "T")
    assert ruleset.support_address == "support@example.com"
    urgent = ruleset.severity("urgent")
    assert urgent.keywords == ("outage", "down")
    assert (urgent.first_response, urgent.resolution, urgent.default) == (timedelta(minutes=15), timedelta(hours=4),
                                                                          False)
    assert ruleset.severity("normal").resolution is None
    assert ruleset.tier(1).roster == ("alice@example.com", "bob@example.com")
    assert ruleset.tier(2).lead is None
    (rule,) = ruleset.rules
    assert rule.name == "urgent-no-first-response"
    assert rule.description == "Urgent tickets get a first response within 15 minutes."
    assert [(c.name, c.value) for c in rule.criteria] == [("severity", ("urgent",)),
                                                          ("no_first_response_for", timedelta(minutes=15))]
    assert (rule.escalate_to, rule.repeat_every, rule.next_tier_after, rule.template, rule.line) == (
        1, timedelta(minutes=10), 2, "escalation", 22)  # two lines fewer than BASE
    with pytest.raises(AttributeError):
        rule.name = "other"  # frozen


def test_optional_keys_take_their_defaults(rules_file):
    path = rules_file(changed(
        "      repeat_every: 10m\n      next_tier_after: 2\n      template: escalation\n", "")
        .replace("    description: Urgent tickets get a first response within 15 minutes.\n", ""))
    (rule,) = load_ruleset(path).rules
    assert (rule.description, rule.repeat_every, rule.next_tier_after, rule.template) == ("", None, None, "escalation")


def test_tiers_are_ordered_by_level(rules_file):
    path = rules_file(changed("  - level: 1\n", "  - level: 3\n").replace("escalate_to: 1", "escalate_to: 3"))
    assert [tier.level for tier in load_ruleset(path).tiers] == [2, 3]


def test_yaml_anchors_and_merge_keys_work(rules_file):
    path = rules_file(changed("  - level: 1\n", "  - &frontline\n    level: 1\n")
                      .replace("  - level: 2\n", "  - <<: *frontline\n    level: 2\n"))
    ruleset = load_ruleset(path)
    assert ruleset.tier(2).name == "Specialists"  # the explicit key wins over the merged one
    assert ruleset.tier(2).group == "tier2@example.com"


def test_a_path_object_is_accepted_and_kept_as_given(rules_file):
    path = Path(rules_file(BASE))
    assert load_ruleset(path).source == "rules.yaml"


# -- errors: each with its exact text, line and column --------------------------------------

CASES = [
    # (what to replace in BASE, with what, the issues expected)
    ("version: 1", "version: 2",
     ['rules.yaml:1:10: version: unsupported version 2; this escalate reads version 1']),
    ("version: 1", "version: one",
     ['rules.yaml:1:10: version: expected version 1, got "one"']),
    ("version: 1\n", "",
     ['rules.yaml:1:1: missing required key "version"']),
    ("timezone: UTC", "timezone: Europe/Berln",
     ['rules.yaml:2:11: timezone: unknown time zone "Europe/Berln"; did you mean "Europe/Berlin"?']),
    ("support_address: support@example.com", "support_address: support",
     ['rules.yaml:3:18: support_address: expected an email address like "alice@example.com", got "support"']),
    ("reference_prefix: T", "reference_prefix: tk",
     ['rules.yaml:4:19: reference_prefix: expected a ticket reference prefix of 1 to 5 capital letters, '
      'like "T", got "tk"']),
    ("reference_prefix: T", "reference_prefx: T",
     ['rules.yaml:4:1: reference_prefx: unknown key "reference_prefx"; did you mean "reference_prefix"? '
      '(known keys: version, timezone, support_address, reference_prefix, calendars, severities, tiers, '
      'incidents, matrix, rules, acknowledge_customers, plus_address_replies, digest, ladder)']),
    ("reference_prefix: T", 'reference_prefix: T\ndigest: {at: "8 am"}',
     ['rules.yaml:5:14: digest.at: expected a time of day like "08:00" (00:00 to 23:59), got "8 am"']),
    ("reference_prefix: T", "reference_prefix: T\ndigest: {time: 8}",
     ['rules.yaml:5:10: digest.time: unknown key "time" (known keys: at)']),
    ("    first_response: 15m", "    first_response: soon",
     ['rules.yaml:8:21: severities.urgent.first_response: expected a duration like "30m", got "soon"']),
    ("    resolution: 4h", "    resolution: 240",
     ['rules.yaml:9:17: severities.urgent.resolution: expected a duration like "30m", got 240 '
      '(a bare number is ambiguous: add a unit, s, m, h, d or w)']),
    ("[outage, down]", "[outage, 500]",
     ['rules.yaml:7:24: severities.urgent.keywords[1]: expected a keyword, got 500 (put it in quotes)']),
    ("[outage, down]", "[outage, no]",
     ['rules.yaml:7:24: severities.urgent.keywords[1]: expected a keyword, got false (put it in quotes)']),
    ("[outage, down]", "outage",
     ['rules.yaml:7:15: severities.urgent.keywords: expected a list of keywords like [outage, down], '
      'got "outage"']),
    ("  normal:", "  Normal:",
     ['rules.yaml:10:3: severities.Normal: expected a severity name of lowercase letters, digits, "-" and "_", '
      'like "urgent", got "Normal"']),
    ("  urgent:\n", "  urgent:\n    default: true\n",
     ['rules.yaml:12:14: severities.normal.default: "urgent" is already the default (line 7); '
      'exactly one severity has default: true']),
    ("    default: true\n", "",
     ['rules.yaml:6:3: severities: no severity has "default: true"; mark exactly one']),
    ("    default: true", "    default: maybe",
     ['rules.yaml:11:14: severities.normal.default: expected true or false, got "maybe"']),
    ("    lead: lead1@example.com", "    leader: lead1@example.com",
     ['rules.yaml:18:5: tiers[0].leader: unknown key "leader"; did you mean "lead"? '
      '(known keys: level, name, group, roster, lead, consulted, informed, chat, lead_chat, '
      'informed_chat)']),
    ("    roster: [erin@example.com]\n", "",
     ['rules.yaml:19:5: tiers[1]: missing required key "roster"']),
    ("roster: [erin@example.com]", "roster: []",
     ['rules.yaml:22:13: tiers[1].roster: the roster must list at least one member address']),
    ("bob@example.com]", "Bob <bob@example.com>]",
     ['rules.yaml:17:33: tiers[0].roster[1]: expected an email address like "alice@example.com", '
      'got "Bob <bob@example.com>"']),
    ("bob@example.com]", "ALICE@example.com]",
     ['rules.yaml:17:33: tiers[0].roster[1]: "alice@example.com" is already on the roster (line 17)']),
    ("  - level: 2", "  - level: 1",
     ['rules.yaml:19:12: tiers[1].level: level 1 is already used by tiers[0] (line 14)']),
    ("  - level: 2", "  - level: 0",
     ['rules.yaml:19:12: tiers[1].level: expected a tier level (a whole number, 1 or more), got 0']),
    ("    group: tier2@example.com", "    group: support@example.com",
     ['rules.yaml:21:12: tiers[1].group: support@example.com is the support address; escalations sent to it '
      'would come back as new mail']),
    ("[erin@example.com]", "[erin@example.com, support@example.com]",
     ["rules.yaml:22:32: tiers[1].roster[1]: support@example.com is the support address; mail from it is the "
      "daemon's own, so it cannot act on tickets"]),
    ("tiers:\n", "tiers: []\nx_tiers:\n",
     ['rules.yaml:13:8: tiers: at least one tier is needed',
      'rules.yaml:14:1: x_tiers: unknown key "x_tiers"; did you mean "tiers"? (known keys: version, timezone, '
      'support_address, reference_prefix, calendars, severities, tiers, incidents, matrix, rules, '
      'acknowledge_customers, plus_address_replies, digest, ladder)']),
    ("      severity: urgent", "      severity: [urgent, nromal]",
     ['rules.yaml:27:17: rules[0].when.severity: unknown severity "nromal"; did you mean "normal"? '
      '(defined: urgent, normal)']),
    ("      no_first_response_for: 15m", "      no_first_reponse_for: 15m",
     ['rules.yaml:28:7: rules[0].when.no_first_reponse_for: unknown criterion "no_first_reponse_for"; '
      'did you mean "no_first_response_for"? (known criteria: customers_affected, escalation_requested, '
      'max_age, no_first_response_for, no_update_for, past_target, severity, status, tier, unacknowledged, '
      'unresolved_for)']),
    ("      no_first_response_for: 15m", "      no_first_response_for: 15",
     ['rules.yaml:28:30: rules[0].when.no_first_response_for: expected a duration like "30m", got 15 '
      '(a bare number is ambiguous: add a unit, s, m, h, d or w)']),
    ("      severity: urgent", "      status: opne",
     ['rules.yaml:27:15: rules[0].when.status: unknown status "opne"; did you mean "open"? '
      '(statuses: new, open, waiting, resolved, closed)']),
    ("      severity: urgent", "      past_target: response",
     ['rules.yaml:27:20: rules[0].when.past_target: expected "first_response", "next_response" or "resolution", '
      'got "response"; did you mean "next_response"?']),
    ("      severity: urgent", "      past_target: resolution",
     []),  # urgent has a resolution target
    ("    first_response: 15m\n    resolution: 4h\n", "    first_response: 15m\n",
     []),  # still valid: no rule reads the resolution target
    ("      severity: urgent", "      unacknowledged: sure",
     ['rules.yaml:27:23: rules[0].when.unacknowledged: expected true or false, got "sure"']),
    ("    when:\n      severity: urgent\n      no_first_response_for: 15m\n", "    when: {}\n",
     ['rules.yaml:26:11: rules[0].when: at least one criterion is needed']),
    ("escalate_to: 1", "escalate_to: 3",
     ['rules.yaml:30:20: rules[0].then.escalate_to: no tier has level 3 (levels: 1, 2)']),
    ("escalate_to: 1", "escalate_to: first",
     ['rules.yaml:30:20: rules[0].then.escalate_to: expected a tier level (a whole number, 1 or more), '
      'got "first"']),
    ("      escalate_to: 1\n", "",
     ['rules.yaml:30:7: rules[0].then: missing required key "escalate_to"']),
    ("repeat_every: 10m", "repeat_every: soon",
     ['rules.yaml:31:21: rules[0].then.repeat_every: expected a duration like "30m", got "soon"']),
    ("repeat_every: 10m", "repeat_every: 30s",
     ['rules.yaml:31:21: rules[0].then.repeat_every: must be at least 1m, got "30s"']),
    ("      repeat_every: 10m\n", "",
     ['rules.yaml:31:24: rules[0].then.next_tier_after: next_tier_after needs repeat_every']),
    ("next_tier_after: 2", "next_tier_after: -1",
     ['rules.yaml:32:24: rules[0].then.next_tier_after: expected a number of repeats (a whole number, 0 or more), '
      'got -1']),
    ("template: escalation", "template: ../../etc/passwd",
     ['rules.yaml:33:17: rules[0].then.template: expected a template name like "escalation", '
      'got "../../etc/passwd"']),
    ("      template: escalation", "      template: escalation\n      notify: lead",
     ['rules.yaml:34:7: rules[0].then.notify: unknown key "notify" '
      '(known keys: escalate_to, repeat_every, next_tier_after, template, '
      'alert_lead, ask_consulted, inform, set_severity)']),
    ("  - name: urgent-no-first-response", "  - name: Urgent rule",
     ['rules.yaml:24:11: rules[0].name: expected a rule name of lowercase letters, digits, "-" and "_", '
      'like "urgent-no-first-response", got "Urgent rule"']),
    ("      template: escalation\n", "      template: escalation\n" + ANOTHER_RULE,
     ['rules.yaml:34:11: rules[1].name: rule name "urgent-no-first-response" is already used by rules[0] '
      '(line 24)']),
    ("    then:\n", "    than:\n",
     ['rules.yaml:24:5: rules[0]: missing required key "then"',
      'rules.yaml:29:5: rules[0].than: unknown key "than"; did you mean "then"? '
      '(known keys: name, description, when, then)']),
    ("rules:\n", "rules: []\nignored:\n",
     ['rules.yaml:24:1: ignored: unknown key "ignored" '
      '(known keys: version, timezone, support_address, reference_prefix, calendars, severities, tiers, '
      'incidents, matrix, rules, acknowledge_customers, plus_address_replies, digest, ladder)']),
    # Duplicate keys: PyYAML would keep the last one silently.
    ("template: escalation\n", "template: escalation\ntiers: []\n",
     ['rules.yaml:34:1: tiers: duplicate key "tiers" (first defined at line 13)']),
    ("    first_response: 15m\n", "    first_response: 15m\n    first_response: 30m\n",
     ['rules.yaml:9:5: severities.urgent.first_response: duplicate key "first_response" (first defined at line 8)']),
    # Secrets, anywhere.
    ("version: 1\n", "version: 1\nsmtp_password: hunter2\n",
     ['rules.yaml:2:1: smtp_password: secrets belong in the environment (ESCALATE_*), not in rules.yaml']),
    ("    lead: lead1@example.com", "    lead: lead1@example.com\n    api_token: abc",
     ['rules.yaml:19:5: tiers[0].api_token: secrets belong in the environment (ESCALATE_*), not in rules.yaml']),
    ("      severity: urgent", "      severity: urgent\n      secret: x",
     ['rules.yaml:28:7: rules[0].when.secret: secrets belong in the environment (ESCALATE_*), not in rules.yaml']),
    # Tags that construct Python objects are refused, and nothing else is said about the value.
    ("      severity: urgent", "      severity: !!python/object/apply:os.system [echo hi]",
     ['rules.yaml:27:17: rules[0].when.severity: the tag "!!python/object/apply:os.system" is not allowed '
      'in rules.yaml']),
    ("timezone: UTC", "timezone: !env TZ",
     ['rules.yaml:2:11: timezone: the tag "!env" is not allowed in rules.yaml']),
]


@pytest.mark.parametrize(("old", "new", "expected"), CASES, ids=[f"{i}:{case[1][:30]}" for i, case in
                                                                  enumerate(CASES)])
def test_each_error_has_its_text_and_place(rules_file, old, new, expected):
    assert messages(rules_file(changed(old, new))) == expected


def test_the_base_file_is_valid(rules_file):
    assert messages(rules_file(BASE), template_names={"escalation"}) == []


def test_templates_are_checked_only_when_their_names_are_given(rules_file):
    path = rules_file(changed("template: escalation", "template: escalaton"))
    assert messages(path) == []
    assert messages(path, template_names={"escalation", "breach"}) == [
        'rules.yaml:33:17: rules[0].then.template: unknown template "escalaton"; did you mean "escalation"? '
        "(templates: breach, escalation)"]


def test_past_target_needs_some_severity_with_that_target(rules_file):
    path = rules_file(changed("    resolution: 4h\n", "")
                      .replace("      severity: urgent", "      past_target: resolution"))
    assert messages(path) == [
        'rules.yaml:26:20: rules[0].when.past_target: no severity has a resolution target, so this never holds']


def test_every_error_is_reported_at_once_in_file_order(rules_file):
    text = (changed("timezone: UTC", "timezone: Mars/Olympus")
            .replace("    first_response: 15m", "    first_response: soon")
            .replace("roster: [erin@example.com]", "roster: []")
            .replace("repeat_every: 10m", "repeat_every: later")
            .replace("support_address: support@example.com\n", "support_address: support@example.com\npassword: x\n"))
    path = rules_file(text)
    assert messages(path) == [
        'rules.yaml:2:11: timezone: unknown time zone "Mars/Olympus"',
        'rules.yaml:4:1: password: secrets belong in the environment (ESCALATE_*), not in rules.yaml',
        'rules.yaml:9:21: severities.urgent.first_response: expected a duration like "30m", got "soon"',
        'rules.yaml:23:13: tiers[1].roster: the roster must list at least one member address',
        'rules.yaml:32:21: rules[0].then.repeat_every: expected a duration like "30m", got "later"',
    ]
    with pytest.raises(RulesError) as caught:
        load_ruleset(path)
    assert len(caught.value.issues) == 5
    assert str(caught.value) == "\n".join(messages(path))


def test_a_rule_pointing_at_a_broken_tier_is_not_misreported(rules_file):
    # tiers[1] has a bad group but a good level: rules escalating to level 2 are still fine.
    path = rules_file(changed("group: tier2@example.com", "group: tier2").replace("escalate_to: 1", "escalate_to: 2"))
    assert messages(path) == [
        'rules.yaml:21:12: tiers[1].group: expected an email address like "alice@example.com", got "tier2"']


def test_broken_severities_do_not_cascade_into_the_rules(rules_file):
    path = rules_file(changed("severities:\n", "severities: none\nx_severities:\n"))
    assert messages(path)[0] == 'rules.yaml:5:13: severities: expected a mapping of severity names, most severe ' \
                                'first, got "none"'
    assert not any("unknown severity" in message for message in messages(path))


# -- errors about the file as a whole --------------------------------------------------------


def test_a_missing_file_is_one_issue_at_line_0(tmp_path):
    path = str(tmp_path / "nope.yaml")
    assert check_rules(path) == [RuleIssue(path, 0, 0, "", "file not found")]
    assert str(check_rules(path)[0]) == f"{path}:0:0: file not found"
    with pytest.raises(RulesError, match="file not found"):
        load_ruleset(path)


@pytest.mark.parametrize(("text", "expected"), [
    ("", "rules.yaml:1:1: the file is empty; expected version, support_address, severities, tiers and rules"),
    ("# only a comment\n", "rules.yaml:1:1: the file is empty; expected version, support_address, severities, "
                           "tiers and rules"),
    ("- a\n- b\n", "rules.yaml:1:1: expected a mapping with version, support_address, severities, tiers and rules, "
                   "got a list"),
    ("version: 1\ntiers:\n  - level: 1\n   name: x\n",
     "rules.yaml:4:4: invalid YAML: expected <block end>, but found '<block mapping start>' "
     "(while parsing a block collection); check the indentation"),
    ("version: [1\n", "rules.yaml:2:1: invalid YAML: expected ',' or ']', but got '<stream end>' "
                      "(while parsing a flow sequence)"),
    ("a: 1\n---\nb: 2\n", "rules.yaml:2:1: invalid YAML: expected a single document in the stream, "
                          "but found another document"),
    ("version: 1\nx: *nope\n", "rules.yaml:2:4: invalid YAML: found undefined alias 'nope'"),
    ("version: 1\x07\n", "rules.yaml:1:11: invalid YAML: character #x0007 is not allowed in YAML"),
])
def test_files_that_are_not_a_rules_mapping(rules_file, text, expected):
    assert messages(rules_file(text)) == [expected]


def test_a_file_that_is_not_utf8(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("rules.yaml").write_bytes(b"version: 1\ntimezone: \xff\n")
    assert messages("rules.yaml") == ["rules.yaml:2:11: not UTF-8 text"]


def test_the_missing_sections_are_all_named(rules_file):
    assert messages(rules_file("version: 1\n")) == [
        f'rules.yaml:1:1: missing required key "{key}"' for key in ("support_address", "severities", "tiers", "rules")
    ]


# -- the YAML loader on its own --------------------------------------------------------------


def test_the_loader_collects_duplicates_secrets_and_tags_and_drops_them():
    loader = RulesLoader("a: 1\nb:\n  c: 2\n  c: 3\na: 4\ntoken: x\nd: !!python/name:os.system x\n")
    try:
        root = loader.get_single_node()
    finally:
        loader.dispose()
    assert [(node.start_mark.line + 1, where, message) for node, where, message in loader.problems] == [
        (4, "b.c", 'duplicate key "c" (first defined at line 3)'),
        (7, "d", 'the tag "!!python/name:os.system" is not allowed in rules.yaml'),
        (5, "a", 'duplicate key "a" (first defined at line 1)'),
        (6, "token", "secrets belong in the environment (ESCALATE_*), not in rules.yaml"),
    ]
    assert [key.value for key, _ in root.value] == ["a", "b", "d"]


def test_every_refused_tag_is_reported_after_duplicate_keys_were_dropped():
    # The values of dropped duplicate keys are freed while the file is still being read, and CPython
    # hands their memory, and so their id(), to the nodes read next: a loader that remembered nodes by
    # id() took some of those for nodes already checked and let their tags through unreported.
    duplicates = "".join(f"  k{i}: 1\n  k{i}: 2\n" for i in range(20))
    tags = "".join(f"t{i}: !custom x\n" for i in range(20))
    for _ in range(10):
        loader = RulesLoader("m:\n" + duplicates + tags)
        try:
            loader.get_single_node()
        finally:
            loader.dispose()
        refused = [where for _node, where, message in loader.problems if "tag" in message]
        assert refused == [f"t{i}" for i in range(20)]


def test_issue_text_without_a_breadcrumb():
    assert str(RuleIssue("r.yaml", 3, 1, "", "invalid YAML: x")) == "r.yaml:3:1: invalid YAML: x"
    assert str(RuleIssue("r.yaml", 42, 7, "tiers[1].repeat_every", 'expected a duration like "30m", got "soon"')) == \
        'r.yaml:42:7: tiers[1].repeat_every: expected a duration like "30m", got "soon"'
