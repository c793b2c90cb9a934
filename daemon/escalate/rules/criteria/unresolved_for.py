"""unresolved_for: the ticket has been open this long without being resolved or closed."""

from escalate.rules.criteria._duration import duration_criterion, since_opened

UNRESOLVED_FOR = duration_criterion(
    "unresolved_for", "The ticket has not been resolved or closed this long (business time) after it was opened.",
    start=since_opened, phrase="unresolved for")
