-- migration 1, the baseline: the schema escalate created before it had migrations.
-- One text for both dialects: {serial}, {bigint}, {timestamp}, {bytes} and {boolean} stand for the
-- column types each dialect had then (BASELINE_TYPES in __init__.py).
-- IF NOT EXISTS throughout: applied to a database made by that version, it changes nothing.
CREATE TABLE IF NOT EXISTS "incident" ("id" {serial} NOT NULL PRIMARY KEY, "subject" TEXT NOT NULL, "created_at" {timestamp} NOT NULL, "last_ticket_at" {timestamp} NOT NULL, "customers" INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS "incident_last_ticket_at" ON "incident" ("last_ticket_at");
CREATE TABLE IF NOT EXISTS "ticket" ("id" {serial} NOT NULL PRIMARY KEY, "ref" VARCHAR(255), "subject" TEXT NOT NULL, "normalised_subject" TEXT NOT NULL, "requester" VARCHAR(255) NOT NULL, "requester_name" VARCHAR(255) NOT NULL, "status" VARCHAR(255) NOT NULL, "severity" VARCHAR(255) NOT NULL, "tier" INTEGER, "assignee" VARCHAR(255), "created_at" {timestamp} NOT NULL, "updated_at" {timestamp} NOT NULL, "first_response_at" {timestamp}, "last_customer_message_at" {timestamp}, "last_agent_message_at" {timestamp}, "acknowledged_at" {timestamp}, "acknowledged_by" VARCHAR(255), "resolved_at" {timestamp}, "next_due_at" {timestamp}, "message_count" INTEGER NOT NULL, "waiting_since" {timestamp}, "waiting_periods" TEXT NOT NULL, "escalation_requested_at" {timestamp}, "snoozed_until" {timestamp}, "incident_id" INTEGER, "drill" {boolean} NOT NULL, FOREIGN KEY ("incident_id") REFERENCES "incident" ("id") ON DELETE SET NULL);
CREATE UNIQUE INDEX IF NOT EXISTS "ticket_ref" ON "ticket" ("ref");
CREATE INDEX IF NOT EXISTS "ticket_normalised_subject" ON "ticket" ("normalised_subject");
CREATE INDEX IF NOT EXISTS "ticket_requester" ON "ticket" ("requester");
CREATE INDEX IF NOT EXISTS "ticket_status" ON "ticket" ("status");
CREATE INDEX IF NOT EXISTS "ticket_created_at" ON "ticket" ("created_at");
CREATE INDEX IF NOT EXISTS "ticket_next_due_at" ON "ticket" ("next_due_at");
CREATE INDEX IF NOT EXISTS "ticket_incident_id" ON "ticket" ("incident_id");
CREATE TABLE IF NOT EXISTS "message" ("id" {serial} NOT NULL PRIMARY KEY, "ticket_id" INTEGER, "dedupe_key" VARCHAR(255) NOT NULL, "message_id" VARCHAR(255), "sha256" VARCHAR(255) NOT NULL, "kind" VARCHAR(255) NOT NULL, "folder" VARCHAR(255), "uidvalidity" {bigint}, "uid" {bigint}, "from_addr" VARCHAR(255), "from_name" VARCHAR(255) NOT NULL, "subject" TEXT NOT NULL, "sent_at" {timestamp}, "received_at" {timestamp} NOT NULL, "in_reply_to" TEXT NOT NULL, "references" TEXT NOT NULL, "body_text" TEXT NOT NULL, "new_text" TEXT NOT NULL, "defects" TEXT NOT NULL, "raw" {bytes} NOT NULL, "machine_reason" TEXT, "collision" {boolean} NOT NULL, "bounce_outbox_id" INTEGER, "bounce_recipient" VARCHAR(255), FOREIGN KEY ("ticket_id") REFERENCES "ticket" ("id") ON DELETE RESTRICT);
CREATE INDEX IF NOT EXISTS "message_ticket_id" ON "message" ("ticket_id");
CREATE UNIQUE INDEX IF NOT EXISTS "message_dedupe_key" ON "message" ("dedupe_key");
CREATE INDEX IF NOT EXISTS "message_message_id" ON "message" ("message_id");
CREATE INDEX IF NOT EXISTS "message_sha256" ON "message" ("sha256");
CREATE TABLE IF NOT EXISTS "attachment" ("id" {serial} NOT NULL PRIMARY KEY, "message_id" INTEGER NOT NULL, "filename" VARCHAR(255), "content_type" VARCHAR(255) NOT NULL, "size" INTEGER NOT NULL, "stored_path" VARCHAR(255), FOREIGN KEY ("message_id") REFERENCES "message" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "attachment_message_id" ON "attachment" ("message_id");
CREATE TABLE IF NOT EXISTS "escalation" ("id" {serial} NOT NULL PRIMARY KEY, "ticket_id" INTEGER NOT NULL, "rule" VARCHAR(255) NOT NULL, "tier" INTEGER NOT NULL, "step" INTEGER NOT NULL, "started_at" {timestamp} NOT NULL, "last_step_due_at" {timestamp} NOT NULL, "state" VARCHAR(255) NOT NULL, "acknowledged_at" {timestamp}, "acknowledged_by" VARCHAR(255), FOREIGN KEY ("ticket_id") REFERENCES "ticket" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "escalation_ticket_id" ON "escalation" ("ticket_id");
CREATE UNIQUE INDEX IF NOT EXISTS "escalation_ticket_id_rule" ON "escalation" ("ticket_id", "rule");
CREATE TABLE IF NOT EXISTS "outbox" ("id" {serial} NOT NULL PRIMARY KEY, "ticket_id" INTEGER, "escalation_id" INTEGER, "kind" VARCHAR(255) NOT NULL, "rule" VARCHAR(255), "step" INTEGER, "due_at" {timestamp}, "tier" INTEGER, "message_id" VARCHAR(255) NOT NULL, "mail_from" VARCHAR(255) NOT NULL, "recipients" TEXT NOT NULL, "subject" TEXT NOT NULL, "raw" {bytes} NOT NULL, "status" VARCHAR(255) NOT NULL, "attempts" INTEGER NOT NULL, "next_attempt_at" {timestamp} NOT NULL, "last_error" TEXT, "created_at" {timestamp} NOT NULL, "sent_at" {timestamp}, FOREIGN KEY ("ticket_id") REFERENCES "ticket" ("id") ON DELETE CASCADE, FOREIGN KEY ("escalation_id") REFERENCES "escalation" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "outbox_ticket_id" ON "outbox" ("ticket_id");
CREATE INDEX IF NOT EXISTS "outbox_escalation_id" ON "outbox" ("escalation_id");
CREATE UNIQUE INDEX IF NOT EXISTS "outbox_message_id" ON "outbox" ("message_id");
CREATE INDEX IF NOT EXISTS "outbox_status" ON "outbox" ("status");
CREATE INDEX IF NOT EXISTS "outbox_next_attempt_at" ON "outbox" ("next_attempt_at");
CREATE UNIQUE INDEX IF NOT EXISTS "outbox_ticket_id_rule_step_due_at" ON "outbox" ("ticket_id", "rule", "step", "due_at");
CREATE TABLE IF NOT EXISTS "delivery" ("id" {serial} NOT NULL PRIMARY KEY, "outbox_id" INTEGER NOT NULL, "recipient" VARCHAR(255) NOT NULL, "mail_from" VARCHAR(255) NOT NULL, "status" VARCHAR(255) NOT NULL, "attempts" INTEGER NOT NULL, "next_attempt_at" {timestamp} NOT NULL, "created_at" {timestamp} NOT NULL, "sent_at" {timestamp}, "failed_at" {timestamp}, "code" INTEGER, "last_error" TEXT, FOREIGN KEY ("outbox_id") REFERENCES "outbox" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "delivery_outbox_id" ON "delivery" ("outbox_id");
CREATE UNIQUE INDEX IF NOT EXISTS "delivery_outbox_id_recipient" ON "delivery" ("outbox_id", "recipient");
CREATE INDEX IF NOT EXISTS "delivery_status_next_attempt_at" ON "delivery" ("status", "next_attempt_at");
CREATE INDEX IF NOT EXISTS "delivery_recipient_created_at" ON "delivery" ("recipient", "created_at");
CREATE TABLE IF NOT EXISTS "event" ("id" {serial} NOT NULL PRIMARY KEY, "ticket_id" INTEGER, "at" {timestamp} NOT NULL, "actor" VARCHAR(255) NOT NULL, "action" VARCHAR(255) NOT NULL, "rule" VARCHAR(255), "detail" TEXT NOT NULL, FOREIGN KEY ("ticket_id") REFERENCES "ticket" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "event_ticket_id" ON "event" ("ticket_id");
CREATE INDEX IF NOT EXISTS "event_at" ON "event" ("at");
CREATE TABLE IF NOT EXISTS "folder_state" ("id" {serial} NOT NULL PRIMARY KEY, "folder" VARCHAR(255) NOT NULL, "uidvalidity" {bigint} NOT NULL, "last_uid" {bigint} NOT NULL, "updated_at" {timestamp} NOT NULL, "flagged_uid" {bigint});
CREATE UNIQUE INDEX IF NOT EXISTS "folder_state_folder" ON "folder_state" ("folder");
CREATE TABLE IF NOT EXISTS "quarantine" ("id" {serial} NOT NULL PRIMARY KEY, "reason" TEXT NOT NULL, "received_at" {timestamp} NOT NULL, "folder" VARCHAR(255), "uidvalidity" {bigint}, "uid" {bigint}, "sha256" VARCHAR(255) NOT NULL, "raw" {bytes} NOT NULL, "status" VARCHAR(255), "retried_at" {timestamp}, "outcome" TEXT);
CREATE INDEX IF NOT EXISTS "quarantine_sha256" ON "quarantine" ("sha256");
