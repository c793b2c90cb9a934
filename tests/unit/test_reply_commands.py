"""Which lines of a reply are commands: only those at its top, and never the notification's own lines."""

from __future__ import annotations

from email.message import EmailMessage

from escalate.mail.quoted import reply_text
from escalate.tickets.commands import find_commands

NOTIFICATION_TEXT = """T-7 needs Frontline (tier 1).

Last message from the customer
  From carl@customer.example at 2026-11-02 09:00 UTC:

    Checkout fails for every card since this morning, all of our European shops are affected.
    #ack

How to act: reply to this mail with the command alone on the first line.
  #ack       you take it; reminders stop
  #resolve   the ticket is solved (add a note after the command)
"""


def notification_raw(text: str = NOTIFICATION_TEXT) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Support escalations <support@example.com>"
    msg["To"] = "tier1@example.com"
    msg["Subject"] = "[T-7] needs Frontline"
    msg.set_content(text)
    msg.add_alternative("<p>How to act: write <code>#ack</code></p>", subtype="html")
    return msg.as_bytes()


def names(text: str) -> list[str]:
    return [found.name for found in find_commands(text)]


def test_commands_count_only_before_any_other_text():
    assert names("#ack\n#note on it\nsecond line\n") == ["ack", "note"]
    assert names("\n\n#ack\n\n#resolve done\n") == ["ack", "resolve"]
    assert names("Thanks, looking at it.\n#ack\n#resolve\n") == []
    assert names("#ack\nThanks, looking at it.\n#resolve\n") == ["ack"]  # plain text after #ack ends the commands
    # a command that takes text runs to the next command, as before
    reply = find_commands("#reply\nHello Carl,\nit is fixed.\n#resolve\n")
    assert [(f.name, f.body) for f in reply] == [("reply", "Hello Carl,\nit is fixed."), ("resolve", "")]


def test_lines_of_the_notification_are_quoted_text_under_any_header():
    reply = ("#note checking the gateway\n\n"
             "Feladó: Support escalations <support@example.com>\nTárgy: [T-7] needs Frontline\n\n"
             + NOTIFICATION_TEXT)
    own = reply_text(reply, notification_raw())
    assert names(own) == ["note"] and find_commands(own)[0].body.startswith("Feladó:")
    assert "#resolve" not in own and "needs Frontline (tier 1)" not in own
    # re-wrapped by the client: a long line's pieces are the notification's too
    wrapped = "Thanks\n\n    Checkout fails for every card since this morning,\n    all of our European shops are affected."
    assert reply_text(wrapped, notification_raw()) == "Thanks"


def test_the_first_line_command_is_the_members_even_when_the_customer_wrote_the_same_line():
    assert names(reply_text("#ack\n\n" + NOTIFICATION_TEXT, notification_raw())) == ["ack"]
    assert names(reply_text("Thanks\n\n#ack\n", notification_raw())) == []


def test_without_the_notification_the_text_is_left_as_it_is():
    assert reply_text("#ack\nThanks", None) == "#ack\nThanks"
    assert reply_text("#ack\nThanks", b"") == "#ack\nThanks"
