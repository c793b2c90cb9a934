import os
from pathlib import Path

import pytest
from escalate.config import ConfigError, load_settings, read_env_file


def test_settings_from_environment_redact_secrets():
    settings = load_settings({
        "ESCALATE_IMAP_URL": "imaps://support%40example.com:p%40ss@mail.example.com/INBOX,Escalations",
        "ESCALATE_SMTP_URL": "smtp+starttls://relay:s3cret@mail.example.com:587",
        "ESCALATE_DB_URL": "sqlite:///x.db",
        "ESCALATE_SECRET": "topsecret",
    })
    assert settings.imap.username == "support@example.com" and settings.imap.password == "p@ss"
    assert settings.imap.tls and settings.imap.port == 993
    assert settings.imap.folders == ("INBOX", "Escalations")
    assert settings.smtp.starttls and settings.smtp.port == 587
    text = repr(settings)
    for secret in ("p@ss", "p%40ss", "s3cret", "topsecret"):
        assert secret not in text


@pytest.mark.parametrize("url, message", [
    ("http://x", "ESCALATE_IMAP_URL: expected a URL starting with imap://"),
    ("imap://", "ESCALATE_IMAP_URL: the URL has no host"),
    ("imap://host:port/", "ESCALATE_IMAP_URL: the port is not a number"),
])
def test_bad_urls_name_the_variable(url, message):
    with pytest.raises(ConfigError) as error:
        load_settings({"ESCALATE_IMAP_URL": url})
    assert str(error.value).startswith(message)


def test_env_file_fills_what_the_environment_lacks(tmp_path: Path):
    env_file = tmp_path / "escalate.env"
    env_file.write_text("# comment\nESCALATE_RULES=/etc/r.yaml\nESCALATE_SECRET='quoted'\n")
    settings = load_settings({"ESCALATE_RULES": "/override.yaml"}, env_file=env_file)
    assert settings.rules_path == Path("/override.yaml")
    assert settings.secret == b"quoted"
    assert read_env_file(env_file) == {"ESCALATE_RULES": "/etc/r.yaml", "ESCALATE_SECRET": "quoted"}


def test_an_empty_variable_in_the_environment_does_not_hide_the_env_files_value(tmp_path: Path, monkeypatch):
    # an `export ESCALATE_DB_URL=` left in a shell is "not set", as an
    # empty value is for every setting: the file's database is used, not the default next to the caller
    env_file = tmp_path / "escalate.env"
    env_file.write_text("ESCALATE_DB_URL=sqlite:////var/lib/escalate/escalate.db\nESCALATE_CHAT_OPS=json://chat.example\n")
    monkeypatch.setenv("ESCALATE_CHAT_OPS", "")
    settings = load_settings({"ESCALATE_DB_URL": "", "ESCALATE_RULES": ""}, env_file=env_file)
    assert settings.db_url == "sqlite:////var/lib/escalate/escalate.db"
    assert os.environ["ESCALATE_CHAT_OPS"] == "json://chat.example"  # chat channels are read from the environment


def test_env_file_syntax_errors_name_the_line(tmp_path: Path):
    env_file = tmp_path / "bad.env"
    env_file.write_text("ESCALATE_RULES=x\nnot a setting\n")
    with pytest.raises(ConfigError, match=r"bad.env:2: expected KEY=VALUE"):
        read_env_file(env_file)


def test_several_imap_accounts_whitespace_separated():
    settings = load_settings({"ESCALATE_IMAP_URL": "imap://support:pw1@mail.example.com/INBOX\n"
                                                   "  imaps://sales:pw2@other.example.com/INBOX,Leads",
                              "ESCALATE_DB_URL": "sqlite:///x.db"})
    assert [(a.username, a.host, a.folders) for a in settings.mailboxes] == [
        ("support", "mail.example.com", ("INBOX",)), ("sales", "other.example.com", ("INBOX", "Leads"))]
    assert settings.imap.username == "support"  # the first is still `imap`
    assert {"pw1", "pw2"} <= set(settings.secret_values())  # both passwords are kept out of the logs
    with pytest.raises(ConfigError, match="an account is named twice"):
        load_settings({"ESCALATE_IMAP_URL": "imap://a:x@h/INBOX imap://a:y@h/Sent", "ESCALATE_DB_URL": "sqlite:///x.db"})


def test_the_stop_wait_is_eight_seconds_unless_set_and_must_be_positive():
    assert load_settings({"ESCALATE_DB_URL": "sqlite:///x.db"}).stop_seconds == 8.0
    assert load_settings({"ESCALATE_DB_URL": "sqlite:///x.db", "ESCALATE_STOP_SECONDS": "12"}).stop_seconds == 12.0
    with pytest.raises(ConfigError, match="ESCALATE_STOP_SECONDS: must be positive"):
        load_settings({"ESCALATE_DB_URL": "sqlite:///x.db", "ESCALATE_STOP_SECONDS": "0"})
