"""Chat channels beside the email groups: where they are configured, which notification goes to
which channel, and what a post says.

A channel's URL carries its token, so it lives in the environment, `ESCALATE_CHAT_<NAME>=<URL>`
(an Apprise URL: slack://…, mmost://…, workflows://…, json://…), and rules.yaml names the channel:
a tier's `chat: [frontline]`, its lead's `lead_chat:` and its informed list's `informed_chat:`.
A notification to a tier's group, lead or informed list is then also posted to their channels, as
deliveries of the same outbox row (recipient "chat:<name>"), so a post is queued in the
transaction that decided the mail, retried, capped and listed like any recipient (chatsend.py
posts them). URLs are never shown: `redacted` is what output and logs say of one.

Apprise is imported only here and in chatsend.py, and only when a channel is configured: loading
its plugins costs about a quarter of a second, which users without chat must not pay.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import warnings
from typing import Any, Iterable, Mapping
from urllib.parse import quote, urlsplit

ENV_PREFIX = "ESCALATE_CHAT_"
RECIPIENT_PREFIX = "chat:"
NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # a channel name in rules.yaml; its variable is upper case


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def configured(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Every channel the environment configures: name -> URL."""
    environ = os.environ if environ is None else environ
    return {key[len(ENV_PREFIX):].lower(): value.strip() for key, value in environ.items()
            if key.startswith(ENV_PREFIX) and len(key) > len(ENV_PREFIX) and value.strip()}


