"""`python -m escalate` runs the CLI (used by the demo to show real commands)."""

from escalate.cli import main

main()
