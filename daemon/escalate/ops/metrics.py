"""Prometheus metrics on an optional loopback HTTP endpoint (ESCALATE_METRICS=127.0.0.1:9464).

Counters move as the stages report; gauges that describe the database (tickets by status and
tier, outbox depth and oldest age) are read at scrape time, so they are never stale and cost
nothing between scrapes. Each daemon gets its own registry (no global state to leak between
tests or instances in one process).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from escalate import clock
from escalate.ops.problems import listing
from escalate.ops.status import (
    chat_backlog,
    held_by_group_ceiling,
    ladder_counts,
    outbox_backlog,
    outbox_failed,
    ticket_counts,
    ticket_limit,
)
from escalate.store import db
from escalate.store.models import Quarantine


class DatabaseCollector:
    """Gauges computed from the database when Prometheus scrapes."""

    def collect(self):
        try:
            yield from self._collect()
        finally:
            db.close()  # the scrape's own thread-local connection; each scrape runs in a new thread

    def _collect(self):
        tickets = GaugeMetricFamily("escalate_tickets", "Tickets by status and tier", labels=["status", "tier"])
        for status, tier, count in ticket_counts():
            tickets.add_metric([status, tier], count)
        yield tickets
        queued, oldest_age = outbox_backlog(clock.now())
        depth = GaugeMetricFamily("escalate_outbox_depth", "Mail waiting to be sent")
        depth.add_metric([], queued)
        yield depth
        age = GaugeMetricFamily("escalate_outbox_oldest_age_seconds", "Age of the oldest queued mail")
        age.add_metric([], oldest_age or 0.0)
        yield age
        ladders = GaugeMetricFamily("escalate_open_ticket_ladders",
                                    "Open tickets by the state of their escalation ladder (exhausted: nobody answered)",
                                    labels=["state"])
        for state, count in ladder_counts():
            ladders.add_metric([state], count)
        yield ladders
        failed = GaugeMetricFamily("escalate_outbox_failed", "Mail that failed for good (a person may retry it)")
        failed.add_metric([], outbox_failed())
        yield failed
        problems = GaugeMetricFamily("escalate_problem", "1 while a problem stops part of the daemon until a person "
                                     "fixes it (e.g. smtp-login: the SMTP server refuses our login)", labels=["name"])
        for problem in listing():
            problems.add_metric([problem["name"]], 1)
        yield problems
        held = GaugeMetricFamily("escalate_group_ceiling_held",
                                 "Ladder mails past a tier group's hourly ceiling in the last hour (sent as one summary)",
                                 labels=["tier"])
        for tier, count in held_by_group_ceiling(clock.now()).items():
            held.add_metric([tier], count)
        yield held
        limit = ticket_limit(clock.now())
        senders = GaugeMetricFamily("escalate_ticket_limit_senders",
                                    "Outside addresses held to their latest ticket by the ticket limit, last 24 h")
        senders.add_metric([], limit["senders_limited_last_24h"])
        yield senders
        threaded = GaugeMetricFamily("escalate_ticket_limit_mails",
                                     "Mails the ticket limit put on their sender's latest ticket, last 24 h")
        threaded.add_metric([], limit["mails_threaded_last_24h"])
        yield threaded
        posts = GaugeMetricFamily("escalate_chat_posts_pending", "Chat posts queued or failed, by state",
                                 labels=["state"])
        backlog = chat_backlog()
        for state in ("queued", "failed"):
            posts.add_metric([state], backlog[state])
        yield posts
        quarantined = GaugeMetricFamily("escalate_quarantined", "Mail in quarantine")
        quarantined.add_metric([], Quarantine.select().count())
        yield quarantined


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ingested = Counter("escalate_mail_ingested", "Mail ingested, by outcome", ["outcome"], registry=self.registry)
        self.notifications_queued = Counter("escalate_notifications_queued", "Notifications queued by the engine",
                                            registry=self.registry)
        self.sent = Counter("escalate_mail_sent", "Mail sent", registry=self.registry)
        self.send_failures = Counter("escalate_send_failures", "Send attempts that failed, by kind", ["kind"],
                                     registry=self.registry)
        # chat posts (chatsend.py), by outcome: sent, retry (will be tried again), failed (for good)
        self.chat_posts = Counter("escalate_chat_posts", "Chat posts attempted, by outcome", ["outcome"],
                                  registry=self.registry)
        self.tick_seconds = Histogram("escalate_tick_duration_seconds", "Time to evaluate the due tickets",
                                      registry=self.registry)
        self.imap_up = Gauge("escalate_imap_up", "1 when the last IMAP poll reached the server", registry=self.registry)
        self.stage_last_success = Gauge("escalate_stage_last_success_timestamp_seconds",
                                        "When each stage last finished without error", ["stage"], registry=self.registry)
        self.registry.register(DatabaseCollector())
        self._server = None

    def serve(self, address: str) -> tuple[str, int]:
        host, _, port = address.rpartition(":")
        server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        self._server = server
        return server.server_address[:2]

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def stage_succeeded(self, stage: str) -> None:
        self.stage_last_success.labels(stage).set(time.time())
