"""rules.yaml -> a checked, frozen Ruleset, or every problem in the file at once.

Three passes, each reporting what it finds and going on:

1. `RulesLoader` (a yaml.SafeLoader) composes the node tree. Every node carries its line and
   column; it drops and reports duplicate keys (PyYAML would keep the last one silently), keys
   that look like secrets, and tags other than YAML's plain ones. Nothing is ever executed.
2. One small converter per type walks the nodes with a breadcrumb ("tiers[1].roster[0]"), so an
   error reads like a compiler's: `rules.yaml:42:7: tiers[1].group: expected an email address …`.
3. Cross-checks: tier levels and rule names unique, referenced tiers, severities and templates
   exist, exactly one default severity, plus each criterion's own `check`.

The daemon uses the same loader on reload and keeps its old rules when `load_ruleset` raises.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any, Callable, TypeVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from escalate.errors import InputError
from escalate.rules import criteria as _criteria  # noqa: F401  (importing it registers every criterion)
from escalate.rules.calendar import ALWAYS_NAME, WEEKDAYS, Calendar, parse_days, parse_span
from escalate.rules.durations import format_duration, parse_duration
from escalate.rules.matrix import MATRIX_CLOCKS, Matrix, matrix_rules
from escalate.rules.model import (
    DEFAULT_GROUP_MAILS_PER_HOUR,
    DEFAULT_TOP_REMINDERS,
    BoundAction,
    BoundCriterion,
    BoundPlugin,
    Rule,
    Ruleset,
    Severity,
    Tier,
)
from escalate.rules.registry import ACTIONS, UnknownCriterion, did_you_mean, load_actions, lookup, show
from escalate.rules.sanity import IncidentPolicy, never_fires, overlap, probe_facts

SUPPORTED_VERSION = 1
DEFAULT_TEMPLATE = "escalation"
MIN_REPEAT = timedelta(minutes=1)

SECRETS_MESSAGE = "secrets belong in the environment (ESCALATE_*), not in rules.yaml"
# Key names that smell of credentials, anywhere in the file.
_SECRET_KEY = re.compile(r"passw(or)?d|passphrase|secret|token|api[_-]?key|credential|private[_-]?key", re.I)

_YAML = "tag:yaml.org,2002:"
# The plain YAML types a rules file needs; anything else (!!python/…, !custom) is refused.
_ALLOWED_TAGS = {_YAML + name for name in ("str", "int", "float", "bool", "null", "timestamp", "seq", "map", "merge")}
_MERGE_TAG = _YAML + "merge"

# A simple addr-spec check: not RFC 5322, but it catches display names, typos and missing domains.
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
                      r"@[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*")
_PREFIX = re.compile(r"[A-Z]{1,5}")
_SEVERITY_NAME = re.compile(r"[a-z][a-z0-9_-]*")
_RULE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_TEMPLATE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

TOP_KEYS = ("version", "timezone", "support_address", "reference_prefix", "calendars", "severities", "tiers",
            "incidents", "matrix", "rules", "acknowledge_customers", "plus_address_replies", "digest", "ladder")
TOP_REQUIRED = ("version", "support_address", "severities", "tiers", "rules")
SEVERITY_KEYS = ("keywords", "senders", "importance", "first_response", "next_response", "resolution", "calendar",
                 "default")
TARGET_KEYS = ("first_response", "next_response", "resolution")
IMPORTANCE_VALUES = ("high", "normal", "low")
CALENDAR_KEYS = ("timezone", "hours", "holidays")
INCIDENT_KEYS = ("window", "similarity")
DIGEST_KEYS = ("at",)
DEFAULT_DIGEST_AT = time(8, 0)
LADDER_KEYS = ("top_reminders", "group_mails_per_hour")
MAX_TOP_REMINDERS = 100
MAX_GROUP_MAILS_PER_HOUR = 10_000
_TIME_OF_DAY = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")
MATRIX_KEYS = ("clock", "after", "rows", "repeat_every")
TIER_KEYS = ("level", "name", "group", "roster", "lead", "consulted", "informed", "chat", "lead_chat", "informed_chat")
CHAT_KEYS = ("chat", "lead_chat", "informed_chat")
TIER_REQUIRED = ("level", "name", "group", "roster")
RULE_KEYS = ("name", "description", "when", "then")
RULE_REQUIRED = ("name", "when", "then")
THEN_BASE_KEYS = ("escalate_to", "repeat_every", "next_tier_after", "template")


def then_keys() -> tuple[str, ...]:
    """The keys a rule's `then:` takes: the notification's, then every registered action's."""
    return THEN_BASE_KEYS + tuple(sorted(load_actions()))


@dataclass(frozen=True)
class RuleIssue:
    """One problem in a rules file, printed like a compiler error."""

    file: str  # as the caller named it
    line: int  # 1-based; 0 when the problem is the file itself (e.g. not found)
    column: int  # 1-based; 0 with line 0
    where: str  # breadcrumb, e.g. "tiers[1].roster[0]"; "" for the file as a whole
    message: str

    def __str__(self) -> str:
        place = f"{self.file}:{self.line}:{self.column}"
        return f"{place}: {self.where}: {self.message}" if self.where else f"{place}: {self.message}"


class RulesError(InputError):
    """rules.yaml cannot be used; `.issues` lists every problem found, in file order."""

    def __init__(self, issues: list[RuleIssue]):
        super().__init__(issues)
        self.issues = list(issues)

    def __str__(self) -> str:
        return "\n".join(str(issue) for issue in self.issues)


