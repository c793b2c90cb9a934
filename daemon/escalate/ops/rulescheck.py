"""`escalate rules check`: every problem in the rules file and the templates, and the notes on
durations whose meaning changed, as data (the command prints it or writes it as `--json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from escalate.outbound.templates import Renderer, check_templates
from escalate.rules.loader import read_rules
from escalate.rules.working_days import note_text


def check(path: Path, templates_dir: Path | None, *, all_notes: bool = False) -> dict[str, Any]:
    """{"file", "templates", "ok", "errors", "notes"}: errors name the file, line and reason."""
    renderer = Renderer(templates_dir)
    ruleset, issues = read_rules(path, template_names=renderer.names())
    errors = [str(issue) for issue in issues]
    errors += check_templates(renderer)  # every kind of mail renders, in the sandbox, with hostile text kept literal
    notes: list[str] = []
    if not errors and ruleset is not None:
        notes = note_text(ruleset)
        if notes and not all_notes:  # one line on every check; the list when asked for
            notes = [notes[0].replace("Check these still say what you mean:",
                                      f"{len(notes) - 1} durations here count so (`rules check --notes` lists them).")]
    return {"file": str(path), "templates": str(templates_dir) if templates_dir else None, "ok": not errors,
            "errors": errors, "notes": notes}
