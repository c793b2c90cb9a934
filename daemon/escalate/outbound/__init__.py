"""Mail and chat going out: what to notify, caps and rate limits, templates, rendering, the
outbox and its sender."""
