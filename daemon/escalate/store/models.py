"""The peewee models: the database is the truth about every ticket, message and notification.

Unique keys, not code paths, make repeated work harmless: a message is
stored once per `dedupe_key`, an escalation exists once per (ticket, rule), and an escalation
notification once per (ticket, rule, step, due time) (tests/integration/test_engine.py).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import orjson
import peewee

database = peewee.DatabaseProxy()

TICKET_STATUSES = ("new", "open", "waiting", "resolved", "closed")
ACTIVE_STATUSES = ("new", "open", "waiting")
ACTIVE_STATUSES_SQL = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)  # for `"status" IN (…)` in SQL texts


class UTCDateTimeField(peewee.DateTimeField):
    """Aware UTC datetimes in Python, naive UTC in the database (portable across SQLite and PostgreSQL).

    SQLite keeps times as text: the field writes the very text sqlite3's datetime adapter would
    (`isoformat(" ")`, an adapter deprecated since Python 3.12), so stored rows read the same as
    ever. PostgreSQL's driver takes the datetime itself."""

    def db_value(self, value):
        if isinstance(value, datetime) and value.tzinfo is not None:
            naive = (value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)).replace(tzinfo=None)
            return naive.isoformat(" ") if isinstance(self.model._meta.database.obj, peewee.SqliteDatabase) else naive
        return super().db_value(value)

    def python_value(self, value):
        if isinstance(value, str):
            # SQLite's text form, naive UTC: read with its zone in one C call (peewee tries its
            # strptime formats one by one, and datetime.replace costs more than this whole parse)
            try:
                parsed = datetime.fromisoformat(value + "+00:00")
            except ValueError:  # a text with an offset of its own
                parsed = None
            if parsed is not None and parsed.tzinfo is not None:  # (a date alone comes back naive)
                return parsed
        value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


