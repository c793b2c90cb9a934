#!/usr/bin/env bash
# Sets up everything the tests need (scripts/setup.sh) and runs the whole suite against real
# Dovecot and aiosmtpd servers on loopback. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
