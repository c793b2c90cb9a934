"""`escalate rules explain / simulate / matrix / doc` against real Dovecot and aiosmtpd, time moved
with --now: mail from three customers about one problem becomes one incident, escalated once; the
explanation, the replay and the generated procedure agree with what the daemon did."""

from __future__ import annotations

import json

from escalate.testing.loopback import Dovecot, SmtpSink

from tests.e2e.test_escalation_loop import at, cycle

RULES = """\
version: 1
timezone: Europe/Berlin
support_address: support@example.com
calendars:
  office:
    hours:
      mon-fri: "09:00-17:00"
severities:
  urgent:
    keywords: [outage, down]
    first_response: 15m
    resolution: 4h
  normal:
    default: true
    first_response: 4h
    resolution: 2d
    calendar: office
tiers:
  - level: 1
    name: Frontline
    group: tier1@example.com
    roster: [alice@example.com, bob@example.com]
    lead: lead1@example.com
  - level: 2
    name: Specialists
    group: tier2@example.com
    roster: [carol@example.com]
    lead: lead2@example.com
incidents:
  window: 1h
  similarity: 0.5
matrix:
  clock: unresolved
  after: [4h, 1d]
  rows:
    urgent: [1, 2]
    normal: [-, 2]
rules:
  - name: urgent-no-first-response
    description: Urgent tickets need a first response within 15 minutes.
    when:
      severity: urgent
      no_first_response_for: 15m
    then:
      escalate_to: 1
      repeat_every: 10m
      next_tier_after: 2
  - name: normal-first-response
    description: Normal tickets need a first response within 4 business hours.
    when:
      severity: normal
      past_target: first_response
    then:
      escalate_to: 1
  - name: incident
    description: Three customers with the same problem within the hour.
    when:
      customers_affected: 3
    then:
      set_severity: urgent
      escalate_to: 2
      alert_lead: true
"""


def rules_json(cli, *args: str) -> dict:
    return json.loads(cli("rules", *args, "--json").output)


