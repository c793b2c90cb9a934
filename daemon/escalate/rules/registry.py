"""The registry of rule criteria: each criterion is a small file in `criteria/`, found by name.

Adding a criterion is adding a file (Mailman's `rules/`): decorate a class with
`@criterion(name, description)` and give it

    parse(value) -> parsed
        the YAML value after `name:` in a rule's `when:`, checked and converted once at load
        time; raise ValueError with a message that says what was expected.
    holds_from(facts, parsed, ruleset) -> datetime | None
        None if the criterion does not hold for this ticket; otherwise the moment from which it
        holds (ALWAYS when time plays no part). The moment may lie in the future: the engine
        uses it to know when to look at the ticket again.

and optionally

    check(parsed, ruleset) -> Iterable[str]
        cross-checks against the rest of the file (e.g. that a severity exists); each string is
        one error, reported at the criterion's value.
    describe(parsed) -> str
        a short phrase for `rules explain` and the decision matrix, e.g. "no first response for 15m".
    timed: bool
        True when holds_from depends on the clock (a duration or a target).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, Callable, TypeVar

_Plugin = TypeVar("_Plugin")  # a criterion or action class (or object), returned as it came

CRITERIA: dict[str, Any] = {}


def show(value: object) -> str:
    """A YAML value as a user wrote it, for "got …" in error messages."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return str(value)


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """ '; did you mean "x"?' when a known word is close to `word`, else ''."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else ""


def _default_check(parsed: Any, ruleset: Any) -> Iterable[str]:
    return ()


def _registered(target: Any, kind: str, name: str, description: str, methods: tuple[str, ...],
                table: dict[str, Any]) -> Any:
    """The instance a criterion or action class (or object) registers under `name` in `table`,
    checked for the methods every one of its kind has; `describe` defaults to "name: value"."""
    instance: Any = target() if isinstance(target, type) else target
    for method in methods:
        if not callable(getattr(instance, method, None)):
            raise TypeError(f"{kind} {name!r} has no {method}()")
    if name in table:
        raise ValueError(f"{kind} {name!r} is registered twice")
    instance.name = name
    instance.description = description
    if not callable(getattr(instance, "describe", None)):
        instance.describe = lambda parsed: f"{name}: {parsed}"
    table[name] = instance
    return instance


def criterion(name: str, description: str) -> Callable[[_Plugin], _Plugin]:
    """Class (or object) decorator: register a criterion under `name`.

    A class is instantiated once, with no arguments; the registry holds the instance and the
    decorated class is returned unchanged.
    """

    def register(target: _Plugin) -> _Plugin:
        instance = _registered(target, "criterion", name, description, ("parse", "holds_from"), CRITERIA)
        if not hasattr(instance, "timed"):
            instance.timed = False
        if not callable(getattr(instance, "check", None)):
            instance.check = _default_check
        return target

    return register


class UnknownCriterion(KeyError):
    """A name in a rule's `when:` that no criterion is registered under."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return (
            f'unknown criterion "{self.name}"{did_you_mean(self.name, CRITERIA)} '
            f"(known criteria: {', '.join(sorted(CRITERIA))})"
        )


def lookup(name: str) -> Any:
    """The registered criterion called `name`; UnknownCriterion lists the known ones."""
    _load()
    try:
        return CRITERIA[name]
    except KeyError:
        raise UnknownCriterion(name) from None


def _load() -> None:
    # Importing the package imports every file in it, and each file registers itself.
    import escalate.rules.criteria  # noqa: F401


# -- actions ---------------------------------------------------------------------------------
#
# What a rule does besides mailing its tier, one small file each in `actions/`, found by name
# under a rule's `then:`. An action has
#
#     parse(value) -> parsed                  checked once at load time; ValueError on bad input
#     run(effects, parsed) -> int             what it does when its rule first fires on a ticket,
#                                             only through `effects` (rules/effects.py: the engine
#                                             acts); returns the number of mails queued.
# and optionally check(parsed, ruleset, rule_fields) -> Iterable[str] and describe(parsed) -> str.

ACTIONS: dict[str, Any] = {}


def action(name: str, description: str) -> Callable[[_Plugin], _Plugin]:
    """Class decorator: register a rule action under `name` (see the notes above)."""

    def register(target: _Plugin) -> _Plugin:
        instance = _registered(target, "action", name, description, ("parse", "run"), ACTIONS)
        if not callable(getattr(instance, "check", None)):
            instance.check = lambda parsed, ruleset, then: ()
        return target

    return register


def load_actions() -> dict[str, Any]:
    """Every registered action by name (importing the package registers each of its files)."""
    import escalate.rules.actions  # noqa: F401

    return ACTIONS


def lookup_action(name: str) -> Any | None:
    """The registered action called `name`, or None."""
    return load_actions().get(name)