def _join(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{key}" if where else key


def _line(node: Node) -> int:
    return node.start_mark.line + 1


class RulesLoader(yaml.SafeLoader):
    """A SafeLoader whose composer reports, instead of hiding, what YAML would let pass.

    After `get_single_node()`, `problems` holds (node, where, message) for every duplicate key,
    secret-looking key and non-plain tag; those keys are dropped from the tree and those tags
    reset to plain ones, so later passes do not report them twice. Every node keeps PyYAML's
    `start_mark` (0-based line and column).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.problems: list[tuple[Node, str, str]] = []
        self._path: list[str | int] = []
        # The nodes themselves, not their id()s: a dropped duplicate key's value is freed while the
        # file is still being composed, and CPython gives its id to a node composed later.
        self._seen: set[Node] = set()
        self.refused: set[Node] = set()  # the nodes whose tag was refused (also kept in problems)

    def _where(self, *extra: str | int) -> str:
        where = ""
        for part in (*self._path, *extra):
            where = _join(where, part)
        return where

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        pushed = False
        if isinstance(index, ScalarNode):  # composing the value of key `index`
            self._path.append(index.value)
            pushed = True
        elif isinstance(index, int) and not isinstance(index, bool):  # the index-th item of a list
            self._path.append(index)
            pushed = True
        try:
            node = super().compose_node(parent, index)
        finally:
            if pushed:
                self._path.pop()
        if node is None:  # not for a document's nodes; typeshed allows it
            return node
        if node not in self._seen:  # an alias returns a node already checked
            self._seen.add(node)
            if node.tag not in _ALLOWED_TAGS:
                where = self._where(index.value) if isinstance(index, ScalarNode) else self._where()
                tag = "!!" + node.tag[len(_YAML):] if node.tag.startswith(_YAML) else node.tag
                self.problems.append((node, where, f'the tag "{tag}" is not allowed in rules.yaml'))
                self.refused.add(node)
                node.tag = {ScalarNode: _YAML + "str", SequenceNode: _YAML + "seq"}.get(type(node), _YAML + "map")
        return node

    def compose_mapping_node(self, anchor: Any) -> MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[str, Node] = {}
        kept = []
        for key, value in node.value:
            if isinstance(key, ScalarNode) and key.tag != _MERGE_TAG:
                name = key.value
                if _SECRET_KEY.search(name):
                    self.problems.append((key, self._where(name), SECRETS_MESSAGE))
                    continue
                if name in first:
                    self.problems.append(
                        (key, self._where(name), f'duplicate key "{name}" (first defined at line {_line(first[name])})')
                    )
                    continue
                first[name] = key
            kept.append((key, value))
        node.value = kept
        return node


_INVALID = object()  # a converter's answer when it has reported an issue
_Item = TypeVar("_Item")  # an item of a YAML list or mapping, as a reader gives it


@dataclass(frozen=True)
class _RuleNodes:
    name: Node  # where an overlap is reported
    when: Node  # where "can never fire" is reported
    where: str  # the breadcrumb, "rules[2]" or "matrix.rows.urgent"


class _Converter:
    """Turns composed nodes into model objects, recording every issue with its breadcrumb."""

    def __init__(self, file: str, loader: RulesLoader, template_names: set[str] | None):
        self.file = file
        self.loader = loader
        self.template_names = template_names
        self.issues: list[RuleIssue] = []
        self.rule_nodes: dict[str, _RuleNodes] = {}  # rule name -> where to report it (sanity checks)
        self.calendar_names: set[str] | None = None

    # -- reporting ---------------------------------------------------------------------------

    def error(self, node: Node, where: str, message: str, *, refused_ok: bool = False) -> object:
        if not refused_ok and self.refused(node):
            return _INVALID  # the loader has reported the refused tag; more would be noise
        mark = node.start_mark
        self.issues.append(RuleIssue(self.file, mark.line + 1, mark.column + 1, where, message))
        return _INVALID

    def value(self, node: Node, where: str) -> Any:
        """The plain Python value of a node, as yaml.safe_load would give it."""
        if self.refused(node):
            return _INVALID  # already reported by the loader
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            return self.error(node, where, exc.problem or str(exc))

    def refused(self, node: Node) -> bool:
        """Whether the node, or a node inside it, had a tag the loader refused."""
        if not self.loader.refused:
            return False
        stack, seen = [node], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if current in self.loader.refused:
                return True
            if isinstance(current, SequenceNode):
                stack.extend(current.value)
            elif isinstance(current, MappingNode):
                for key, value in current.value:
                    stack.extend((key, value))
        return False

    def got(self, node: Node) -> str:
        if isinstance(node, MappingNode):
            return "a mapping"
        if isinstance(node, SequenceNode):
            return "a list"
        value = self.value(node, "")
        return show(value)

    # -- shapes ------------------------------------------------------------------------------

    def mapping(self, node: Node, where: str, known: tuple[str, ...], required: tuple[str, ...] = (),
                what: str = "a mapping") -> dict[str, tuple[Node, Node]] | None:
        """The keys of a mapping node with fixed keys; unknown and missing keys are issues."""
        if isinstance(node, ScalarNode) and self.value(node, where) is None and not required:
            return {}  # `low:` with nothing under it
        if not isinstance(node, MappingNode):
            self.error(node, where, f"expected {what}, got {self.got(node)}")
            return None
        self.loader.flatten_mapping(node)  # `<<: *anchor` merges; later keys override
        fields: dict[str, tuple[Node, Node]] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                self.error(key, where, "a key must be plain text")
                continue
            name = key.value
            if name not in known:
                self.error(key, _join(where, name),
                           f'unknown key "{name}"{did_you_mean(name, known)} (known keys: {", ".join(known)})')
                continue
            fields[name] = (key, value)
        for name in required:
            if name not in fields:
                self.error(node, where, f'missing required key "{name}"')
        return fields

    def named_mapping(self, node: Node, where: str, what: str,
                      empty: str | None = None) -> list[tuple[str, Node, Node]] | None:
        """(name, key node, value node) for a mapping whose keys are names the user chose; None
        when it is not a mapping, or (`empty` is then the issue) has no names."""
        if not isinstance(node, MappingNode):
            self.error(node, where, f"expected {what}, got {self.got(node)}")
            return None
        self.loader.flatten_mapping(node)
        items: list[tuple[str, Node, Node]] = []
        for key, value in node.value:
            if not isinstance(key, ScalarNode):
                self.error(key, where, "a key must be plain text")
                continue
            items.append((key.value, key, value))
        return self.not_empty(items, node, where, empty)

    def sequence(self, node: Node, where: str, what: str, empty: str | None = None) -> list[Node] | None:
        """The items of a list; None when it is not a list, or (`empty` is then the issue) has none."""
        if not isinstance(node, SequenceNode):
            self.error(node, where, f"expected {what}, got {self.got(node)}")
            return None
        return self.not_empty(list(node.value), node, where, empty)

    def not_empty(self, items: list[_Item], node: Node, where: str, empty: str | None) -> list[_Item] | None:
        if empty is not None and not items:
            self.error(node, where, empty)
            return None
        return items

    # -- scalars -----------------------------------------------------------------------------

    def text(self, node: Node, where: str, pattern: re.Pattern[str] | None = None,
             expected: str = "text") -> Any:
        value = self.value(node, where) if isinstance(node, ScalarNode) else None
        if value is _INVALID:
            return value
        if not isinstance(node, ScalarNode) or not isinstance(value, str) or not value.strip():
            # YAML reads 500 as a number and yes/no/on/off as booleans; quotes keep them text.
            hint = " (put it in quotes)" if isinstance(value, (int, float)) else ""
            return self.error(node, where, f"expected {expected}, got {self.got(node)}{hint}")
        value = value.strip()
        if pattern is not None and not pattern.fullmatch(value):
            return self.error(node, where, f"expected {expected}, got {show(value)}")
        return value

    def integer(self, node: Node, where: str, minimum: int, expected: str) -> Any:
        value = self.value(node, where) if isinstance(node, ScalarNode) else None
        if value is _INVALID:
            return value
        if not isinstance(node, ScalarNode) or isinstance(value, bool) or not isinstance(value, int) \
                or value < minimum:
            return self.error(node, where, f"expected {expected}, got {self.got(node)}")
        return value

    def boolean(self, node: Node, where: str) -> Any:
        value = self.value(node, where) if isinstance(node, ScalarNode) else None
        if value is _INVALID:
            return value
        if not isinstance(value, bool):
            return self.error(node, where, f"expected true or false, got {self.got(node)}")
        return value

    def duration(self, node: Node, where: str, minimum: timedelta | None = None) -> Any:
        if not isinstance(node, ScalarNode):
            return self.error(node, where, f'expected a duration like "30m", got {self.got(node)}')
        value = self.value(node, where)
        if value is _INVALID:
            return value
        try:
            parsed = parse_duration(value)
        except ValueError as exc:
            return self.error(node, where, str(exc))
        if minimum is not None and parsed < minimum:
            return self.error(node, where, f"must be at least {format_duration(minimum)}, got {show(value)}")
        return parsed

    def address(self, node: Node, where: str) -> Any:
        value = self.text(node, where, _ADDRESS, 'an email address like "alice@example.com"')
        return value if value is _INVALID else value.lower()

    # -- the file ----------------------------------------------------------------------------

    def ruleset(self, root: Node, source: str) -> Ruleset:
        fields = self.mapping(root, "", TOP_KEYS, TOP_REQUIRED,
                              what="a mapping with version, support_address, severities, tiers and rules")
        if fields is None:
            fields = {}

        def get(name: str, convert: Callable[[Node, str], Any], default: Any = None) -> Any:
            if name not in fields:
                return default
            return convert(fields[name][1], name)

        version = get("version", lambda n, w: self.integer(n, w, 0, f"version {SUPPORTED_VERSION}"))
        if isinstance(version, int) and version != SUPPORTED_VERSION:
            self.error(fields["version"][1], "version",
                       f"unsupported version {version}; this escalate reads version {SUPPORTED_VERSION}")
        timezone_name = get("timezone", self.timezone, "UTC")
        support = get("support_address", self.address)
        prefix = get("reference_prefix", lambda n, w: self.text(
            n, w, _PREFIX, 'a ticket reference prefix of 1 to 5 capital letters, like "T"'), "T")
        zone = timezone_name if isinstance(timezone_name, str) else "UTC"
        calendars = get("calendars", lambda n, w: self.calendars(n, w, zone), [])
        if "calendars" not in fields:
            self.calendar_names = {ALWAYS_NAME}
        severities = get("severities", self.severities)
        tiers = get("tiers", self.tiers)
        incidents = get("incidents", self.incident_policy)
        # one automatic "we received it" per sender per ticket, never to machine mail
        acknowledge = get("acknowledge_customers", self.boolean, False)
        plus_replies = get("plus_address_replies", self.boolean, False)
        digest_at = get("digest", self.digest, DEFAULT_DIGEST_AT)
        ladder = get("ladder", self.ladder, {})
        ladder = ladder if isinstance(ladder, dict) else {}

        good_severities = tuple(severities) if isinstance(severities, list) else ()
        good_tiers = tuple(sorted(tiers, key=lambda tier: tier.level)) if isinstance(tiers, list) else ()
        if isinstance(support, str):
            self.check_own_address(support, fields.get("tiers"))

        # A ruleset of what converted so far, for cross-checks of rules against the rest.
        context = Ruleset(
            version=version if isinstance(version, int) else SUPPORTED_VERSION,
            source=source,
            timezone=timezone_name if isinstance(timezone_name, str) else "UTC",
            support_address=support if isinstance(support, str) else "",
            reference_prefix=prefix if isinstance(prefix, str) else "T",
            severities=good_severities,
            tiers=good_tiers,
            rules=(),
            calendars=tuple(calendars) if isinstance(calendars, list) else (),
            # a broken incidents: section is reported once; rules that need it are checked as if it were fine
            incidents=incidents if isinstance(incidents, IncidentPolicy)
            else (IncidentPolicy(timedelta(hours=1), 1.0) if incidents is _INVALID else None),
        )
        matrix = get("matrix", lambda n, w: self.matrix(
            n, w, context, severities_known=isinstance(severities, list), tiers_known=isinstance(tiers, list)))
        rules = get("rules", lambda n, w: self.rules(
            n, w, context, severities_known=isinstance(severities, list), tiers_known=isinstance(tiers, list)))
        all_rules = list(rules) if isinstance(rules, list) else []
        if isinstance(matrix, Matrix):
            all_rules += matrix_rules(matrix)
        result = Ruleset(
            version=context.version,
            source=source,
            timezone=context.timezone,
            support_address=context.support_address,
            reference_prefix=context.reference_prefix,
            severities=good_severities,
            tiers=good_tiers,
            rules=tuple(all_rules),
            calendars=context.calendars,
            matrix=matrix if isinstance(matrix, Matrix) else None,
            incidents=incidents if isinstance(incidents, IncidentPolicy) else None,
            acknowledge_customers=acknowledge is True,
            plus_address_replies=plus_replies is True,
            digest_at=digest_at if isinstance(digest_at, time) else DEFAULT_DIGEST_AT,
            top_reminders=ladder.get("top_reminders", DEFAULT_TOP_REMINDERS),
            group_mails_per_hour=ladder.get("group_mails_per_hour", DEFAULT_GROUP_MAILS_PER_HOUR),
        )
        if isinstance(rules, list) and isinstance(severities, list) and isinstance(tiers, list) and good_severities \
                and any(s.default for s in good_severities):
            self.sanity(result)
        return result

    # -- rules that can never fire, rules that overlap ------------------------------------------

    def sanity(self, ruleset: Ruleset) -> None:
        """Rules that can never fire, and rules that fire together for the same tickets."""
        probes = probe_facts(ruleset)
        for index, rule in enumerate(ruleset.rules):
            nodes = self.rule_nodes.get(rule.name)
            if nodes is None:
                continue
            reason = never_fires(rule, ruleset, probes)
            if reason:
                where = _join(nodes.where, "when") if rule.source == "rules" else nodes.where
                self.error(nodes.when, where, reason)
            for earlier in ruleset.rules[:index]:
                message = overlap(earlier, rule, self.rule_nodes.get(earlier.name))
                if message:
                    where = _join(nodes.where, "name") if rule.source == "rules" else nodes.where
                    self.error(nodes.name, where, message)
                    break

    # -- calendars ---------------------------------------------------------------------------

    def calendars(self, node: Node, where: str, zone: str) -> Any:
        if self.is_null(node):
            return []
        items = self.named_mapping(node, where, "a mapping of calendar names, like office: {hours: …}")
        if items is None:
            return _INVALID
        # Names count as defined even when their hours are wrong: one mistake, one message.
        self.calendar_names = {ALWAYS_NAME} | {name for name, _key, _value in items}
        result: list[Calendar] = []
        for name, key, value in items:
            here = _join(where, name)
            if not _SEVERITY_NAME.fullmatch(name):
                self.error(key, here, 'expected a calendar name of lowercase letters, digits, "-" and "_", '
                                      f'like "office", got {show(name)}')
                continue
            if name == ALWAYS_NAME:
                self.error(key, here, '"always" is built in (24×7); choose another name')
                continue
            calendar = self.calendar(name, value, here, zone)
            if calendar is not None:
                result.append(calendar)
        return result

    def calendar(self, name: str, node: Node, where: str, zone: str) -> Calendar | None:
        if isinstance(node, ScalarNode) and self.value(node, where) == ALWAYS_NAME:
            return Calendar.always_open(name, zone)
        fields = self.mapping(node, where, CALENDAR_KEYS, ("hours",),
                              what='a mapping with hours (and timezone, holidays), or "always"')
        if fields is None:
            return None
        before = len(self.issues)
        if "timezone" in fields:
            zone = self.timezone(fields["timezone"][1], _join(where, "timezone"))
        hours: list[list[tuple[int, int]]] = [[] for _ in WEEKDAYS]
        if "hours" in fields:
            hours_node = fields["hours"][1]
            days = self.named_mapping(hours_node, _join(where, "hours"),
                                      'a mapping of days to opening hours, like mon-fri: "09:00-17:00"')
            for day_text, day_key, spans_node in days or ():
                here = _join(_join(where, "hours"), day_text)
                try:
                    day_indexes = parse_days(day_text)
                except ValueError as exc:
                    self.error(day_key, here, str(exc))
                    continue
                spans = self.spans(spans_node, here)
                for index in day_indexes:
                    hours[index] = sorted(hours[index] + spans)
            if days is not None and len(self.issues) == before and not any(hours):
                self.error(hours_node, _join(where, "hours"), "no opening hours on any day; clocks would never run")
            for index, spans in enumerate(hours):
                for (_s1, e1), (s2, _e2) in zip(spans, spans[1:]):
                    if s2 < e1:
                        self.error(hours_node, _join(where, "hours"),
                                   f"opening hours on {WEEKDAYS[index]} overlap")
                        break
        holidays: set[date] = set()
        if "holidays" in fields and not self.is_null(fields["holidays"][1]):
            items = self.sequence(fields["holidays"][1], _join(where, "holidays"), "a list of dates like 2026-12-25")
            for position, item in enumerate(items or ()):
                value = self.value(item, "")
                if isinstance(value, str):
                    try:
                        value = date.fromisoformat(value.strip())
                    except ValueError:
                        pass
                if not isinstance(value, date):
                    self.error(item, _join(_join(where, "holidays"), position),
                               f"expected a date like 2026-12-25, got {self.got(item)}")
                    continue
                holidays.add(value)
        if len(self.issues) != before or zone is _INVALID:
            return None
        return Calendar(name=name, timezone=zone, hours=tuple(tuple(spans) for spans in hours),
                        holidays=frozenset(holidays))

    def spans(self, node: Node, where: str) -> list[tuple[int, int]]:
        items = node.value if isinstance(node, SequenceNode) else [node]
        result = []
        for item in items:
            value = self.value(item, where) if isinstance(item, ScalarNode) else None
            if isinstance(value, int) and not isinstance(value, bool):
                # YAML 1.1 reads 09:00 as a base-60 number
                self.error(item, where, 'expected opening hours like "09:00-17:00" (put them in quotes)')
                continue
            if not isinstance(value, str):
                self.error(item, where, f'expected opening hours like "09:00-17:00", got {self.got(item)}')
                continue
            try:
                result.append(parse_span(value))
            except ValueError as exc:
                self.error(item, where, str(exc))
        return result

    # -- incidents and the decision matrix -------------------------------------------------------

    def incident_policy(self, node: Node, where: str) -> Any:
        fields = self.mapping(node, where, INCIDENT_KEYS, ("window",), what="a mapping with window (and similarity)")
        if fields is None:
            return _INVALID
        window: Any = self.duration(fields["window"][1], _join(where, "window"), timedelta(minutes=1)) \
            if "window" in fields else _INVALID
        similarity: Any = 0.6
        if "similarity" in fields:
            value_node = fields["similarity"][1]
            similarity = self.value(value_node, _join(where, "similarity"))
            if isinstance(similarity, bool) or not isinstance(similarity, (int, float)) or not 0 < similarity <= 1:
                similarity = self.error(value_node, _join(where, "similarity"),
                                        f"expected a number above 0 and at most 1, like 0.6, got {self.got(value_node)}")
        if window is _INVALID or similarity is _INVALID:
            return _INVALID
        return IncidentPolicy(window=window, similarity=float(similarity))

    def matrix(self, node: Node, where: str, context: Ruleset, *, severities_known: bool, tiers_known: bool) -> Any:
        fields = self.mapping(node, where, MATRIX_KEYS, ("clock", "after", "rows"),
                              what="a mapping with clock, after and rows")
        if fields is None or not all(k in fields for k in ("clock", "after", "rows")):
            return _INVALID
        clock = self.text(fields["clock"][1], _join(where, "clock"), expected="a clock name")
        if clock is not _INVALID and clock not in MATRIX_CLOCKS:
            clock = self.error(fields["clock"][1], _join(where, "clock"),
                               f'unknown clock "{clock}"{did_you_mean(clock, MATRIX_CLOCKS)} '
                               f"(clocks: {', '.join(MATRIX_CLOCKS)})")
        after_items = self.sequence(fields["after"][1], _join(where, "after"), "a list of durations like [30m, 2h]")
        after: list[timedelta] = []
        for index, item in enumerate(after_items or ()):
            parsed = self.duration(item, _join(_join(where, "after"), index))
            if parsed is not _INVALID:
                if after and parsed <= after[-1]:
                    self.error(item, _join(_join(where, "after"), index), "the times must grow from left to right")
                after.append(parsed)
        repeat = None
        if "repeat_every" in fields and not self.is_null(fields["repeat_every"][1]):
            repeat = self.duration(fields["repeat_every"][1], _join(where, "repeat_every"), MIN_REPEAT)
        rows_node = fields["rows"][1]
        rows_items = self.named_mapping(rows_node, _join(where, "rows"), "a mapping of severity names to tier lists")
        known_severities = [s.name for s in context.severities]
        known_levels = {t.level for t in context.tiers}
        rows = []
        bad = after_items is None or len(after) != len(after_items or ()) or clock is _INVALID or repeat is _INVALID
        for name, key, value in rows_items or ():
            here = _join(_join(where, "rows"), name)
            if severities_known and name not in known_severities:
                self.error(key, here, f'unknown severity "{name}"{did_you_mean(name, known_severities)} '
                                      f"(defined: {', '.join(known_severities)})")
                bad = True
                continue
            cells = self.sequence(value, here, "a list of tier levels, - for none")
            if cells is None:
                bad = True
                continue
            if len(cells) != len(after):
                self.error(value, here, f"expected {len(after)} cells (one per time in after), got {len(cells)}")
                bad = True
                continue
            levels: list[int | None] = []
            for index, cell in enumerate(cells):
                raw = self.value(cell, "")
                if raw in ("-", None):
                    levels.append(None)
                    continue
                level = self.integer(cell, _join(here, index), 1, 'a tier level or "-"')
                if level is not _INVALID and tiers_known and level not in known_levels:
                    level = self.error(cell, _join(here, index), f"no tier has level {level}")
                if level is _INVALID:
                    bad = True
                levels.append(level)
            rows.append((name, tuple(levels), _line(key)))
        if severities_known and rows_items is not None and not bad:
            missing = [name for name in known_severities if name not in {r[0] for r in rows}]
            if missing:
                self.error(rows_node, _join(where, "rows"),
                           f"the matrix has no row for {', '.join(missing)}; every severity needs one "
                           "(a row of - means never)")
                bad = True
        if bad or rows_items is None:
            return _INVALID
        result = Matrix(clock=clock, after=tuple(after), rows=tuple(rows), repeat_every=repeat, line=_line(node))
        row_keys = {name: key for name, key, _value in rows_items}
        for rule in matrix_rules(result):
            key = row_keys[rule.name.split("/", 2)[1]]
            self.rule_nodes[rule.name] = _RuleNodes(name=key, when=key,
                                                    where=_join(_join(where, "rows"), rule.name.split("/", 2)[1]))
        return result

    def digest(self, node: Node, where: str) -> Any:
        """`digest: {at: "08:00"}`: when the informed lists' daily digest goes out, in the rules' timezone."""
        fields = self.mapping(node, where, DIGEST_KEYS, what='a mapping like {at: "08:00"}')
        if fields is None:
            return _INVALID
        if "at" not in fields:
            return DEFAULT_DIGEST_AT
        return self.time_of_day(fields["at"][1], _join(where, "at"))

    def ladder(self, node: Node, where: str) -> Any:
        """`ladder: {top_reminders: 3, group_mails_per_hour: 30}`: how often the top tier is reminded
        before a ladder stops, and how many ladder mails a tier group gets an hour (0: no ceiling)."""
        fields = self.mapping(node, where, LADDER_KEYS, what="a mapping like {top_reminders: 3}")
        if fields is None:
            return _INVALID
        found = {}
        for key, maximum, what in (("top_reminders", MAX_TOP_REMINDERS, "reminders"),
                                   ("group_mails_per_hour", MAX_GROUP_MAILS_PER_HOUR, "mails an hour")):
            if key not in fields:
                continue
            value = self.integer(fields[key][1], _join(where, key), 0, f"a number of {what} from 0 to {maximum}")
            if isinstance(value, int) and value > maximum:
                value = self.error(fields[key][1], _join(where, key), f"at most {maximum} {what}, got {value}")
            if isinstance(value, int):
                found[key] = value
        return found

    def time_of_day(self, node: Node, where: str) -> Any:
        # the node's own text: YAML 1.1 reads an unquoted 12:30 as the number 750 (base 60)
        text = node.value.strip() if isinstance(node, ScalarNode) and isinstance(node.value, str) else None
        found = _TIME_OF_DAY.fullmatch(text) if text is not None else None
        if found is None:
            return self.error(node, where, f'expected a time of day like "08:00" (00:00 to 23:59), '
                                           f'got {show(text) if text is not None else self.got(node)}')
        return time(int(found.group(1)), int(found.group(2)))

    def timezone(self, node: Node, where: str) -> Any:
        name = self.text(node, where, expected='an IANA time zone like "Europe/Berlin"')
        if name is _INVALID:
            return name
        try:
            zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            hint = did_you_mean(name, zoneinfo.available_timezones())
            return self.error(node, where, f'unknown time zone "{name}"{hint}')
        return name

    # -- severities --------------------------------------------------------------------------

    def severities(self, node: Node, where: str) -> Any:
        items = self.named_mapping(node, where, "a mapping of severity names, most severe first", "at least one severity is needed")
        if items is None:
            return _INVALID
        result: list[Severity] = []
        default_at: tuple[str, Node] | None = None
        complete = True
        for name, key, value in items:
            here = _join(where, name)
            before = len(self.issues)
            if not _SEVERITY_NAME.fullmatch(name):
                self.error(key, here, 'expected a severity name of lowercase letters, digits, "-" and "_", '
                                      f'like "urgent", got {show(name)}')
                complete = False
                continue
            severity, default_node = self.severity(name, value, here)
            if severity is None:
                complete = False
                continue
            if severity.default:
                assert default_node is not None  # the key that made it the default
                if default_at is not None:
                    self.error(default_node, _join(here, "default"),
                               f'"{default_at[0]}" is already the default (line {_line(default_at[1])}); '
                               "exactly one severity has default: true")
                else:
                    default_at = (name, default_node)
            result.append(severity)
            complete = complete and len(self.issues) == before
        if default_at is None and complete:
            self.error(node, where, 'no severity has "default: true"; mark exactly one')
        return result

    def severity(self, name: str, node: Node, where: str) -> tuple[Severity | None, Node | None]:
        fields = self.mapping(node, where, SEVERITY_KEYS, what="a mapping with keywords, first_response, resolution")
        if fields is None:
            return None, None
        keywords: list[str] = []
        if "keywords" in fields:
            items = self.sequence(fields["keywords"][1], _join(where, "keywords"),
                                  "a list of keywords like [outage, down]")
            for index, item in enumerate(items or ()):
                word = self.text(item, _join(_join(where, "keywords"), index), expected="a keyword")
                if word is not _INVALID:
                    keywords.append(word)
        senders: list[str] = []
        if "senders" in fields:
            items = self.sequence(fields["senders"][1], _join(where, "senders"),
                                  'a list of addresses or domains like ["ceo@big.example", "@big.example"]')
            for index, item in enumerate(items or ()):
                here = _join(_join(where, "senders"), index)
                text = self.text(item, here, expected="an address or @domain")
                if text is _INVALID:
                    continue
                text = text.lower()
                if text.startswith("@") and "." in text and " " not in text:
                    senders.append(text)
                elif _ADDRESS.fullmatch(text):
                    senders.append(text)
                else:
                    self.error(item, here, f'expected an address like "ceo@big.example" or a domain like '
                                           f'"@big.example", got {show(text)}')
        importance: list[str] = []
        if "importance" in fields:
            node_i = fields["importance"][1]
            items = node_i.value if isinstance(node_i, SequenceNode) else [node_i]
            for item in items:
                text = self.value(item, "") if isinstance(item, ScalarNode) else None
                if text not in IMPORTANCE_VALUES:
                    self.error(item, _join(where, "importance"),
                               f"expected high, normal or low (the mail's Importance/X-Priority), got {self.got(item)}")
                    continue
                importance.append(text)
        calendar_name = ALWAYS_NAME
        if "calendar" in fields:
            calendar_node = fields["calendar"][1]
            calendar_name = self.text(calendar_node, _join(where, "calendar"), expected="a calendar name")
            known = getattr(self, "calendar_names", None)
            if calendar_name is not _INVALID and known is not None and calendar_name not in known:
                self.error(calendar_node, _join(where, "calendar"),
                           f'unknown calendar "{calendar_name}"{did_you_mean(calendar_name, known)} '
                           f"(calendars: {', '.join(sorted(known))})")
            if calendar_name is _INVALID or (known is not None and calendar_name not in known):
                calendar_name = ALWAYS_NAME
        targets: dict[str, timedelta | None] = {}
        for target in TARGET_KEYS:
            targets[target] = None
            if target in fields and not self.is_null(fields[target][1]):
                parsed = self.duration(fields[target][1], _join(where, target), minimum=timedelta(seconds=1))
                targets[target] = None if parsed is _INVALID else parsed
        default = False
        default_node = None
        if "default" in fields:
            default_node = fields["default"][1]
            parsed = self.boolean(default_node, _join(where, "default"))
            default = parsed is True
        severity = Severity(name=name, keywords=tuple(keywords), first_response=targets["first_response"],
                            resolution=targets["resolution"], default=default,
                            next_response=targets["next_response"], calendar=calendar_name,
                            senders=tuple(senders), importance=tuple(importance))
        return severity, default_node

    def is_null(self, node: Node) -> bool:
        return isinstance(node, ScalarNode) and node.tag == _YAML + "null"

    # -- tiers -------------------------------------------------------------------------------

    def tiers(self, node: Node, where: str) -> Any:
        items = self.sequence(node, where, "a list of tiers", "at least one tier is needed")
        if items is None:
            return _INVALID
        result: list[Tier] = []
        levels: dict[int, tuple[int, Node]] = {}
        for index, item in enumerate(items):
            here = _join(where, index)
            tier, level_node = self.tier(item, here)
            if tier is None:
                continue
            assert level_node is not None  # a tier has its level
            if self.first_use(levels, tier.level, index, level_node, _join(here, "level"), f"level {tier.level}", "tiers"):
                result.append(tier)
        return result

    def first_use(self, seen: dict[Any, tuple[int, Node]], key: Any, index: int, node: Node, where: str,
                  what: str, listed: str) -> bool:
        """Whether item `index` of a list is the first to use `key` (a tier's level, a rule's name);
        when not, the issue names the item that used it first."""
        if key in seen:
            first_index, first_node = seen[key]
            self.error(node, where, f"{what} is already used by {listed}[{first_index}] (line {_line(first_node)})")
            return False
        seen[key] = (index, node)
        return True

    def tier(self, node: Node, where: str) -> tuple[Tier | None, Node | None]:
        fields = self.mapping(node, where, TIER_KEYS, TIER_REQUIRED,
                              what="a mapping with level, name, group and roster")
        if fields is None:
            return None, None
        ok = all(name in fields for name in TIER_REQUIRED)
        values: dict[str, Any] = {}
        values["level"] = self.integer(fields["level"][1], _join(where, "level"), 1,
                                       "a tier level (a whole number, 1 or more)") if "level" in fields else _INVALID
        if "name" in fields:
            values["name"] = self.text(fields["name"][1], _join(where, "name"), expected="a tier name")
        if "group" in fields:
            values["group"] = self.address(fields["group"][1], _join(where, "group"))
        if "roster" in fields:
            values["roster"] = self.roster(fields["roster"][1], _join(where, "roster"))
        values["lead"] = None
        if "lead" in fields and not self.is_null(fields["lead"][1]):
            values["lead"] = self.address(fields["lead"][1], _join(where, "lead"))
        values["consulted"] = ()
        if "consulted" in fields and not self.is_null(fields["consulted"][1]):
            values["consulted"] = self.consulted(fields["consulted"][1], _join(where, "consulted"))
        values["informed"] = ()
        if "informed" in fields and not self.is_null(fields["informed"][1]):
            items = self.sequence(fields["informed"][1], _join(where, "informed"), "a list of addresses")
            informed = [self.address(item, _join(_join(where, "informed"), i)) for i, item in enumerate(items or ())]
            values["informed"] = _INVALID if items is None or _INVALID in informed else tuple(informed)
        for key in CHAT_KEYS:
            values[key] = ()
            if key in fields and not self.is_null(fields[key][1]):
                values[key] = self.chat_channels(fields[key][1], _join(where, key))
        if not ok or any(value is _INVALID for value in values.values()):
            # Keep the level known when it is valid, so rules that point at it are not misreported.
            if values["level"] is not _INVALID:
                return Tier(level=values["level"], name="", group="", roster=(), lead=None), fields["level"][1]
            return None, None
        return Tier(**values), fields["level"][1]

    def chat_channels(self, node: Node, where: str) -> Any:
        """chat: [frontline, oncall]: channel names whose URLs the environment holds (chat.py)."""
        import escalate.outbound.chat as chat

        items = self.sequence(node, where, "a list of chat channel names")
        if items is None:
            return _INVALID
        names = []
        for index, item in enumerate(items):
            here = _join(where, index)
            name = self.text(item, here, chat.NAME, "a chat channel name (lowercase letters, digits, _)")
            if name is _INVALID:
                return _INVALID
            problem = chat.channel_problem(name)
            if problem:
                return self.error(item, here, problem)
            names.append(name)
        return tuple(dict.fromkeys(names))

    def consulted(self, node: Node, where: str) -> Any:
        """consulted: {Security: security@example.com, Legal: legal@example.com}"""
        items = self.named_mapping(node, where, "a mapping of department names to addresses, like Legal: legal@…")
        if items is None:
            return _INVALID
        result = []
        for name, _key, value in items:
            address = self.address(value, _join(where, name))
            if address is _INVALID:
                return _INVALID
            result.append((name, address))
        return tuple(result)

    def roster(self, node: Node, where: str) -> Any:
        items = self.sequence(node, where, "a list of member addresses", "the roster must list at least one member address")
        if items is None:
            return _INVALID
        members: list[str] = []
        lines: dict[str, int] = {}
        bad = False
        for index, item in enumerate(items):
            address = self.address(item, _join(where, index))
            if address is _INVALID:
                bad = True
            elif address in lines:
                self.error(item, _join(where, index), f'"{address}" is already on the roster (line {lines[address]})')
                bad = True
            else:
                lines[address] = _line(item)
                members.append(address)
        return _INVALID if bad else tuple(members)

    def check_own_address(self, support: str, tiers_field: tuple[Node, Node] | None) -> None:
        """Mail from the support address is the daemon's own, so no tier may use it."""
        if tiers_field is None or not isinstance(tiers_field[1], SequenceNode):
            return
        for index, item in enumerate(tiers_field[1].value):
            if not isinstance(item, MappingNode):
                continue
            for key, value in item.value:
                if not isinstance(key, ScalarNode):
                    continue
                here = _join(_join("tiers", index), key.value)
                if key.value in ("group", "lead") and isinstance(value, ScalarNode):
                    if str(value.value).strip().lower() == support:
                        self.error(value, here, f"{support} is the support address; escalations sent to it "
                                                "would come back as new mail")
                elif key.value == "roster" and isinstance(value, SequenceNode):
                    for position, member in enumerate(value.value):
                        if isinstance(member, ScalarNode) and str(member.value).strip().lower() == support:
                            self.error(member, _join(here, position),
                                       f"{support} is the support address; mail from it is the daemon's own, "
                                       "so it cannot act on tickets")

    # -- rules -------------------------------------------------------------------------------

    def rules(self, node: Node, where: str, context: Ruleset, *, severities_known: bool,
              tiers_known: bool) -> Any:
        if self.is_null(node):
            return []
        items = self.sequence(node, where, "a list of rules")
        if items is None:
            return _INVALID
        result: list[Rule] = []
        names: dict[str, tuple[int, Node]] = {}
        for index, item in enumerate(items):
            here = _join(where, index)
            rule, name_node = self.rule(item, here, context, severities_known=severities_known,
                                        tiers_known=tiers_known)
            if name_node is not None:
                name = self.value(name_node, "")
                if not self.first_use(names, name, index, name_node, _join(here, "name"), f'rule name "{name}"', "rules"):
                    continue
            if rule is not None:
                result.append(rule)
        return result

    def rule(self, node: Node, where: str, context: Ruleset, *, severities_known: bool,
             tiers_known: bool) -> tuple[Rule | None, Node | None]:
        fields = self.mapping(node, where, RULE_KEYS, RULE_REQUIRED, what="a mapping with name, when and then")
        if fields is None:
            return None, None
        ok = all(name in fields for name in RULE_REQUIRED)
        name_node = None
        name: Any = _INVALID
        if "name" in fields:
            name = self.text(fields["name"][1], _join(where, "name"), _RULE_NAME,
                             'a rule name of lowercase letters, digits, "-" and "_", like "urgent-no-first-response"')
            name_node = fields["name"][1] if name is not _INVALID else None
        description: Any = ""
        if "description" in fields and not self.is_null(fields["description"][1]):
            description = self.text(fields["description"][1], _join(where, "description"), expected="a sentence")
        criteria: Any = _INVALID
        if "when" in fields:
            criteria = self.when(fields["when"][1], _join(where, "when"), context, severities_known)
        then: Any = _INVALID
        if "then" in fields:
            then = self.then(fields["then"][1], _join(where, "then"), context, tiers_known)
        if not ok or any(value is _INVALID for value in (name, description, criteria, then)):
            return None, name_node
        rule = Rule(name=name, description=description, criteria=criteria, line=_line(node), **then)
        assert name_node is not None  # the name is valid
        self.rule_nodes.setdefault(name, _RuleNodes(name=name_node, when=fields["when"][1], where=where))
        return rule, name_node

    def when(self, node: Node, where: str, context: Ruleset, severities_known: bool) -> Any:
        items = self.named_mapping(node, where, "a mapping of criteria, like no_first_response_for: 15m",
                                   "at least one criterion is needed")
        if items is None:
            return _INVALID
        bound: list[BoundCriterion] = []
        bad = False
        for name, key, value_node in items:
            here = _join(where, name)
            try:
                criterion = lookup(name)
            except UnknownCriterion as exc:
                self.error(key, here, str(exc))
                bad = True
                continue
            # The cross-checks of a criterion read the severities; skip them when those are broken.
            one = self.bind(BoundCriterion, criterion, name, value_node, here,
                            (context,) if severities_known else None)
            if one is _INVALID:
                bad = True
            else:
                bound.append(one)
        return _INVALID if bad else tuple(bound)

    def bind(self, kind: type[BoundPlugin], plugin: Any, name: str, value_node: Node, where: str,
             check_with: tuple[Any, ...] | None) -> Any:
        """`name: value` of a rule bound to its registered criterion or action: the value read,
        parsed by the plugin and cross-checked by its `check(parsed, *check_with)` (not when
        `check_with` is None: what it reads is broken). _INVALID once any of that is reported."""
        value = self.value(value_node, where)
        if value is _INVALID:
            return _INVALID
        try:
            parsed = plugin.parse(value)
        except ValueError as exc:
            return self.error(value_node, where, str(exc))
        messages = list(plugin.check(parsed, *check_with)) if check_with is not None else []
        for message in messages:
            self.error(value_node, where, message)
        return _INVALID if messages else kind(name=name, value=parsed, plugin=plugin)

    def then(self, node: Node, where: str, context: Ruleset, tiers_known: bool) -> Any:
        fields = self.mapping(node, where, then_keys(), what="a mapping with escalate_to")
        if fields is None:
            return _INVALID
        result: dict[str, Any] = {"repeat_every": None, "next_tier_after": None, "template": DEFAULT_TEMPLATE,
                                  "escalate_to": None}
        action_names = [name for name in fields if name in ACTIONS]
        bad = False
        if "escalate_to" not in fields and not action_names:
            self.error(node, where, 'missing required key "escalate_to"')
            bad = True
        elif "escalate_to" not in fields and ("repeat_every" in fields or "next_tier_after" in fields):
            self.error(node, where, "repeat_every and next_tier_after need escalate_to")
            bad = True
        if "escalate_to" in fields:
            level_node = fields["escalate_to"][1]
            level = self.integer(level_node, _join(where, "escalate_to"), 1, "a tier level (a whole number, 1 or more)")
            if level is not _INVALID and tiers_known and level not in {tier.level for tier in context.tiers}:
                levels = ", ".join(str(tier.level) for tier in context.tiers)
                level = self.error(level_node, _join(where, "escalate_to"),
                                   f"no tier has level {level} (levels: {levels})")
            result["escalate_to"] = level
        if "repeat_every" in fields and not self.is_null(fields["repeat_every"][1]):
            result["repeat_every"] = self.duration(fields["repeat_every"][1], _join(where, "repeat_every"), MIN_REPEAT)
        if "next_tier_after" in fields and not self.is_null(fields["next_tier_after"][1]):
            after_node = fields["next_tier_after"][1]
            after = self.integer(after_node, _join(where, "next_tier_after"), 0,
                                 "a number of repeats (a whole number, 0 or more)")
            if after is not _INVALID and ("repeat_every" not in fields or self.is_null(fields["repeat_every"][1])):
                after = self.error(after_node, _join(where, "next_tier_after"), "next_tier_after needs repeat_every")
            result["next_tier_after"] = after
        if "template" in fields:
            template_node = fields["template"][1]
            template = self.text(template_node, _join(where, "template"), _TEMPLATE_NAME,
                                 'a template name like "escalation"')
            if template is not _INVALID and self.template_names is not None and template not in self.template_names:
                known = ", ".join(sorted(self.template_names)) or "none"
                template = self.error(template_node, _join(where, "template"),
                                      f'unknown template "{template}"{did_you_mean(template, self.template_names)} '
                                      f"(templates: {known})")
            result["template"] = template
        actions = []
        plain = {key: (self.value(value, "") if isinstance(value, ScalarNode) else None)
                 for key, (_k, value) in fields.items()}
        for name in action_names:
            one = self.bind(BoundAction, ACTIONS[name], name, fields[name][1], _join(where, name),
                            (context, plain) if tiers_known else None)
            if one is _INVALID:
                bad = True
            else:
                actions.append(one)
        result["actions"] = tuple(actions)
        if bad or any(value is _INVALID for value in result.values()):
            return _INVALID
        return result


def _read(path: Path, file: str) -> tuple[str | None, list[RuleIssue]]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, [RuleIssue(file, 0, 0, "", "file not found")]
    except OSError as exc:
        return None, [RuleIssue(file, 0, 0, "", f"cannot read the file: {exc.strerror or exc}")]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, [RuleIssue(file, line, column, "", "not UTF-8 text")]


def _yaml_issue(file: str, text: str, exc: yaml.YAMLError) -> RuleIssue:
    """A YAML syntax error as an issue at the place the parser gave up."""
    line, column = 1, 1
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, column = mark.line + 1, mark.column + 1
        problem, context = exc.problem or "", exc.context or ""
        if problem.startswith("but "):  # "expected a single document …, but found another document"
            message = f"{context}, {problem}"
        else:
            message = f"{problem} ({context})" if context and problem else problem or context
        if "<block" in problem:
            message += "; check the indentation"
    elif isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        message = f"character #x{exc.character:04x} is not allowed in YAML"
    else:
        message = str(exc)
    return RuleIssue(file, line, column, "", f"invalid YAML: {message}")


def _load(path: str | Path, template_names: set[str] | None) -> tuple[Ruleset | None, list[RuleIssue]]:
    file = str(path)
    text, issues = _read(Path(path), file)
    if text is None:
        return None, issues
    try:
        loader = RulesLoader(text)  # the reader already refuses control characters here
    except yaml.YAMLError as exc:
        return None, [_yaml_issue(file, text, exc)]
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as exc:
            return None, [_yaml_issue(file, text, exc)]
        if root is None:
            return None, [RuleIssue(file, 1, 1, "", "the file is empty; expected version, support_address, "
                                                     "severities, tiers and rules")]
        converter = _Converter(file, loader, set(template_names) if template_names is not None else None)
        for node, where, message in loader.problems:
            converter.error(node, where, message, refused_ok=True)
        ruleset = converter.ruleset(root, file)
    finally:
        loader.dispose()
    issues = sorted(converter.issues, key=lambda issue: (issue.line, issue.column))
    return ruleset, issues


def read_rules(path: str | Path, *, template_names: set[str] | None = None) -> tuple[Ruleset | None, list[RuleIssue]]:
    """The Ruleset from `path` and every problem in it, in file order (the Ruleset is not to be used when
    there is a problem): for a check that reports both in one reading (`rules check`)."""
    return _load(path, template_names)


def check_rules(path: str | Path, *, template_names: set[str] | None = None) -> list[RuleIssue]:
    """Every problem in the rules file at `path`, in file order; [] when it is fine.

    `template_names`, when given, are the templates that exist; rules naming others are errors.
    """
    return _load(path, template_names)[1]


def load_ruleset(path: str | Path, *, template_names: set[str] | None = None) -> Ruleset:
    """The checked Ruleset from `path`; RulesError lists every problem when there is any."""
    ruleset, issues = _load(path, template_names)
    if issues or ruleset is None:
        raise RulesError(issues)
    return ruleset
