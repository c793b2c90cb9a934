"""A database that cannot be written says so in one line with exit status 1, and loses nothing:
a read-only database directory, a full disk, an unreachable PostgreSQL. Real Dovecot, aiosmtpd,
CLI, a real tmpfs for the full disk (root only, like the read-only directory's immutable flag)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest


def only_error_line(result) -> str:
    assert "Traceback" not in result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("Error:")]
    return line


@pytest.fixture
def state(tmp_path, env) -> Path:
    directory = tmp_path / "state"
    env["ESCALATE_DB_URL"] = f"sqlite:///{directory / 'escalate.db'}"
    return directory


def run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


@pytest.fixture
def read_only():
    """Make a directory read-only for this process: chmod for a user, the immutable flag for root
    (who is not stopped by modes)."""
    made: list[Path] = []

    def make(directory: Path) -> None:
        if os.geteuid() != 0:
            directory.chmod(0o500)
        else:
            try:
                run("chattr", "+i", str(directory))
            except (OSError, subprocess.CalledProcessError):
                pytest.skip("cannot make a directory read-only for root here (chattr +i refused)")
        made.append(directory)
    yield make
    for directory in made:
        if os.geteuid() == 0:
            run("chattr", "-i", str(directory))
        directory.chmod(0o700)


def test_a_read_only_database_directory_is_one_line_and_exit_1(state, read_only, dovecot, mail, cli):
    cli("init", str(state))
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="502"))
    for suffix in ("-wal", "-shm"):
        assert not Path(f"{state / 'escalate.db'}{suffix}").exists()
    read_only(state)
    line = only_error_line(cli("run", "--once", expect=1))
    assert str(state) in line and "writable" in line
    only_error_line(cli("status", expect=1))
    line = only_error_line(cli("init", str(state / "second"), expect=1))  # init in it: the same one line
    assert str(state / "second") in line and "read and write" in line


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs, a real filesystem that fills up (mounting needs root)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    try:
        run("mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mountpoint))
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mountpoint
    run("umount", "-l", str(mountpoint))


def test_a_full_disk_is_one_line_and_exit_1_and_nothing_is_lost(small_disk, env, dovecot, mail, cli):
    state = small_disk / "state"
    env["ESCALATE_DB_URL"] = f"sqlite:///{state / 'escalate.db'}"
    cli("init", str(state))
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 150_000))  # room for the WAL to start, not for the mail
    for number in range(6):
        dovecot.append(mail(sender=f"shop{number}@customer.example", subject=f"Order {number} missing",
                            body=f"order {number} " * 6_000))
    line = only_error_line(cli("run", "--once", expect=1))
    assert "full" in line and str(state) in line and "cannot rollback" not in line
    filler.unlink()  # room again: the next run stores all six, none lost and none twice
    result = json.loads(cli("run", "--once", "--json").output)
    assert len(result["tickets_created"]) == 6


def test_an_unreachable_postgresql_is_one_line_and_exit_1(env, cli):
    env["ESCALATE_DB_URL"] = "postgresql://escalate:pw@127.0.0.1:1/escalate"
    for command in (("run", "--once"), ("status",), ("tickets", "list")):
        line = only_error_line(cli(*command, expect=1))
        assert "127.0.0.1:1" in line and "ESCALATE_DB_URL" in line and ":pw@" not in line
