"""The rules layer: rules.yaml -> frozen, checked objects, and the criteria registry.

    from escalate.rules import load_ruleset, RulesError
    ruleset = load_ruleset("rules.yaml")          # RulesError: every problem, file:line:col
    when = ruleset.rules[0].fires_at(facts, ruleset)
"""

from escalate.rules.durations import format_duration, parse_duration
from escalate.rules.facts import ALWAYS, DONE_STATUSES, STATUSES, TicketFacts
from escalate.rules.loader import RuleIssue, RulesError, RulesLoader, check_rules, load_ruleset
from escalate.rules.model import BoundCriterion, Rule, Ruleset, Severity, Tier, normalise_address
from escalate.rules.registry import CRITERIA, UnknownCriterion, criterion, lookup

__all__ = [
    "ALWAYS",
    "CRITERIA",
    "DONE_STATUSES",
    "STATUSES",
    "BoundCriterion",
    "Rule",
    "RuleIssue",
    "RulesError",
    "RulesLoader",
    "Ruleset",
    "Severity",
    "TicketFacts",
    "Tier",
    "UnknownCriterion",
    "check_rules",
    "criterion",
    "format_duration",
    "load_ruleset",
    "lookup",
    "normalise_address",
    "parse_duration",
]
