"""max_age: the ticket is still not resolved this long after it was opened, in real time.

Unlike the business-time clocks this one never pauses: "close every escalation within 30 days"
is a promise in calendar days.
"""

from escalate.rules.criteria._duration import duration_criterion, since_opened

MAX_AGE = duration_criterion("max_age", "The ticket is older than this (real time, never paused) and not resolved.",
                             start=since_opened, phrase="older than", business_time=False)
