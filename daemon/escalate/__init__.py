"""escalate: turn a support mailbox into tickets and escalate what is slipping, by email."""

__version__ = "0.1.0"
