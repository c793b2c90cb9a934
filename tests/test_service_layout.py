"""`escalate init /etc/escalate` and the shipped systemd unit agree: the env file is where the unit's
EnvironmentFile= reads it, the database is in the unit's StateDirectory= (the one place
ProtectSystem=strict leaves writable), rules.yaml is readable by the unit's dynamic user, and the
README's service steps run as written.

No systemd runs in the test container, so the last test plays the unit's part in a private mount
namespace: /etc overlaid and /var/lib bound to temporary directories (the host's stay untouched),
then everything read-only but the state directory, and `escalate run --once` as an unprivileged
user with the env file's settings in its environment — what systemd does for the unit."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from escalate.cli import main
from escalate.ops.initdir import SERVICE_STATE_DIRECTORY, database_url_for, env_file_text

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "escalate.service"
DYNAMIC_UID = 61_234  # stands in for the uid systemd picks for DynamicUser=yes


def unit_settings() -> dict[str, list[str]]:
    """KEY=VALUE lines of the unit, each key's values in order (a key may repeat in a unit file)."""
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith(("#", ";", "[")):
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def readme_service_steps() -> list[str]:
    section = REPO.joinpath("README.md").read_text().split("## Run it as a service", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def test_what_init_writes_for_etc_is_what_the_unit_uses():
    unit = unit_settings()
    assert unit["StateDirectory"] == ["escalate"] and Path("/var/lib") / "escalate" == SERVICE_STATE_DIRECTORY
    assert unit["ProtectSystem"] == ["strict"] and unit["ProtectHome"] == ["yes"]
    [env_file] = unit["EnvironmentFile"]
    config_dir = Path(env_file).parent
    url = database_url_for(config_dir)
    database = Path(url.removeprefix("sqlite:///"))
    assert database.parent == SERVICE_STATE_DIRECTORY  # writable under ProtectSystem=strict; /etc is not
    assert not database.is_relative_to("/etc")
    text = env_file_text(url, config_dir / "rules.yaml", "0" * 64)
    assert f"ESCALATE_DB_URL=sqlite:///{SERVICE_STATE_DIRECTORY}/escalate.db" in text.splitlines()
    assert f"ESCALATE_RULES={config_dir}/rules.yaml" in text.splitlines()
    # ExecStart= is the escalate of the virtual environment the README installs, running the daemon
    [exec_start] = unit["ExecStart"]
    program, command = exec_start.split()
    assert command in main.commands and Path(program).name == "escalate"
    assert f"python3 -m venv {Path(program).parents[1]}" in " ".join(readme_service_steps())
    assert f"escalate init {config_dir}" in " ".join(readme_service_steps())
    assert unit["Type"] == ["notify"]
    # a configuration escalate cannot use (exit 2) is not restarted in a loop
    assert unit["RestartPreventExitStatus"] == ["2"]


def test_documentation_points_at_installed_pages_not_a_file_pip_never_installs():
    [documentation] = unit_settings()["Documentation"]
    links = documentation.split()
    assert "man:escalate(1)" in links
    assert not any(link.startswith("file:") for link in links)


def test_init_elsewhere_keeps_the_database_beside_its_configuration(tmp_path: Path):
    assert database_url_for(tmp_path / "site") == f"sqlite:///{tmp_path / 'site' / 'escalate.db'}"
    assert database_url_for(tmp_path / "site", tmp_path / "state") == f"sqlite:///{tmp_path / 'state' / 'escalate.db'}"


def _interpreter_for_everyone(tmp_path: Path) -> str:
    """Shell lines that let the unprivileged user run this test's Python: an interpreter installed
    under root's 0700 home (pyenv) is shown, in the namespace only, under a /root it may traverse."""
    real = Path(sys.executable).resolve()
    if not real.is_relative_to("/root"):
        return ""
    top = Path("/root") / real.relative_to("/root").parts[0]
    keep = tmp_path / "interpreter"
    keep.mkdir()
    return (f"mount --bind {top} {keep}\nmount -t tmpfs -o mode=0755 tmpfs /root\n"
            f"mkdir {top}\nmount --move {keep} {top}")


def _can_fake_the_unit() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        return False
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
    return done.returncode == 0


@pytest.mark.skipif(not _can_fake_the_unit(), reason="needs root and mount namespaces (unshare -m)")
def test_readme_service_steps_then_the_daemon_as_the_unit_runs_it(tmp_path: Path, dovecot, smtp_sink, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="Error 502."))
    escalate = f"env PYTHONPATH={shlex.quote(str(REPO / 'daemon'))} {shlex.quote(sys.executable)} -m escalate"
    steps = readme_service_steps()
    init_step = next(step for step in steps if " init /etc/escalate" in step)
    init_step = init_step.replace("/opt/escalate/bin/escalate", escalate)  # the README's lines, our interpreter
    etc_upper, etc_work, var_lib = tmp_path / "etc-upper", tmp_path / "etc-work", tmp_path / "var-lib"
    for directory in (etc_upper, etc_work, var_lib):
        directory.mkdir()
    [env_file] = unit_settings()["EnvironmentFile"]
    script = f"""
set -eu
{_interpreter_for_everyone(tmp_path)}
mount -t overlay overlay -o lowerdir=/etc,upperdir={etc_upper},workdir={etc_work} /etc
mount --bind {var_lib} /var/lib
umask 022
{init_step}
# "then edit both files": the mailbox and SMTP server of this test
sed -i 's|^ESCALATE_IMAP_URL=.*|ESCALATE_IMAP_URL={dovecot.url()}|; s|^ESCALATE_SMTP_URL=.*|ESCALATE_SMTP_URL={smtp_sink.url}|' {env_file}
# systemd's part at start: the state directory owned by the dynamic user, everything else read-only
chown -R {DYNAMIC_UID}:{DYNAMIC_UID} {SERVICE_STATE_DIRECTORY}
mount -o remount,bind,ro /etc
mount -o remount,bind,ro /
env -i PATH=/usr/bin:/bin $(grep -E '^[A-Z_]+=' {env_file}) STATE_DIRECTORY={SERVICE_STATE_DIRECTORY} \\
    setpriv --reuid={DYNAMIC_UID} --regid={DYNAMIC_UID} --clear-groups sh -c 'umask 0077; exec {escalate} run --once'
{escalate} --env-file {env_file} config check
"""
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c", script],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ingested: 1 new ticket" in done.stdout
    assert re.search(r"^ok +database +sqlite:////var/lib/escalate/escalate.db: schema at migration \d+$", done.stdout, re.M)
    state = var_lib / "escalate"
    assert (state / "escalate.db").stat().st_uid == DYNAMIC_UID
    config = etc_upper / "escalate"
    assert sorted(p.name for p in config.iterdir()) == ["escalate.env", "rules.yaml"]  # no database under /etc
    assert (config / "escalate.env").stat().st_mode & 0o777 == 0o600
    assert not Path("/etc/escalate").exists() and not Path("/var/lib/escalate").exists()  # the host untouched
