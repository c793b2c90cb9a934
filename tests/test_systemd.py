"""The systemd hardening, checked as commands: the unit verifies and its sandbox exposure
stays at or below 2.0."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[1] / "systemd" / "escalate.service"

pytestmark = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")


def installed_copy(tmp_path: Path) -> Path:
    """The unit as an admin installs it, pointing at an escalate that exists on this machine."""
    escalate = Path(sys.executable).with_name("escalate")
    env_file = tmp_path / "escalate.env"
    env_file.write_text("ESCALATE_SECRET=x\n")
    text = UNIT.read_text().replace("/opt/escalate/bin/escalate", str(escalate))
    text = text.replace("/etc/escalate/escalate.env", str(env_file))
    copy = tmp_path / "escalate.service"
    copy.write_text(text)
    return copy


def test_unit_verifies(tmp_path: Path):
    # --man=no: Documentation= names the man page, which is installed with the package, not on a test machine
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(installed_copy(tmp_path))], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_unit_exposure_is_at_most_2(tmp_path: Path):
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", str(UNIT)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    assert "Overall exposure level for escalate.service" in done.stdout
