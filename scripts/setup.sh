#!/usr/bin/env bash
# Installs what escalate's demo and tests need on a fresh Debian machine, once:
# Debian's dovecot-imapd (the real IMAP server the demo and tests start on loopback), Debian's
# postgresql (for the multi-instance mode) and a
# Python virtual environment in .venv with escalate installed editable, with its test extras.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run again (it skips what is there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

apt_packages=()
[ -x /usr/sbin/dovecot ] || apt_packages+=(dovecot-imapd)
# headless Chromium: the test that screenshots the HTML report and checks its charts rendered
command -v chromium >/dev/null || apt_packages+=(chromium)
# PostgreSQL (the multi-instance mode; tests start the cluster with pg_ctlcluster)
command -v pg_ctlcluster >/dev/null && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || apt_packages+=(postgresql)
python3 -c 'import venv, ensurepip' 2>/dev/null || apt_packages+=(python3-venv)
if [ ${#apt_packages[@]} -gt 0 ]; then
  echo "setup: installing ${apt_packages[*]} (Debian packages)" >&2
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "setup: need root or sudo to install ${apt_packages[*]}" >&2; exit 1; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv" >&2
  python3 -m venv .venv
fi
# reinstall only when the project's metadata changed
stamp=.venv/.escalate-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing escalate and its dependencies into .venv" >&2
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test,demo]' 2>&1 | grep -v 'is ignored' >&2 || true
  .venv/bin/python -c 'import escalate, aiosmtpd, pytest, xdist' || { echo "setup: pip install failed" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
