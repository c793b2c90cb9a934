"""rules/ decides and does not act: it reads rules.yaml and says what is due, and a rule's actions
change the world only through the effects the engine hands them (rules/effects.py). So nothing in
rules/ imports the modules above it — the engine, mail, tickets, the database — and it stays
usable (and testable) on its own. This test reads every import in rules/, at the top of a file or
inside a function, and fails on one of `escalate.<anything>` outside rules/ but a few leaves."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "escalate"

# modules outside rules/ that rules/ may import, each a leaf: it imports nothing of escalate but
# these (checked below), so importing it cannot pull in anything that acts
LEAVES = {
    "escalate.errors": "the error family every layer raises (a message and an exit status): imports nothing",
    "escalate.clock": "times as the team reads them, parsing stored times: standard library and errors",
    "escalate.outbound.chat": "a chat channel's name pattern and whether the environment gives it a URL "
                              "(the loader checks `chat:` in a tier): standard library only",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in the file, `from x import y` giving x.y as well
    (y may be a module: `from .. import chat`)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _outside(module: str) -> bool:
    return (module.startswith("escalate.") and not module.startswith("escalate.rules")
            and not any(module == leaf or module.startswith(leaf + ".") for leaf in LEAVES))


def offences(root: Path) -> list[str]:
    return [f"{path.relative_to(PACKAGE)}:{line}: imports {module}"
            for path in sorted(root.rglob("*.py")) for line, module in imports(path) if _outside(module)]


def test_rules_import_nothing_above_them():
    found = offences(PACKAGE / "rules")
    assert not found, "rules/ imports only rules/ and the leaves in LEAVES:\n" + "\n".join(found)


def test_the_allowed_leaves_are_leaves():
    """A leaf imports nothing of escalate but other leaves."""
    for leaf in LEAVES:
        path = PACKAGE / (leaf.removeprefix("escalate.").replace(".", "/") + ".py")
        assert not [m for _, m in imports(path) if m == "escalate" or _outside(m)], leaf


def test_relative_and_late_imports_are_resolved(tmp_path, monkeypatch):
    """The check sees `from ... import tickets` inside a function, `from ...notify import x`, and
    lets `from ..registry import action` and `from .. import clocks` through."""
    source = PACKAGE / "rules" / "actions" / "sample.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: (
        "from ..registry import action\nfrom .. import clocks\nfrom ... import clock\n"
        "def run():\n    from ... import tickets\n    from ...notify import queue_breach_alert\n"
        "    import escalate.db\n"))
    found = [module for _, module in imports(source) if _outside(module)]
    assert found == ["escalate.tickets", "escalate.notify", "escalate.notify.queue_breach_alert", "escalate.db"]
