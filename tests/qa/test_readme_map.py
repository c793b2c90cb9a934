"""README's "Where things are" names every package of escalate, so a newcomer's map stays whole."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "daemon" / "escalate"


def test_the_readme_map_names_every_top_level_package_and_module():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Where things are", 1)[1].split("\nThe source is", 1)[0]
    named = set(re.findall(r"`([a-z_]+)/`", section)) | set(re.findall(r"`([a-z_]+\.py)`", section))
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert packages - named == set(), "packages the map does not name"
    assert modules - named == set(), "top-level modules the map does not name"
    assert named - packages - modules == set(), "the map names what is not there"
