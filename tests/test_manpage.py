"""escalate(1) is written from the click commands: the committed page is the one they write now,
and it reads cleanly (the wheel installs it: tests/test_packaging.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from escalate.cli import main
from escalate.cli.manpage import render, walk

PAGE = Path(__file__).resolve().parents[1] / "man" / "escalate.1"


def test_the_committed_man_page_is_current():
    assert PAGE.read_text(encoding="utf-8") == render(main), \
        "man/escalate.1 is stale: run `python -m escalate.cli.manpage > man/escalate.1`"


def test_the_man_page_names_every_command_and_option():
    page = PAGE.read_text(encoding="utf-8")
    for path, _command in walk(main):
        if path:
            assert f".SS {' '.join(path)}" in page.replace("\\-", "-")
    assert "\\fB\\-\\-as ADDRESS\\fR" in page and "systemctl is\\-active" in page


@pytest.mark.skipif(shutil.which("man") is None, reason="needs man-db")
def test_man_renders_it_without_warnings():
    shown = subprocess.run(["man", "--warnings", "-l", str(PAGE)], capture_output=True, text=True,
                           env={"MANWIDTH": "100", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, timeout=60)
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert "escalate tickets ack [OPTIONS] REF" in shown.stdout