def test_an_incident_is_escalated_once_and_explained_replayed_and_documented(
        cli, env, rules_file, dovecot: Dovecot, smtp_sink: SmtpSink, mail, tmp_path):
    rules_file(RULES)  # the env's ESCALATE_RULES file
    for n, (sender, subject) in enumerate([
            ("ann@one.example", "Invoice PDF download fails"),
            ("bob@two.example", "invoice pdf download fails for us too"),
            ("cid@three.example", "Cannot download invoice PDF"),
            ("dee@four.example", "Change of address")]):
        dovecot.append(mail(sender=sender, subject=subject, body="Please help.", message_id=f"m{n}@customer.example"))

    # Monday 2026-11-02 09:00 UTC is 10:00 in Berlin: the office is open
    assert cycle(cli, 0)["tickets_created"] == ["T-1", "T-2", "T-3", "T-4"]

    explained = rules_json(cli, "explain", "T-1", "--now", at(0))
    assert explained["incident"] == {"id": 1, "customers": 3, "primary": True}
    assert explained["severity"] == "urgent"  # raised by the incident rule
    assert explained["calendar"]["name"] == "always"  # urgent counts real time
    rules = {r["rule"]: r for r in explained["rules"]}
    assert rules["incident"]["state"] == "in the ladder"
    assert explained["ladder"]["state"] == "active" and explained["ladder"]["tier"] == 2
    assert explained["ladder"]["reasons"] == ["incident"]
    assert rules["urgent-no-first-response"]["state"] == "pending"
    assert rules["urgent-no-first-response"]["next_at"] == at(15)
    # tier 2 has the incident's ticket already: the urgent rule's tier 1 is absorbed into its ladder
    assert explained["next"] == {"at": at(15), "rule": "urgent-no-first-response",
                                 "what": "absorbed: tier 2 has the ticket already, no mail"}
    first_response = next(c for c in explained["clocks"] if c["clock"] == "first response")
    assert (first_response["target"], first_response["left"], first_response["due_at"]) == ("15m", "15m", at(15))
    # T-2 belongs to the incident but does not speak for it
    assert rules_json(cli, "explain", "T-2", "--now", at(0))["incident"]["primary"] is False
    text = cli("rules", "explain", "T-4", "--now", at(0)).output
    assert "calendar office: Mon–Fri 09:00–17:00 (Europe/Berlin) (open now)" in text
    assert "first response   0s counted of 4h; 4h left, due 2026-11-02 14:00 CET" in text  # the team's zone

    cycle(cli, 16)
    to = sorted(tuple(m.rcpt_tos) for m in smtp_sink.wait_for(5))
    # one incident escalation to tier 2 and one breach alert to its lead; the other urgent tickets'
    # own clocks go to tier 1; the incident's ticket stays with tier 2, now reminded at the urgent
    # rule's cadence (its own rule does not repeat), never sent down to tier 1
    assert to.count(("tier2@example.com",)) == 2 and to.count(("lead2@example.com",)) == 1
    assert to.count(("tier1@example.com",)) == 2

    # the replay of the stored history predicts exactly what the daemon did
    replay = rules_json(cli, "simulate", "--since", at(0), "--now", at(16))
    assert replay["tickets"] == 4 and replay["only_predicted"] == [] and replay["only_actual"] == []
    assert sorted((s["ref"], s["rule"], s["tier"]) for s in replay["predicted"]) == [
        ("T-1", "incident", 2), ("T-1", "urgent-no-first-response", 2), ("T-2", "urgent-no-first-response", 1),
        ("T-3", "urgent-no-first-response", 1)]
    # a candidate file: what a stricter incident rule (two customers) and no urgent rule would have done
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(RULES.replace("customers_affected: 3", "customers_affected: 2")
                         .replace("no_first_response_for: 15m", "no_first_response_for: 30m"))
    diff = rules_json(cli, "simulate", "--since", at(0), str(candidate), "--now", at(16))
    assert [(s["ref"], s["rule"]) for s in diff["only_actual"]] == [
        ("T-1", "urgent-no-first-response"), ("T-2", "urgent-no-first-response"), ("T-3", "urgent-no-first-response")]
    assert [(s["ref"], s["rule"], s["due_at"]) for s in diff["only_predicted"]] == []
    replay = cli("rules", "simulate", "--since", at(0), "--rules", str(candidate), "--now", at(16)).output
    assert "would escalate: 1 steps; the daemon took 4; 1 agree" in replay
    lines = [" ".join(line.split()) for line in replay.splitlines()]  # the steps in the one table style
    happened = lines[lines.index("Happened, would not have"):]
    assert happened[1] == "Due Ref Rule Step Tier" and set(happened[2]) == {"─"}
    assert [line.split()[3] for line in happened[3:6]] == ["T-1", "T-2", "T-3"]
    # the replay shows its times in the candidate file's zone, not in the deployed rules'
    candidate.write_text(candidate.read_text().replace("timezone: Europe/Berlin", "timezone: America/New_York"))
    replay = cli("rules", "simulate", "--since", at(0), str(candidate), "--now", at(16)).output
    assert " EST " in replay and " CET " not in replay, replay

    matrix = rules_json(cli, "matrix")
    assert matrix == {"clock": "unresolved", "after": ["4h", "1d"], "repeat_every": None,
                      "rows": [{"severity": "urgent", "tiers": [1, 2]}, {"severity": "normal", "tiers": [None, 2]}]}
    table = cli("rules", "matrix").output.splitlines()
    assert table[0].split() == ["Severity", "\\", "unresolved", "for", "4h", "1d"]
    assert table[2].split() == ["urgent", "1", "Frontline", "2", "Specialists"]
    doc = cli("rules", "doc").output
    assert doc.startswith("# Escalation procedure\n")
    assert "| 2 Specialists | tier2@example.com | carol@example.com | lead2@example.com | — | — |" in doc
    assert "- **incident** — Three customers with the same problem within the hour. When 3 or more customers " \
           "affected: mail tier 2 Specialists (tier2@example.com); set severity urgent; alert the lead." in doc
    assert "| urgent | 1 Frontline | 2 Specialists |" in doc
    assert "- `#ack` — " in doc
