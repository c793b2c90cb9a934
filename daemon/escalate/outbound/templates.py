"""Render mail from Jinja templates in a sandbox.

Customer text only ever enters as a variable's value, never as template source, so `{{ 7*7 }}` in
a subject stays literal (no template injection). Admin templates run in an ImmutableSandboxedEnvironment with
StrictUndefined, HTML templates autoescaped. Templates are looked up first in the admin's
directory (ESCALATE_TEMPLATES), then in the ones shipped with escalate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from escalate.errors import InputError


class TemplateProblem(InputError, ValueError):
    """A template is missing or broken; the message names the template and line."""


def shipped_templates_dir() -> Path:
    """The templates inside the installed wheel, or the repository's `templates/` in a checkout."""
    packaged = Path(__file__).parents[1] / "templates"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "templates"


def _mtime(directory: str) -> int | None:
    try:
        return os.stat(directory).st_mtime_ns
    except OSError:
        return None


@dataclass(frozen=True)
class RenderedMail:
    text: str
    html: str


class Renderer:
    def __init__(self, admin_dir: Path | None = None):
        dirs = [str(admin_dir)] if admin_dir else []
        dirs.append(str(shipped_templates_dir()))
        self.env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(dirs),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=False),
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._names: tuple[tuple[int | None, ...], frozenset[str]] | None = None

    def names(self) -> set[str]:
        """Template names that have both a text and an HTML part (what rules may refer to)."""
        # listing the directories costs more than deciding an escalation; a directory's mtime
        # changes whenever a file is added, removed or renamed in it, so it keys the cache
        stamp = tuple(_mtime(directory) for directory in self.env.loader.searchpath)
        if self._names is None or self._names[0] != stamp:
            files = set(self.env.list_templates())
            # "_name" files are shared parts included by others, not mail a rule can name
            self._names = (stamp, frozenset(name[: -len(".txt.j2")] for name in files
                                            if name.endswith(".txt.j2") and name.replace(".txt.j2", ".html.j2") in files
                                            and not name.startswith("_")))
        return set(self._names[1])

    def render(self, name: str, context: dict[str, Any]) -> RenderedMail:
        text = self._render(f"{name}.txt.j2", context)
        html = self._render(f"{name}.html.j2", context)
        return RenderedMail(text=text, html=html)

    def _render(self, file: str, context: dict[str, Any]) -> str:
        try:
            return self.env.get_template(file).render(context)
        except jinja2.TemplateNotFound as error:
            raise TemplateProblem(f"template {error.name} not found in {self.env.loader.searchpath}") from None
        except jinja2.TemplateSyntaxError as error:
            raise TemplateProblem(f"{error.filename or error.name}:{error.lineno}: {error.message}") from None
        except jinja2.UndefinedError as error:
            raise TemplateProblem(f"template {file}: {error}") from None
        except jinja2.exceptions.SecurityError as error:
            raise TemplateProblem(f"template {file}: unsafe, refused by the sandbox: {error}") from None
        except Exception as error:  # Jinja: "templates may raise runtime errors … catch them" (range too big, …)
            raise TemplateProblem(f"template {file}: {type(error).__name__}: {error}") from None


# Every kind of mail escalate sends, with the variables its templates get (a sample of each, used
# by `check_templates`; notify.py builds the real ones). An admin's template that names anything
# else fails the check, because rendering is StrictUndefined.
_SAMPLE_TICKET = {
    "ref": "T-1", "subject": "Checkout is down", "requester": "carl@customer.example",
    "requester_display": "Carl <carl@customer.example>", "severity": "urgent", "status": "open", "tier": 1,
    "assignee": None, "created_at": "2026-11-02 09:00 UTC", "age": "1h", "first_response_at": None,
    "resolution_due_at": "2026-11-02 13:00 UTC", "resolution_overdue": None, "resolved_at": None, "message_count": 2,
}
_SAMPLE_MESSAGE = {"sender": "carl@customer.example", "at": "2026-11-02 09:00 UTC", "text": "Error 502 at payment."}
_SAMPLE_HISTORY = [{"at": "2026-11-02 09:00 UTC", "actor": "carl@customer.example", "action": "created", "rule": None,
                   "text": "ticket opened", "times": 1}]
