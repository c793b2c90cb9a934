"""The wheel carries the templates, the example rules and the man page, and works installed (not from a checkout)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_ships_templates_rules_and_man_page_and_runs_from_them(tmp_path: Path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    [wheel] = tmp_path.glob("escalate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    for template in (REPO / "templates").glob("*.j2"):
        assert f"escalate/templates/{template.name}" in names
    assert "escalate/data/rules.yaml" in names
    # the man page, installed as <prefix>/share/man/man1/escalate.1 (where `man escalate` looks beside bin/)
    [page] = [name for name in names if name.endswith(".data/data/share/man/man1/escalate.1")]
    assert (tmp_path / "site" / page).read_text() == (REPO / "man" / "escalate.1").read_text()
    assert not any(name.startswith(("tests/", "daemon/")) for name in names)

    # run the installed copy (its own templates and example rules), not the checkout
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    def escalate(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "escalate", *args], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=60)
    where = subprocess.run([sys.executable, "-c", "import escalate; print(escalate.__file__)"], env=env,
                           capture_output=True, text=True)
    assert where.stdout.startswith(str(tmp_path / "site")), where
    assert escalate("--version").returncode == 0
    init = escalate("init", str(tmp_path / "site-config"))
    assert init.returncode == 0, init.stderr
    check = escalate("--env-file", str(tmp_path / "site-config" / "escalate.env"), "rules", "check")
    # "ok", then the note on durations whose meaning changed with working days (the shipped file uses d and w)
    assert check.returncode == 0 and check.stdout.splitlines()[0].endswith(": ok"), check.stdout + check.stderr
