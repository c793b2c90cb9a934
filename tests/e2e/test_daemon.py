"""`escalate run` as a long-running process: it polls, escalates and sends on its own schedule,
reloads rules on SIGHUP (keeping the last good ones), and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from escalate.loopback import Dovecot, SmtpSink

from ..conftest import TEST_RULES

IMMEDIATE_RULES = TEST_RULES.replace("no_first_response_for: 15m", "no_first_response_for: 0m")


def start_daemon(env: dict[str, str]) -> subprocess.Popen:
    fast = {"ESCALATE_POLL_SECONDS": "0.2", "ESCALATE_TICK_SECONDS": "0.2", "ESCALATE_SEND_SECONDS": "0.2"}
    return subprocess.Popen([sys.executable, "-m", "escalate", "run"], env={**os.environ, **env, **fast},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(daemon: subprocess.Popen) -> tuple[int, str]:
    daemon.send_signal(signal.SIGTERM)
    try:
        _out, err = daemon.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        daemon.kill()
        _out, err = daemon.communicate()
        raise AssertionError(f"the daemon did not stop within 10 s of SIGTERM:\n{err}")
    return daemon.returncode, err


def test_daemon_escalates_on_its_own_and_stops_on_sigterm(env, rules_file, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    daemon = start_daemon(env)
    try:
        dovecot.append(mail(sender="carl@customer.example", subject="Site down", body="All pages 500."))
        [first] = smtp_sink.wait_for(1, timeout=20)
        assert first.rcpt_tos == ["tier1@example.com"] and "Site down" in first.message["Subject"]

        # a broken rules file: the reload fails loudly, and the old rules keep working
        rules_path = env["ESCALATE_RULES"]
        with open(rules_path, "w") as handle:
            handle.write(IMMEDIATE_RULES.replace("repeat_every: 10m", "repeat_every: soon"))
        daemon.send_signal(signal.SIGHUP)
        time.sleep(0.5)  # let the loop notice the signal before the next mail arrives
        dovecot.append(mail(sender="dana@other.example", subject="Database down", body="Timeouts."))
        second = smtp_sink.wait_for(2, timeout=20)[1]
        assert "Database down" in second.message["Subject"]
        assert daemon.poll() is None, "the daemon died"
    finally:
        code, err = stop(daemon)
    assert code == 0, err
    assert "rules reload failed; keeping the last good rules" in err
    assert f'{rules_path}:' in err and 'expected a duration like "30m", got "soon"' in err
    assert env["ESCALATE_SECRET"] not in err