_SAMPLE_ESCALATION = {
    "ticket": _SAMPLE_TICKET, "rule": {"name": "urgent-no-first-response", "description": "Urgent tickets need a response."},
    "tier": {"level": 1, "name": "Frontline", "group": "tier1@example.com"}, "step": 1, "step_in_tier": 1,
    "is_repeat": True, "is_next_tier": False, "previous_tier_name": "Frontline",
    "needed": "Acknowledge the ticket.", "next_step": "A reminder at 10:00.", "last_message": _SAMPLE_MESSAGE,
    "history": _SAMPLE_HISTORY, "support_address": "support@example.com",
    "rules": [{"name": "urgent-no-first-response", "description": "Urgent tickets need a response."}],
}
KINDS: dict[str, dict[str, Any]] = {
    "escalation": _SAMPLE_ESCALATION,
    "reminder": _SAMPLE_ESCALATION,
    "next-tier": {**_SAMPLE_ESCALATION, "is_repeat": False, "is_next_tier": True,
                  "tier": {"level": 2, "name": "Specialists", "group": "tier2@example.com"}},
    "unanswered": {**_SAMPLE_ESCALATION, "is_repeat": False, "step": 3, "step_in_tier": 3,
                   "tier": {"level": 3, "name": "Critical response", "group": "tier3@example.com",
                            "lead": "lead3@example.com"}},
    "group-summary": {"tier": {"level": 1, "name": "Frontline", "group": "tier1@example.com"}, "lead": False,
                      "what": "escalations", "more": 0,
                      "held": [{"subject": "[T-9] Escalation to Frontline: Checkout is down",
                                "kind": "escalation", "at": "2026-11-02 09:16 UTC"}],
                      "support_address": "support@example.com"},
    "confirmation": {"ticket": _SAMPLE_TICKET, "actor": "alice@example.com", "action_text": "acknowledged",
                     "note": "", "support_address": "support@example.com"},
    "breach": {"ticket": _SAMPLE_TICKET, "rule": _SAMPLE_ESCALATION["rule"],
               "tier": {"level": 1, "name": "Frontline", "group": "tier1@example.com", "lead": "lead1@example.com"},
               "breached": "the first-response target", "due_at": "2026-11-02 09:15 UTC", "overdue": "45m",
               "last_message": _SAMPLE_MESSAGE, "history": _SAMPLE_HISTORY, "support_address": "support@example.com"},
    "input-request": {"ticket": _SAMPLE_TICKET, "department": "Billing", "question": "Was the customer charged twice?",
                      "requested_by": "alice@example.com", "last_message": _SAMPLE_MESSAGE,
                      "support_address": "support@example.com"},
    "digest": {"period_start": "2026-11-02 00:00 UTC", "period_end": "2026-11-03 00:00 UTC",
               "escalated": [_SAMPLE_TICKET], "still_open": [_SAMPLE_TICKET], "resolved": [],
               "support_address": "support@example.com"},
    "acknowledgement": {"ticket": _SAMPLE_TICKET, "sender": "carl@customer.example", "support_address": "support@example.com"},
    "resolution": {"ticket": _SAMPLE_TICKET, "actor": "alice@example.com", "note": "Restarted the payment proxy.",
                   "tiers": [{"level": 1, "name": "Frontline"}], "history": _SAMPLE_HISTORY,
                   "support_address": "support@example.com"},
    "delivery-failure": {"ticket": _SAMPLE_TICKET, "failed": {"id": 7, "kind": "escalation", "subject": "[T-1] Escalation",
                                                              "message_id": "esc.x@example.com", "created_at": "2026-11-02 09:15 UTC"},
                         "deliveries": [{"recipient": "tier1@example.com", "status": "failed", "code": 554,
                                         "error": "DATA 554 rejected"}],
                         "support_address": "support@example.com"},
    # the reply side: an agent's #reply to the customer, refusals, command help
    "customer_reply": {"ticket": _SAMPLE_TICKET, "actor": "alice@example.com", "text": "We restarted the proxy.",
                       "support_address": "support@example.com"},
    "refusal": {"commands": ["resolve"], "reason": "not on the roster",
                "support_address": "support@example.com"},
    "command_help": {"ticket": _SAMPLE_TICKET, "unknown": ["reslove"],
                     "commands": [{"name": "resolve", "usage": "#resolve [note]", "description": "Resolve it."}],
                     "support_address": "support@example.com"},
}
# customer text that must come out literally: template syntax and markup in every string value
_HOSTILE = "{{ 7*7 }} {% for x in range(10**9) %}{% endfor %} {{ ''.__class__.__mro__ }} <script>alert(1)</script>"


def _hostile(value: Any) -> Any:
    if isinstance(value, str):
        return value + " " + _HOSTILE
    if isinstance(value, dict):
        return {k: _hostile(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hostile(v) for v in value]
    return value


def check_templates(renderer: Renderer) -> list[str]:
    """Problems with the templates `renderer` would use, one line each (empty when all is well).

    Every kind must exist as text and HTML and render with its variables (StrictUndefined catches
    a misspelt name, the sandbox an unsafe expression, e.g. `''.__class__` or `range(10**9)`); a
    rendering with hostile customer text must keep that text literal and escape it in HTML."""
    problems: list[str] = []
    for kind, context in KINDS.items():
        try:
            renderer.render(kind, context)
            hostile = renderer.render(kind, _hostile(context))
        except TemplateProblem as error:
            problems.append(str(error))
            continue
        if "<script>" in hostile.html:
            problems.append(f"template {kind}.html.j2: customer text is not HTML-escaped (is autoescape off?)")
    return problems
