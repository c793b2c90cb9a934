"""Replies from every client and language in the corpus: quoted help never acts, a first-line command does.

Real Dovecot and aiosmtpd. One urgent ticket per layout is escalated to tier 1; alice answers each
notification in that layout, quoting it the way the client does (tests/data/replies/). The
notification's help names #ack and #resolve, and several layouts put its text under a header the
quote detector does not know, with no quote marks: "Thanks, looking at it." must neither
acknowledge nor resolve anything, and "#ack" on the first line must still acknowledge.
"""

from __future__ import annotations

from ..replies_corpus import LAYOUTS, corpus_reply, notification_text
from .test_replies import RULES, cycle, show


def escalate_one_ticket_per_layout(env, rules_file, cli, dovecot, smtp_sink, mail) -> dict[str, object]:
    """{layout: the notification received for its ticket}; ticket T-n belongs to LAYOUTS[n-1]."""
    env["ESCALATE_RULES"] = str(rules_file(RULES))
    for n in range(1, len(LAYOUTS) + 1):
        dovecot.append(mail(sender=f"customer{n}@customer.example", subject=f"Checkout {n} is down",
                            body="Payment fails with 502.", message_id=f"c{n}@customer.example"))
    cycle(cli, 0)
    cycle(cli, 16)
    received = {m.message["X-Escalate-Ticket"]: m.message for m in smtp_sink.wait_for(len(LAYOUTS))}
    smtp_sink.clear()
    return {layout: received[f"T-{n}"] for n, layout in enumerate(LAYOUTS, 1)}


def test_the_corpus_has_the_clients_and_languages_replies_come_from():
    assert len(LAYOUTS) >= 10
    for expected in ("outlook-en", "outlook-de", "outlook-ru", "outlook-pl", "outlook-cs", "outlook-tr", "outlook-fi",
                     "outlook-ja", "gmail-en", "apple-mail-de", "thunderbird-fr", "qq-mail-zh", "ios-mail-ru"):
        assert expected in LAYOUTS


def test_a_thank_you_in_any_layout_does_nothing_and_a_first_line_ack_acts(env, rules_file, cli, dovecot, smtp_sink,
                                                                          mail):
    notifications = escalate_one_ticket_per_layout(env, rules_file, cli, dovecot, smtp_sink, mail)
    some = next(iter(notifications.values()))
    assert "#ack" in notification_text(some) and "#resolve" in notification_text(some)  # what could be quoted

    for layout, notification in notifications.items():
        dovecot.append(corpus_reply(layout, notification, sender="alice@example.com", text="Thanks, looking at it."))
    cycle(cli, 20)
    acted, texts = {}, {}
    for n, layout in enumerate(LAYOUTS, 1):
        detail = show(cli, f"T-{n}")
        assert detail["message_count"] == 2, (layout, detail["messages"])  # the reply threaded to its ticket
        acted[layout] = [e["action"] for e in detail["events"]
                         if e["action"] in ("acknowledged", "resolved", "note", "command-refused", "command-unknown",
                                            "commands-not-at-top")]
        acted[layout] += [] if detail["status"] == "new" else [f"status {detail['status']}"]
        texts[layout] = detail["messages"][-1]["text"]
    assert acted == {layout: [] for layout in LAYOUTS}
    # what is kept as the member's own words: their line, not the notification they quoted
    for layout, text in texts.items():
        assert text.startswith("Thanks, looking at it.") and "#resolve" not in text, (layout, text)
    assert smtp_sink.messages == []  # no confirmation, no help, no refusal

    for layout, notification in notifications.items():
        dovecot.append(corpus_reply(layout, notification, sender="alice@example.com", text="#ack\nOn it."))
    cycle(cli, 21)
    acknowledged = {layout: show(cli, f"T-{n}")["acknowledged_by"] for n, layout in enumerate(LAYOUTS, 1)}
    assert acknowledged == {layout: "alice@example.com" for layout in LAYOUTS}
    assert all(show(cli, f"T-{n}")["status"] == "open" for n in range(1, len(LAYOUTS) + 1))
