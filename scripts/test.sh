#!/usr/bin/env bash
# Sets up everything the tests need (scripts/setup.sh), checks the code with ruff and mypy (their
# settings are in pyproject.toml), then runs the whole suite against real Dovecot and aiosmtpd
# servers on loopback. Extra arguments go to pytest: `./scripts/test.sh -m "not chaos"` is the
# quick loop, without the tests that kill processes and servers.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/mypy
# three test processes (pytest-xdist; `-n 0` runs them in this one); a process that runs out of tests takes
# some from another's queue (worksteal), so a few long tests do not leave the others idle
exec .venv/bin/python -m pytest -n 3 --dist worksteal "$@"
