#!/usr/bin/env bash
# The kill-loop tests (pytest marker `chaos`) in their long form, the soak: ESCALATE_SOAK_SCALE
# multiplies their kills, their mail and their simulated time (tests/e2e/soak.py). The suite runs
# them at 1, a few kills each; this runs them at 4 unless told otherwise, which is about the kills
# and mail they had before they were bounded (12 SIGKILLs of three instances over 1,000 tickets,
# 16 of the sender over 800 mails, 12 of ingest over 1,600 mails, a 4 s PostgreSQL outage).
# Extra arguments go to pytest:
#
#   bench/chaos_soak.sh                                  # every chaos test at scale 4
#   ESCALATE_SOAK_SCALE=20 bench/chaos_soak.sh -k three_instances
#
# The PostgreSQL crash test (marker `serial`) stops the shared cluster: run it on a quiet machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export ESCALATE_SOAK_SCALE="${ESCALATE_SOAK_SCALE:-4}"
exec "${PYTHON:-.venv/bin/python}" -m pytest -m chaos -s --durations=0 "$@"