# Stored JSON goes through orjson, a C encoder ~9 times faster than the stdlib's on a notification's
# variables (a tick encodes four values per notification: context, headers, recipients, audit
# detail). What orjson refuses, the stdlib handles as before: text with lone surrogates (what
# surrogateescape makes of undecodable mail bytes), integers beyond 64 bits, NaN on reading; a
# datetime or another type JSON has no form for still fails as with the stdlib, not stored as text.
_JSON = json.JSONEncoder(sort_keys=True)
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def _refuse(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dump_json(value) -> str:
    """`value` as JSON text, keys sorted (the same value always gives the same text)."""
    try:
        return orjson.dumps(value, default=_refuse, option=_ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError is one: let the stdlib try, or raise its own error
        return _JSON.encode(value)


def load_json(text):
    try:
        return orjson.loads(text)
    except ValueError:  # orjson.JSONDecodeError: NaN, lone surrogates; the stdlib reads them or says why
        return json.loads(text)


class JSONField(peewee.TextField):
    def db_value(self, value):
        return None if value is None else dump_json(value)

    def python_value(self, value):
        return None if value is None else load_json(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class FolderState(BaseModel):
    """Where ingest stopped in one IMAP folder: each message is fetched once per UIDVALIDITY."""

    # "user@host:port" of the IMAP account (several mailboxes, migration 4); "" on rows from before,
    # which the first account adopts (poller.py)
    account = peewee.CharField(default="")
    folder = peewee.CharField()
    uidvalidity = peewee.BigIntegerField()
    last_uid = peewee.BigIntegerField(default=0)
    updated_at = UTCDateTimeField()
    # the last UID flagged/moved after its commit; (flagged_uid, last_uid] is re-done after a crash
    flagged_uid = peewee.BigIntegerField(default=0, null=True)
    # `status` tells these apart (migration 12): when the folder was last looked at, and when mail last came
    polled_at = UTCDateTimeField(null=True)
    mail_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("account", "folder"), True),)


class Incident(BaseModel):
    """Similar tickets from distinct customers within a window: one problem, escalated once."""

    subject = peewee.TextField()  # the first ticket's subject
    created_at = UTCDateTimeField()
    last_ticket_at = UTCDateTimeField(index=True)  # the window for joining runs from here
    customers = peewee.IntegerField(default=1)  # distinct requesters among its tickets
    # incident-wide rules (customers_affected) that acted for it: once per incident, whichever
    # of its tickets is primary when they hold (rules/ladder.py)
    rules_fired = JSONField(null=True)
    # the ticket that speaks for the incident (its first active ticket): only its rules act on it;
    # kept by tickets.py as tickets join, resolve and reopen (no foreign key: Ticket comes later)
    primary_ticket_id = peewee.IntegerField(null=True)


class Ticket(BaseModel):
    ref = peewee.CharField(unique=True, null=True)  # set right after insert: "{prefix}-{id}"
    subject = peewee.TextField()
    normalised_subject = peewee.TextField(index=True)
    requester = peewee.CharField(index=True)
    requester_name = peewee.CharField(default="")
    status = peewee.CharField(default="new", index=True)
    severity = peewee.CharField()
    tier = peewee.IntegerField(null=True)
    assignee = peewee.CharField(null=True)
    created_at = UTCDateTimeField(index=True)  # incidents look back over recent tickets
    updated_at = UTCDateTimeField()
    first_response_at = UTCDateTimeField(null=True)
    last_customer_message_at = UTCDateTimeField(null=True)
    last_agent_message_at = UTCDateTimeField(null=True)
    acknowledged_at = UTCDateTimeField(null=True)
    acknowledged_by = peewee.CharField(null=True)
    resolved_at = UTCDateTimeField(null=True)
    # when the engine next needs to look at this ticket; NULL = nothing can happen until it changes
    next_due_at = UTCDateTimeField(null=True, index=True)
    message_count = peewee.IntegerField(default=0)
    # waiting on the customer pauses the business-time clocks (rules/clocks.py): the current wait's
    # start, and the finished waits as [[start, end], …] ISO-8601 UTC
    waiting_since = UTCDateTimeField(null=True)
    waiting_periods = JSONField(default=list)
    escalation_requested_at = UTCDateTimeField(null=True)  # an agent asked for escalation
    snoozed_until = UTCDateTimeField(null=True)  # #snooze: no reminders before this
    incident = peewee.ForeignKeyField(Incident, backref="tickets", null=True, on_delete="SET NULL")
    # a practice escalation (drill.py): walks the real mail path, but the engine's rules never act
    # on it and the report leaves it out unless asked
    drill = peewee.BooleanField(default=False)
    # the rules that have fired on the ticket, each with the moment it began to hold: a rule acts
    # again only when that moment changes (rules/ladder.py); NULL for tickets from before ladders
    rules_fired = JSONField(null=True)


class IncidentCustomer(BaseModel):
    """One distinct customer of an incident and when it joined (its first ticket's creation): the
    Nth row by `joined_at` is when `customers_affected: N` began to hold, read without the members."""

    incident = peewee.ForeignKeyField(Incident, on_delete="CASCADE", index=False)
    requester = peewee.CharField()
    joined_at = UTCDateTimeField()

    class Meta:
        indexes = ((("incident", "requester"), True),)


class TicketWord(BaseModel):
    """One word of a ticket's subject (mail/subjects.py), stored once per ticket while
    incidents are on: a new ticket finds the recent tickets sharing a word through the index on
    (word, created_at) instead of re-reading and re-tokenising recent subjects."""

    word = peewee.CharField()
    ticket = peewee.ForeignKeyField(Ticket, on_delete="CASCADE", index=False)
    created_at = UTCDateTimeField()  # the ticket's: the incident window is on it
    word_count = peewee.IntegerField()  # how many words the ticket's subject has (for the similarity)

    class Meta:
        primary_key = False
        # the look-up reads the index alone (it covers what it returns); tickets are never deleted,
        # so there is no index on ticket alone
        indexes = ((("word", "created_at", "ticket", "word_count"), False),)


class Message(BaseModel):
    """One stored mail. `kind`: customer, agent (a roster member), other (anyone else), own, or
    machine mail (classify.py): auto-reply, bounce, list, bulk — recorded, never answered."""

    ticket = peewee.ForeignKeyField(Ticket, backref="messages", null=True, on_delete="RESTRICT")
    dedupe_key = peewee.CharField(unique=True)  # Message-ID, or "sha256:<hex>" when it has none
    message_id = peewee.CharField(null=True, index=True)
    sha256 = peewee.CharField(index=True)
    kind = peewee.CharField()
    folder = peewee.CharField(null=True)
    uidvalidity = peewee.BigIntegerField(null=True)
    uid = peewee.BigIntegerField(null=True)
    from_addr = peewee.CharField(null=True)
    from_name = peewee.CharField(default="")
    subject = peewee.TextField(default="")
    sent_at = UTCDateTimeField(null=True)
    received_at = UTCDateTimeField()
    in_reply_to = JSONField(default=list)
    references = JSONField(default=list)
    body_text = peewee.TextField(default="")
    new_text = peewee.TextField(default="")
    defects = JSONField(default=list)
    raw = peewee.BlobField()
    # why classify.py called it machine mail ("Auto-Submitted: auto-replied", "DSN", …); None for people
    machine_reason = peewee.TextField(null=True)
    # the same Message-ID arrived with different bytes: kept as its own message, flagged
    collision = peewee.BooleanField(default=False)
    # a bounce of one of our notifications: which outbox row and recipient
    bounce_outbox_id = peewee.IntegerField(null=True)
    bounce_recipient = peewee.CharField(null=True)


class Attachment(BaseModel):
    """An attachment's name, type and size; its bytes in the state directory when within the limit."""

    message = peewee.ForeignKeyField(Message, backref="attachment_rows", on_delete="CASCADE")
    filename = peewee.CharField(null=True)  # as the sender named it, decoded and sanitised for display
    content_type = peewee.CharField()
    size = peewee.IntegerField()
    # where the contents are, relative to the attachments directory; None = not kept. A pack file
    # shared by a batch's attachments (attachments.py), the contents at `stored_offset`, `size`
    # bytes long; rows stored before packs name a file of their own (`stored_offset` None)
    stored_path = peewee.CharField(null=True)
    stored_offset = peewee.IntegerField(null=True)
    sha256 = peewee.CharField(null=True, index=True)  # of the contents: identical contents are kept once


class Escalation(BaseModel):
    """One escalation ladder of a ticket (rules/ladder.py): the tier that has it, its reminders,
    when its next step is due, why. A ticket has at most one active ladder; the ones before it
    (acknowledged, exhausted, ended) stay as its history."""

    ticket = peewee.ForeignKeyField(Ticket, backref="escalations", on_delete="CASCADE")
    rule = peewee.CharField()  # the rule whose cadence the ladder follows
    tier = peewee.IntegerField()
    step = peewee.IntegerField(default=0)  # the number of the last reminder to this tier
    started_at = UTCDateTimeField()
    last_step_due_at = UTCDateTimeField()
    state = peewee.CharField(default="active")  # active, acknowledged, exhausted, ended
    acknowledged_at = UTCDateTimeField(null=True)
    acknowledged_by = peewee.CharField(null=True)
    tier_since = UTCDateTimeField(null=True)  # when the current tier's first step was due
    next_step_at = UTCDateTimeField(null=True)  # None: no step follows
    reasons = JSONField(null=True)  # the rules that fired into the ladder
    forced = peewee.BooleanField(default=False)  # an agent's #escalate started or raised it
    ack_tier = peewee.IntegerField(null=True)  # the tier of whoever acknowledged
    ended_at = UTCDateTimeField(null=True)
    severity = peewee.CharField(null=True)  # the ticket's severity when the ladder started


# At most one active ladder per ticket, by the database itself: whatever instances race on
# PostgreSQL, a second one cannot be written (a partial unique index, on SQLite too).
Escalation.add_index(Escalation.index(Escalation.ticket, unique=True, name="escalation_one_active_per_ticket")
                     .where(Escalation.state == "active"))


class Outbox(BaseModel):
    """Mail waiting to be sent, written in the transaction that decided to send it."""

    ticket = peewee.ForeignKeyField(Ticket, backref="outbox", null=True, on_delete="CASCADE")
    escalation = peewee.ForeignKeyField(Escalation, null=True, on_delete="SET NULL")
    kind = peewee.CharField()  # escalation, reminder, next-tier, confirmation, ...
    rule = peewee.CharField(null=True)
    step = peewee.IntegerField(null=True)
    due_at = UTCDateTimeField(null=True)
    tier = peewee.IntegerField(null=True)
    message_id = peewee.CharField(unique=True)
    mail_from = peewee.CharField()
    recipients = JSONField()
    subject = peewee.TextField()
    # the mail's bytes, rendered by the sender (render.py) from the three columns below, which the
    # tick wrote: rendering costs the sender, not the escalation decision. Empty until then (NOT
    # NULL as before: on SQLite changing a column's nullability rebuilds the table); its
    # deliveries wait in "rendering", which the sender never claims
    raw = peewee.BlobField()
    template = peewee.CharField(null=True)  # templates/<template>.{txt,html}.j2
    # the template's variables as they were when the mail was decided; NULL once rendered
    context = JSONField(null=True)
    headers = JSONField(null=True)  # reply_to, thread (null: derived from earlier rows), extra headers
    status = peewee.CharField(default="queued", index=True)  # queued, sent, failed, suppressed, cancelled
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(index=True)
    last_error = peewee.TextField(null=True)
    created_at = UTCDateTimeField()
    sent_at = UTCDateTimeField(null=True)

    class Meta:
        # one notification per (ticket, rule, step, due time), whatever the interleaving
        indexes = ((("ticket", "rule", "step", "due_at"), True),)


class Delivery(BaseModel):
    """One recipient of one outbox row: the unit the sender claims, retries and records.

    Each recipient gets its own SMTP transaction with its own VERP return path (`mail_from`), so a
    bounce names the notification and the member, and a refused recipient is retried or failed on
    its own without re-sending to those who accepted.
    """

    outbox = peewee.ForeignKeyField(Outbox, backref="deliveries", on_delete="CASCADE")
    recipient = peewee.CharField()
    mail_from = peewee.CharField()  # the VERP return path for this recipient
    # rendering (its mail is not rendered yet: the sender never claims it), queued, sent, failed
    # (5xx to the message, or the mail could not be rendered), refused (5xx to this recipient at
    # RCPT), bounced, suppressed (a loop cap), cancelled
    status = peewee.CharField(default="queued")
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = UTCDateTimeField()
    created_at = UTCDateTimeField()
    sent_at = UTCDateTimeField(null=True)
    failed_at = UTCDateTimeField(null=True)
    code = peewee.IntegerField(null=True)  # the SMTP reply code of the last failure
    last_error = peewee.TextField(null=True)
    # -- the sender's lease (several instances on PostgreSQL, outbox.claim) --------------------
    # Who claimed this delivery and until when, on the database's clock; cleared when the outcome
    # is recorded. A sender that dies leaves its lease to run out, then another one re-claims the
    # row. Unused (NULL) on SQLite, where one process sends.
    lease_owner = peewee.CharField(null=True)  # instance.identity() of the claiming process
    lease_until = UTCDateTimeField(null=True)

    class Meta:
        indexes = (
            (("outbox", "recipient"), True),
            (("status", "next_attempt_at"), False),  # what the sender claims
            (("recipient", "created_at"), False),  # the per-address loop caps
        )


class Digest(BaseModel):
    """One informed list's daily digest: the unique key makes it once per list and day, whatever
    the restarts or the instances sharing the database (digest.py)."""

    recipients = peewee.CharField()  # the list, normalised, sorted and comma-joined
    period_end = UTCDateTimeField()  # the digest moment (rules' digest.at, in the rules' timezone)
    outbox = peewee.ForeignKeyField(Outbox, null=True, on_delete="SET NULL")
    created_at = UTCDateTimeField()

    class Meta:
        indexes = ((("recipients", "period_end"), True),)


class Event(BaseModel):
    """The audit log: who did what, when, and why (which rule)."""

    ticket = peewee.ForeignKeyField(Ticket, backref="events", null=True, on_delete="CASCADE")
    at = UTCDateTimeField(index=True)
    actor = peewee.CharField()
    action = peewee.CharField()
    rule = peewee.CharField(null=True)
    detail = JSONField(default=dict)


class Quarantine(BaseModel):
    """Mail that could not be processed, kept raw with the reason; processed exactly once."""

    reason = peewee.TextField()
    received_at = UTCDateTimeField()
    folder = peewee.CharField(null=True)
    uidvalidity = peewee.BigIntegerField(null=True)
    uid = peewee.BigIntegerField(null=True)
    sha256 = peewee.CharField(index=True)
    raw = peewee.BlobField()
    status = peewee.CharField(default="held", null=True)  # held, retried (processed again), failed-retry
    retried_at = UTCDateTimeField(null=True)
    outcome = peewee.TextField(null=True)  # what `quarantine retry` made of it

    class Meta:
        # a folder's message is quarantined once, even by two instances racing on it (migration 3)
        indexes = ((("folder", "uidvalidity", "uid"), True),)


# ------------------------------------------------------------------------------------------------
# several instances on one database


class Instance(BaseModel):
    """One escalate daemon as it last reported itself (heartbeat.py): who, where, since when, and
    which folders it ingests. A row whose heartbeat is old belongs to a lost instance."""

    name = peewee.CharField(unique=True)  # instance.identity(): host:pid:random
    host = peewee.CharField()
    pid = peewee.IntegerField()
    version = peewee.CharField()
    started_at = UTCDateTimeField()
    heartbeat_at = UTCDateTimeField(index=True)  # the wall clock of its host, never --now
    stopped_at = UTCDateTimeField(null=True)  # set on a clean stop (SIGTERM)
    holds = JSONField(default=list)  # the folders it holds the ingest lock of, "user@host:port/folder"


class Problem(BaseModel):
    """Something a person must fix before part of the daemon can work again, e.g. the SMTP server
    refusing our login: set by the stage that meets it, cleared by the same stage once it works,
    shown by `escalate status` and the metrics whichever process reads them."""

    name = peewee.CharField(unique=True)  # what is wrong, e.g. "smtp-login"
    detail = peewee.TextField()  # one line: what, where, what to do
    since = UTCDateTimeField()  # first seen (wall clock)
    seen_at = UTCDateTimeField()  # last seen


ALL_MODELS = [FolderState, Incident, IncidentCustomer, Ticket, TicketWord, Message, Attachment, Escalation, Outbox,
              Delivery, Event, Quarantine, Digest, Instance, Problem]
