#!/usr/bin/env bash
# Sets up escalate (scripts/setup.sh) and runs the demo: a real Dovecot and SMTP sink on
# loopback, sample customer mail, the daemon run with simulated time, then the tickets and the
# escalation mail that went out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec .venv/bin/escalate demo "$@"
