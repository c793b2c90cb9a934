"""past_target: the ticket is past its severity's first-response or resolution target."""

from __future__ import annotations

from ..registry import criterion, did_you_mean, show

TARGETS = ("first_response", "resolution")


@criterion("past_target", "The ticket is past its severity's first_response or resolution target.")
class PastTarget:
    timed = True

    def parse(self, value):
        if not isinstance(value, str) or value not in TARGETS:
            hint = did_you_mean(value, TARGETS) if isinstance(value, str) else ""
            raise ValueError(f'expected "first_response" or "resolution", got {show(value)}{hint}')
        return value

    def check(self, target, ruleset):
        if ruleset.severities and all(getattr(s, target) is None for s in ruleset.severities):
            yield f"no severity has a {target} target, so this never holds"

    def holds_from(self, facts, target, ruleset):
        if facts.is_done:
            return None
        if target == "first_response" and facts.first_response_at is not None:
            return None
        try:
            severity = ruleset.severity(facts.severity)
        except KeyError:
            # The ticket's severity was removed from rules.yaml since it was opened: hold it to
            # the default severity's targets rather than let it drop off every clock.
            severity = ruleset.default_severity
        limit = getattr(severity, target)
        if limit is None:
            return None
        return facts.created_at + limit

    def describe(self, target):
        return f"past the {target.replace('_', ' ')} target"
