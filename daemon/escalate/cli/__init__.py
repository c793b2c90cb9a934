"""The `escalate` command line."""
