"""The `escalate` command line: one module per command group, all registered on `main` (app.py)."""

from escalate.cli import chat, config, daemon, db, demo, history, outbox, quarantine, report, rules, setup, tickets  # noqa: F401  (importing registers the commands)
from escalate.cli.app import main

__all__ = ["main"]
