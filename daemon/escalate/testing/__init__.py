"""Loopback Dovecot, SMTP and PostgreSQL servers for the demo and the tests (needs the
`demo` or `test` extra: aiosmtpd)."""
