"""Tickets and what happens to them: the state machine, the escalation ladder's rows, the audit
trail, incidents, commands in replies, and service-level targets."""
