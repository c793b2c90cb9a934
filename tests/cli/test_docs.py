"""Every command the README documents exists (sqlite-utils' test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from escalate.cli import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def documented_commands() -> list[list[str]]:
    found = set()
    for cell in re.findall(r"^\| `escalate ([^`]+)`", README, re.M):
        for variant in cell.split(","):
            words = [w for w in variant.replace("`", "").split() if re.fullmatch(r"[a-z][a-z/-]*", w) and w != "escalate"]
            if not words:
                continue
            head, *rest = words
            for tail in (rest[0].split("/") if rest else [None]):
                found.add((head,) if tail is None else (head, tail))
    return sorted(list(c) for c in found)


def test_the_readme_documents_commands():
    assert ["tickets", "list"] in documented_commands() and ["run"] in documented_commands()


@pytest.mark.parametrize("command", documented_commands(), ids=" ".join)
def test_documented_command_exists(command):
    result = CliRunner().invoke(main, [*command, "--help"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_readme_quick_start_commands_exist():
    for script in re.findall(r"^(\./scripts/\S+)", README, re.M):
        assert (Path(__file__).resolve().parents[2] / script).exists(), script
