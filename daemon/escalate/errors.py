"""The errors escalate reports to a person: each says in one line what is wrong and what to do,
and carries the exit status the CLI leaves with, so the CLI catches this one family
(cli._translate_errors) instead of a list of classes. It imports nothing of escalate: every layer,
rules/ included, may raise these."""

from __future__ import annotations


class EscalateError(Exception):
    """Something a person must fix or wait out (a server down, another instance running): exit 1."""

    exit_code = 1

    def message(self) -> str:
        """What the CLI prints (the error's own text, unless a subclass adds what to check)."""
        return str(self)


class InputError(EscalateError):
    """Bad usage or bad input (a setting, rules.yaml, a reference, a time): exit 2."""

    exit_code = 2
