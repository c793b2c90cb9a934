"""A rules reload without a signal: the daemon notices that rules.yaml changed on disk, takes a good file, and
keeps its last good rules (saying where the new file is wrong) when the file is broken."""

from __future__ import annotations

from escalate.testing.loopback import Dovecot, SmtpSink

from .daemon_process import DaemonProcess
from .log_lines import events, parse_lines
from .test_daemon import IMMEDIATE_RULES


def test_a_changed_rules_file_is_reloaded_and_a_broken_one_is_refused(env, rules_file, dovecot: Dovecot,
                                                                      smtp_sink: SmtpSink, mail):
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    with DaemonProcess(env) as daemon:
        dovecot.append(mail(sender="carl@customer.example", subject="Site down", body="All pages 500."))
        assert smtp_sink.wait_for(1, timeout=20)[0].rcpt_tos == ["tier1@example.com"]

        # the team moves the frontline to a new group address: no signal, just the edit
        with open(env["ESCALATE_RULES"], "w") as handle:
            handle.write(IMMEDIATE_RULES.replace("group: tier1@example.com", "group: frontline@example.com"))
        daemon.wait_for_event("rules-reloaded")  # the daemon checks the file every 2 s
        dovecot.append(mail(sender="dana@other.example", subject="Database down", body="Timeouts."))
        assert smtp_sink.wait_for(2, timeout=20)[1].rcpt_tos == ["frontline@example.com"]

        # a broken edit: refused with its line, and the last good rules (the new group) stay
        with open(env["ESCALATE_RULES"], "w") as handle:
            handle.write(IMMEDIATE_RULES.replace("group: tier1@example.com", "group: frontline@example.com")
                         .replace("repeat_every: 10m", "repeat_every: soon"))
        daemon.wait_for_event("rules-reload-failed")
        dovecot.append(mail(sender="erin@third.example", subject="Checkout down", body="502."))
        assert smtp_sink.wait_for(3, timeout=20)[2].rcpt_tos == ["frontline@example.com"]
        assert daemon.poll() is None, "the daemon died"
        code, err = daemon.stop()
    assert code == 0, err
    records = parse_lines(err, "logfmt")
    assert len(events(records, "rules-reloaded")) == 1  # the good edit
    [failed] = events(records, "rules-reload-failed")  # the broken one, said once
    assert failed["level"] == "error" and failed["keeping"] == "the last good rules"
    assert f'{env["ESCALATE_RULES"]}:' in failed["error"] and 'expected a duration like "30m", got "soon"' in failed["error"]