def channel_url(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    environ = os.environ if environ is None else environ
    return (environ.get(env_name(name)) or "").strip() or None


def recipient(name: str) -> str:
    return RECIPIENT_PREFIX + name


def channel_of(address: str) -> str | None:
    """The channel a delivery's recipient names ("chat:frontline" -> "frontline"); None for mail."""
    return address[len(RECIPIENT_PREFIX):] if address.startswith(RECIPIENT_PREFIX) else None


def redacted(url: str | None) -> str:
    """What may be shown of a channel URL: its scheme alone (hosts and paths carry tokens)."""
    if not url:
        return "(not set)"
    scheme = urlsplit(url).scheme
    return f"{scheme}://…" if scheme else "…"


def _secret_parts(url: str) -> list[str]:
    parts = urlsplit(url)
    found = {url, parts.netloc, parts.path, parts.query, parts.username or "", parts.password or ""}
    found.update(re.split(r"[/?&=:@,]+", f"{parts.netloc}{parts.path}?{parts.query}"))
    return sorted((s for s in found if len(s) >= 4), key=len, reverse=True)


def secret_parts(environ: Mapping[str, str] | None = None) -> list[str]:
    """Every configured channel URL and its parts, longest first: for the log redactor."""
    return [part for url in configured(environ).values() for part in _secret_parts(url)]


def scrub(text: str, url: str | None) -> str:
    """`text` with every part of `url` that could be a secret replaced by "…" (Apprise's errors
    may quote a host or path of the URL)."""
    if not url or not text:
        return text
    for secret in _secret_parts(url):
        text = text.replace(secret, "…")
    return text


def load_apprise():
    """The apprise module, imported on first use. Apprise logs whole URLs at debug level, and
    urllib3 the request path: both are kept out of our logs (chatsend.py logs what happened
    itself, scrubbed). Its plugins import the stdlib's imghdr, whose DeprecationWarning is
    Apprise's to fix, not something to show a user of escalate."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise
        import apprise.apprise

        if not apprise.apprise.N_MGR:  # the plugin registry loads its plugins on first use: now
            apprise.apprise.N_MGR.load_modules()
    logging.getLogger("apprise").propagate = False
    logging.getLogger("apprise").addHandler(logging.NullHandler())
    logging.getLogger("urllib3.connectionpool").setLevel(logging.INFO)
    return apprise


def url_problem(url: str) -> str | None:
    """Why Apprise cannot post to `url` (an unknown scheme, a malformed URL), or None.
    Imports Apprise: call it only for a configured channel."""
    apprise = load_apprise()
    registry = apprise.apprise.N_MGR
    scheme = urlsplit(url).scheme.lower() if "://" in url else ""
    if not scheme:
        return 'is not a URL like "slack://…" (see the README\'s "Chat channels")'
    if scheme not in registry:
        close = difflib.get_close_matches(scheme, list(registry.schemas()), n=1)
        hint = f' (did you mean "{close[0]}://"?)' if close else ""
        return f'has the scheme "{scheme}://", which Apprise does not know{hint}'
    if apprise.Apprise.instantiate(url) is None:
        return f'is a {scheme}:// URL Apprise cannot read (a token or part missing?)'
    return None


def channel_problem(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    """What is wrong with channel `name` as configured in the environment, or None."""
    url = channel_url(name, environ)
    if url is None:
        known = sorted(configured(environ))
        close = difflib.get_close_matches(name, known, n=1)
        hint = f'; did you mean "{close[0]}"?' if close else (f"; configured: {', '.join(known)}" if known else "")
        return f'chat channel "{name}" has no URL: set {env_name(name)} in the environment{hint}'
    problem = url_problem(url)
    return f"{env_name(name)} {problem}" if problem else None


def channels_for(ruleset, recipients: Iterable[str]) -> dict[str, list[str]]:
    """The chat recipients ("chat:<name>") of a notification mailed to `recipients`, each with the
    addresses it stands beside: the channels of each tier whose group, lead or informed list is
    among them. Empty for anyone else (a customer)."""
    wanted = list(recipients)
    found: dict[str, list[str]] = {}
    for tier in ruleset.tiers:
        for names, addresses in ((tier.chat, [tier.group]), (tier.lead_chat, [tier.lead]),
                                 (tier.informed_chat, list(tier.informed))):
            for address in (a for a in wanted if a in addresses) if names else ():
                for name in names:
                    found.setdefault(recipient(name), [])
                    if address not in found[recipient(name)]:
                        found[recipient(name)].append(address)
    return found


# -- what a post says -------------------------------------------------------------------------------

_KIND_LABEL = {
    "escalation": "Escalation", "reminder": "Reminder", "next-tier": "Escalated to the next tier",
    "unanswered": "Unanswered", "breach": "Breach", "confirmation": "Update", "resolution": "Resolved",
    "delivery-failure": "Undeliverable notification", "digest": "Digest",
}


def _one_line(text: Any) -> str:
    """Our own words (what is needed, what happens next): one line, as written."""
    return " ".join(str(text).split())[:300]


def _md(text: Any) -> str:
    """Customer text in a Markdown post: one line, no markup it could inject (links, emphasis), and
    no mention that would notify a whole channel (@channel, @here): a zero-width space after "@"."""
    text = " ".join(str(text).split())
    text = re.sub(r"([\\`*_\[\]<>|#~])", r"\\\1", text)
    return re.sub(r"@(?=\w)", "@\u200b", text)[:300]


def message(*, kind: str, subject: str, context: Mapping[str, Any] | None, reply_to: str | None,
            plus_address_replies: bool, drill: bool) -> dict[str, str]:
    """The post for a notification: a title and one short Markdown block a phone shows whole —
    reference, subject, severity, tier, age, what is needed by when, what happens next, and how to
    act: a mailto: link to the signed reply address with #ack filled in, or "reply #ack"."""
    context = context or {}
    ticket = context.get("ticket") or {}
    tier = context.get("tier") or {}
    label = _KIND_LABEL.get(kind, kind.replace("-", " ").capitalize())
    ref = ticket.get("ref")
    title = f"{'DRILL ' if drill else ''}{label}{f' {ref}' if ref else ''}"
    lines = []
    if drill:
        lines.append("**DRILL** — a practice escalation, no customer is waiting.")
    if ref:
        lines.append(f"**{ref}** {_md(ticket.get('subject', ''))}")
    else:
        lines.append(_md(subject))
    facts = []
    if ticket.get("severity"):
        facts.append(f"severity **{_md(ticket['severity'])}**")
    if tier.get("name"):
        facts.append(f"tier {tier.get('level')} {_md(tier['name'])}")
    elif ticket.get("tier"):
        facts.append(f"tier {ticket['tier']}")
    if ticket.get("age"):
        facts.append(f"age {ticket['age']}")
    if facts:
        lines.append(" · ".join(facts))
    if context.get("breached"):
        lines.append(f"Missed: {_md(context['breached'])} (due {context.get('due_at')}, {context.get('overdue')} ago)")
    if context.get("needed"):
        due = ticket.get("resolution_due_at")
        overdue = ticket.get("resolution_overdue")
        when = f" Resolution due {due}{f' ({overdue} overdue)' if overdue else ''}." if due else ""
        lines.append(f"Needed: {_one_line(context['needed'])}{when}")
    if kind == "delivery-failure":
        failed = context.get("failed") or {}
        lines.append(f"Not delivered: {_md(failed.get('kind', 'notification'))} #{failed.get('id')}")
        lines += [f"- {_md(d['recipient'])}: {_md(d.get('error') or d.get('status'))}"
                  for d in (context.get("deliveries") or []) if d.get("status") != "sent"][:5]
    if context.get("action_text") and context.get("actor"):
        lines.append(f"{_md(context['action_text']).capitalize()} by {_md(context['actor'])}")
    if context.get("next_step"):
        lines.append(f"Next: {_one_line(context['next_step'])}")
    if ref and kind in ("escalation", "reminder", "next-tier", "unanswered", "breach"):
        if plus_address_replies and reply_to:
            link = f"mailto:{reply_to}?subject={quote('Re: [' + ref + ']')}&body={quote('#ack')}"
            lines.append(f"[Acknowledge by mail (#ack)]({link})")
        else:
            lines.append("Reply #ack to the mail to acknowledge.")
    return {"title": title, "body": "\n".join(lines)}
