"""Chat channels without a network: which channels a notification goes to, what a post says,
what is shown of a URL, and that Apprise stays unloaded for users without chat."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from escalate.outbound import chat
from escalate.rules.loader import load_ruleset

from tests.conftest import TEST_RULES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_a_notification_goes_to_the_channels_of_the_tiers_leads_and_lists_it_is_mailed_to(tmp_path, monkeypatch):
    for name in ("frontline", "leads", "managers"):
        monkeypatch.setenv(chat.env_name(name), f"json://127.0.0.1:9/{name}")
    rules = TEST_RULES.replace("    lead: lead1@example.com\n", "    lead: lead1@example.com\n    chat: [frontline]\n"
                               "    lead_chat: [leads, frontline]\n    informed: [boss@example.com]\n"
                               "    informed_chat: [managers]\n", 1)
    (tmp_path / "rules.yaml").write_text(rules)
    ruleset = load_ruleset(tmp_path / "rules.yaml")
    assert chat.channels_for(ruleset, ["tier1@example.com"]) == {"chat:frontline": ["tier1@example.com"]}
    assert chat.channels_for(ruleset, ["lead1@example.com"]) == {"chat:leads": ["lead1@example.com"],
                                                                 "chat:frontline": ["lead1@example.com"]}
    assert chat.channels_for(ruleset, ["tier1@example.com", "lead1@example.com"])["chat:frontline"] == [
        "tier1@example.com", "lead1@example.com"]
    assert chat.channels_for(ruleset, ["boss@example.com"]) == {"chat:managers": ["boss@example.com"]}
    # tier 2 has no channel, and a customer or a roster member is never posted about
    assert chat.channels_for(ruleset, ["tier2@example.com", "carl@customer.example", "alice@example.com"]) == {}


def test_customer_text_cannot_turn_a_post_into_a_link_markup_or_a_channel_wide_mention():
    post = chat.message(kind="escalation", subject="", context={"ticket": {
        "ref": "T-7", "subject": "[click me](https://evil.example) *now*\n@channel", "severity": "urgent", "age": "2h"}},
        reply_to=None, plus_address_replies=False, drill=False)
    first = post["body"].splitlines()[0]
    assert first == "**T-7** \\[click me\\](https://evil.example) \\*now\\* @\u200bchannel"  # no one is pinged
    assert "Reply #ack to the mail to acknowledge." in post["body"]


def test_a_url_is_shown_as_its_scheme_and_scrubbed_from_errors():
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#support"
    assert chat.redacted(url) == "slack://…"
    said = chat.scrub("Failed to send to T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ, error=404.", url)
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in said and "A1BRTD4JD" not in said and "error=404" in said


def test_the_readme_examples_are_urls_apprise_reads():
    section = README.split("## Chat channels", 1)[1].split("\n## ", 1)[0]
    urls = re.findall(r"ESCALATE_CHAT_FRONTLINE=(\S+?)`", section)
    assert [url.split("://")[0] for url in urls] == ["slack", "mmosts", "workflows"]
    for url in urls:
        assert chat.url_problem(url) is None, url


@pytest.mark.parametrize(("url", "expected"), [
    ("slak://a/b/c", 'has the scheme "slak://", which Apprise does not know (did you mean "slack://"?)'),
    ("hooks.example.com/abc", 'is not a URL like "slack://…"'),
])
def test_a_url_apprise_cannot_use_is_explained(url, expected):
    assert expected in chat.url_problem(url)


def test_without_a_channel_apprise_is_never_imported(tmp_path):
    """Loading its plugins costs a quarter of a second: not for users without chat."""
    (tmp_path / "rules.yaml").write_text(TEST_RULES)
    code = ("import sys; import escalate.cli, escalate.ops.service, escalate.ops.status, escalate.ops.metrics; "
            "from escalate.rules.loader import load_ruleset; "
            f"load_ruleset({str(tmp_path / 'rules.yaml')!r}); "
            "print('apprise' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_a_failure_notice_says_what_was_not_delivered_to_whom_and_why():
    post = chat.message(kind="delivery-failure", subject="[T-3] Undeliverable escalation notification #9", context={
        "ticket": {"ref": "T-3", "subject": "Checkout down", "severity": "urgent"},
        "failed": {"id": 9, "kind": "escalation"},
        "deliveries": [{"recipient": "tier1@example.com", "status": "sent", "error": None},
                       {"recipient": "chat:frontline", "status": "failed", "error": "Bad Request, error=400."}]},
        reply_to=None, plus_address_replies=False, drill=False)
    assert post["title"] == "Undeliverable notification T-3"
    assert post["body"].splitlines()[-2:] == ["Not delivered: escalation #9", "- chat:frontline: Bad Request, error=400."]
