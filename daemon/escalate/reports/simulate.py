"""`escalate rules simulate --since DATE [--rules FILE]`: replay stored tickets through a ruleset.

The replay is independent of the engine's stored state: it rebuilds each ticket's history from
the audit log (created, messages, waits, acknowledgements, resolutions, manual severity changes,
escalation requests, incident links) and runs the rules over it as an ideal daemon would — one
that looks at every ticket exactly when it is due. It predicts every escalation step (ticket,
rule, step, tier, due time) and compares the prediction with the steps the daemon really took.

Both decide with the same function, `rules.ladder.decide`: the replay only keeps the ladder in
memory instead of in the database. With the current rules the two agree whenever the daemon ran
at least once per repeat interval; with a candidate file the difference is what the change would
have done.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Callable

from escalate.clock import iso, parse_time, shown_iso
from escalate.rules.facts import TicketFacts
from escalate.rules.ladder import ACKNOWLEDGED, ENDED, UNANSWERED, Ladder, decide
from escalate.rules.ladder import ACTIVE as LADDER_ACTIVE
from escalate.rules.model import Ruleset
from escalate.store.models import Event, Ticket
from escalate.tickets.lifecycle import TicketStateError, status_after

STEP_ACTIONS = ("escalated", "reminded", "escalated-next-tier")
ACTIVE = ("new", "open", "waiting")


@dataclass
class _Ticket:
    id: int
    ref: str
    requester: str
    created_at: datetime
    severity: str
    status: str = "new"
    tier: int | None = None
    first_response_at: datetime | None = None
    last_customer_message_at: datetime | None = None
    last_agent_message_at: datetime | None = None
    acknowledged: bool = False
    waiting_since: datetime | None = None
    waiting_periods: list = field(default_factory=list)
    escalation_requested_at: datetime | None = None
    incident: int | None = None
    snoozed_until: datetime | None = None
    ladder: Ladder = field(default_factory=Ladder)
    due: datetime | None = None
    version: int = 0


def _follow(ticket: _Ticket, event: str, recorded: str) -> None:
    """Move the replayed ticket as the ticket state machine's table moves a stored one. Where the table does not
    list the move (history written by an older version, an admin's override), the replay keeps to what the
    history recorded: it tells what happened, the table only what may happen now."""
    try:
        ticket.status = status_after(ticket.status, event)
    except TicketStateError:
        ticket.status = recorded


@dataclass(frozen=True)
class Step:
    ref: str
    rule: str
    step: int
    tier: int
    due_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "rule": self.rule, "step": self.step, "tier": self.tier, "due_at": iso(self.due_at)}


class Replay:
    """The rules over a set of ticket histories, in time order, evaluating each ticket when due."""

    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self.tickets: dict[int, _Ticket] = {}
        self.incidents: dict[int, list[int]] = {}
        self.incident_rules_fired: dict[int, set[str]] = {}
        self.steps: list[Step] = []
        self._heap: list = []
        self._seq = itertools.count()

    # -- the clockwork -------------------------------------------------------------------------

    def _schedule(self, ticket: _Ticket, when: datetime | None) -> None:
        ticket.due = when
        ticket.version += 1
        if when is not None and ticket.status in ACTIVE:
            heapq.heappush(self._heap, (when, next(self._seq), ticket.id, ticket.version))

    def run(self, inputs: list[tuple[datetime, int, str, dict]], until: datetime) -> list[Step]:
        """Apply `inputs` (time, ticket id, action, detail), sorted, and evaluate up to `until`."""
        position = 0
        while True:
            next_input = inputs[position][0] if position < len(inputs) else None
            while self._heap and (self._heap[0][3] != self.tickets[self._heap[0][2]].version):
                heapq.heappop(self._heap)  # superseded by a later schedule
            next_due = self._heap[0][0] if self._heap else None
            moments = [m for m in (next_input, next_due) if m is not None]
            if not moments:
                break
            now = min(moments)
            if now > until:
                break
            # like `run --once`: the mail of this moment first, then the tick
            while position < len(inputs) and inputs[position][0] == now:
                _at, ticket_id, action, detail = inputs[position]
                self._apply(ticket_id, action, detail, now)
                position += 1
            while self._heap and self._heap[0][0] <= now:
                _when, _seq, ticket_id, version = heapq.heappop(self._heap)
                ticket = self.tickets[ticket_id]
                if version == ticket.version and ticket.status in ACTIVE:
                    self._evaluate(ticket, now)
        return self.steps

    # -- inputs: what people and mail did --------------------------------------------------------

    def add_ticket(self, ticket: _Ticket) -> None:
        self.tickets[ticket.id] = ticket

    def _touch(self, ticket: _Ticket, now: datetime) -> None:
        self._schedule(ticket, now if ticket.status in ACTIVE else None)

    def _end_wait(self, ticket: _Ticket, now: datetime) -> None:
        if ticket.waiting_since is not None:
            ticket.waiting_periods.append((ticket.waiting_since, now))
            ticket.waiting_since = None

    def _apply(self, ticket_id: int, action: str, detail: dict, now: datetime) -> None:
        ticket = self.tickets[ticket_id]
        if action == "created":
            ticket.status = "new"
        elif action == "message":
            kind = detail.get("kind")
            if kind == "customer":
                ticket.last_customer_message_at = now
                if ticket.status in ("resolved", "closed", "waiting"):
                    self._end_wait(ticket, now)
                    _follow(ticket, "customer-wrote", "open")
            elif kind == "agent":
                ticket.last_agent_message_at = now
                if ticket.first_response_at is None:
                    ticket.first_response_at = now
        elif action == "acknowledged":
            ticket.acknowledged = True
            _follow(ticket, "acknowledge", ticket.status)
            level = detail.get("tier")
            ladder = ticket.ladder
            if ladder.state == LADDER_ACTIVE:
                level = level if level is not None else ladder.tier
                ticket.ladder = replace(ladder, state=ACKNOWLEDGED, ack_tier=level, ended_at=now, next_step_at=None)
            else:  # as tickets.acknowledge records it: an acknowledged ladder of its own
                level = level if level is not None else ticket.tier
                ticket.ladder = Ladder(state=ACKNOWLEDGED, tier=level or 0, ack_tier=level, ended_at=now,
                                       started_at=now, fired=ladder.fired)
        elif action == "resolved":
            self._end_wait(ticket, now)
            _follow(ticket, "resolve", "resolved")
            if ticket.ladder.state == LADDER_ACTIVE:
                ticket.ladder = replace(ticket.ladder, state=ENDED, ended_at=now, next_step_at=None)
        elif action == "waiting":
            _follow(ticket, "wait", "waiting")
            ticket.waiting_since = now
        elif action == "closed":
            _follow(ticket, "close", "closed")
        elif action == "severity-changed":
            ticket.severity = detail["severity"]
        elif action == "escalation-requested":
            ticket.escalation_requested_at = now
        elif action == "snoozed":
            ticket.snoozed_until = parse_time(detail["until"])
            self._schedule(ticket, ticket.snoozed_until)
            return
        elif action in ("customer-replied-to",):  # an agent answered the customer directly (#reply)
            ticket.last_agent_message_at = now
            if ticket.first_response_at is None:
                ticket.first_response_at = now
            _follow(ticket, "agent-replied", ticket.status)
        elif action == "incident-linked":
            ticket.incident = detail["incident"]
            members = self.incidents.setdefault(ticket.incident, [])
            if ticket.id not in members:
                members.append(ticket.id)
            for member in members:
                other = self.tickets[member]
                if other.status in ACTIVE:
                    self._schedule(other, now)
        self._touch(ticket, now)

    # -- the rules, as the engine applies them ---------------------------------------------------

    def _facts(self, ticket: _Ticket) -> TicketFacts:
        joins: tuple[datetime, ...] = ()
        primary = True
        if ticket.incident is not None:
            members = sorted((self.tickets[i] for i in self.incidents[ticket.incident]),
                             key=lambda t: (t.created_at, t.id))
            first: dict[str, datetime] = {}
            for member in members:
                first.setdefault(member.requester, member.created_at)
            joins = tuple(sorted(first.values()))
            active = [m for m in members if m.status in ACTIVE]
            primary = bool(active) and active[0].id == ticket.id
        return TicketFacts(
            status=ticket.status, severity=ticket.severity, tier=ticket.tier, created_at=ticket.created_at,
            first_response_at=ticket.first_response_at, last_customer_message_at=ticket.last_customer_message_at,
            last_agent_message_at=ticket.last_agent_message_at, acknowledged=ticket.acknowledged,
            waiting_periods=tuple(ticket.waiting_periods), waiting_since=ticket.waiting_since,
            escalation_requested_at=ticket.escalation_requested_at, incident_joins=joins, incident_primary=primary,
            incident_rules_fired=frozenset(self.incident_rules_fired.get(ticket.incident, ())))

    def _evaluate(self, ticket: _Ticket, now: datetime) -> None:
        """The engine's evaluation (engine._evaluate_ticket), on the ladder kept in memory."""
        if ticket.snoozed_until is not None and ticket.snoozed_until > now:
            self._schedule(ticket, ticket.snoozed_until)
            return
        decision = decide(self._facts(ticket), ticket.ladder, self.ruleset, now)
        ticket.ladder = decision.ladder
        for firing in decision.firings:
            if firing.rule.incident_wide and ticket.incident is not None:
                self.incident_rules_fired.setdefault(ticket.incident, set()).add(firing.rule.name)
            for bound in firing.rule.actions:
                if bound.name == "set_severity":
                    self._set_severity(ticket, firing.rule, bound.value, now)
        mail = decision.mail
        if mail is not None and mail.kind != UNANSWERED:
            ticket.tier = mail.tier if ticket.tier is None else max(ticket.tier, mail.tier)
            self.steps.append(Step(ticket.ref, mail.rule, mail.step, mail.tier, mail.due_at))
        self._schedule(ticket, decision.next_due)

    def _set_severity(self, ticket: _Ticket, rule, severity: str, now: datetime) -> None:
        affected = [ticket]
        if rule.incident_wide and ticket.incident is not None:
            affected += [self.tickets[i] for i in self.incidents[ticket.incident]
                         if i != ticket.id and self.tickets[i].status in ACTIVE]
        for other in affected:
            if other.severity != severity:
                other.severity = severity
                if other is not ticket:
                    self._touch(other, now)


# -- reading the history from the database ------------------------------------------------------

def simulate(ruleset: Ruleset, since: datetime, until: datetime,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Predicted and actual escalation steps of tickets created since `since`, up to `until`.
    `progress(done, total)` follows the history being read, chunk by chunk (the long part)."""
    replay = Replay(ruleset)
    ids = []
    for row in Ticket.select(Ticket.id, Ticket.ref, Ticket.requester, Ticket.created_at, Ticket.severity) \
            .where((Ticket.created_at >= since) & (Ticket.drill == False)).order_by(Ticket.id):  # noqa: E712 -- drills (drill.py) are not rules' work
        ids.append(row.id)
    inputs: list[tuple[datetime, int, int, str, dict]] = []
    actual: list[Step] = []
    created_severity: dict[int, str] = {}
    refs: dict[int, str] = {}
    for chunk_start in range(0, len(ids), 900):  # SQLite's limit on bound parameters
        if progress is not None:
            progress(chunk_start, len(ids))
        chunk = ids[chunk_start:chunk_start + 900]
        for row in Ticket.select(Ticket.id, Ticket.ref, Ticket.requester, Ticket.created_at).where(Ticket.id.in_(chunk)):
            refs[row.id] = row.ref
            replay.add_ticket(_Ticket(id=row.id, ref=row.ref, requester=row.requester, created_at=row.created_at,
                                      severity=""))
        for event in Event.select().where(Event.ticket.in_(chunk)).order_by(Event.at, Event.id):
            detail = event.detail or {}
            if event.action in STEP_ACTIONS:
                actual.append(Step(refs[event.ticket_id], event.rule, int(detail["step"]), int(detail["tier"]),
                                   parse_time(detail["due_at"])))
                continue
            if event.action == "created":
                created_severity[event.ticket_id] = detail.get("severity", "")
            if event.action == "severity-changed" and event.rule is not None:
                continue  # a rule's doing: the replay decides that itself
            inputs.append((event.at, event.id, event.ticket_id, event.action, detail))
    for ticket_id, severity in created_severity.items():
        replay.tickets[ticket_id].severity = severity
    for ticket_id in [t for t, ticket in replay.tickets.items() if not ticket.severity]:
        del replay.tickets[ticket_id]  # no "created" event: not a ticket this replay can follow
    if progress is not None:
        progress(len(ids), len(ids))
    inputs.sort(key=lambda item: (item[0], item[1]))
    predicted = replay.run([(at, tid, action, detail) for at, _id, tid, action, detail in inputs
                            if tid in replay.tickets], until)
    predicted_set, actual_set = set(predicted), set(actual)
    key = lambda s: (s.due_at, s.ref, s.rule, s.step)  # noqa: E731
    return {
        "since": iso(since), "until": iso(until), "rules": ruleset.source, "tickets": len(replay.tickets),
        "predicted": [s.as_dict() for s in sorted(predicted, key=key)],
        "actual": len(actual),
        "agree": len(predicted_set & actual_set),
        "only_predicted": [s.as_dict() for s in sorted(predicted_set - actual_set, key=key)],
        "only_actual": [s.as_dict() for s in sorted(actual_set - predicted_set, key=key)],
    }


def show(report: dict[str, Any], limit: int = 200) -> None:
    """The replay for a person: what it compared, then each list of steps as table.py's table."""
    from escalate.reports import table

    print(f"replayed {report['tickets']} tickets created since {shown_iso(report['since'])} up to "
          f"{shown_iso(report['until'])} through {report['rules']}\n"
          f"would escalate: {len(report['predicted'])} steps; the daemon took {report['actual']}; "
          f"{report['agree']} agree")
    if not report["only_predicted"] and not report["only_actual"]:
        print("no difference")
    columns = (table.Column("Due", "due_at", time=True), table.Column("Ref", "ref"), table.Column("Rule", "rule"),
               table.Column("Step", "step", right=True), table.Column("Tier", "tier", right=True))
    for title, items in (("Would have happened, did not", report["only_predicted"]),
                         ("Happened, would not have", report["only_actual"]),
                         ("Predicted steps", report["predicted"])):
        if items or title == "Predicted steps":
            table.show(items[:limit], columns, title=title, total=len(items), noun="steps", more="--json lists all")
