"""Who may change a ticket's status or its escalation ladders: only the ticket state machine
(the package tickets/: lifecycle.py with its transition table, ladders.py for the ladder rows, and
the modules that act on tickets through them: audit, incidents, commands, replies) and the store
itself (store/: db, models, migrations). Anywhere else a status or ladder write would go around the transition table and its
audit events, so this test reads every module's source and fails on one.

What counts as such a write, read from the syntax tree (a type checker would know more; these are
the shapes the code uses):
  - an assignment to `<ticket>.status` (a name that says it is a ticket),
  - `Ticket.update(status=…)` / `Ticket.update({Ticket.status: …})`, `rows.update(<ticket>, "status", …)`,
  - `Escalation.create/insert/insert_many/update/delete/replace…`, and `rows.create/insert/insert_many/
    insert_returning/unsaved(Escalation, …)`, `rows.update(<escalation or ladder>, …)`, `<escalation>.save()`,
  - SQL text that updates the ticket's status or writes the escalation table.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "daemon" / "escalate"

# the ticket state machine and the store
OWNERS = {"tickets", "store"}

# anything else that matches, with the reason it is no write
ALLOWED = {
    # replays a ticket's audit events on an in-memory copy (simulate._Ticket) to answer "what if
    # these rules had been in force": nothing is stored
    "reports/simulate.py": "in-memory replay",
}

_ESCALATION_WRITES = {"create", "insert", "insert_many", "insert_from", "update", "delete", "delete_by_id",
                      "replace", "replace_many", "bulk_create", "bulk_update", "get_or_create"}
_ROW_WRITES = {"create", "insert", "insert_many", "insert_returning", "unsaved"}
_SQL = re.compile(r'(UPDATE\s+"?ticket"?\s+SET[^;]*"?status"?\s*=)|((INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?escalation"?\b)',
                  re.IGNORECASE)


def _name(node: ast.AST) -> str:
    return node.id.lower() if isinstance(node, ast.Name) else ""


def _is_ticket(node: ast.AST) -> bool:
    return "ticket" in _name(node)


def _is_ladder_row(node: ast.AST) -> bool:
    return any(word in _name(node) for word in ("escalation", "ladder"))


def _status_key(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and node.value == "status") or (
        isinstance(node, ast.Attribute) and node.attr == "status" and _name(node.value) == "ticket")


def writes(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in (target.elts if isinstance(target, ast.Tuple) else [target]):
                    if isinstance(part, ast.Attribute) and part.attr == "status" and _is_ticket(part.value):
                        found.append((node.lineno, f"assigns {ast.unparse(part)}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, method = node.func.value, node.func.attr
            if isinstance(owner, ast.Name) and owner.id == "Ticket" and method == "update":
                keys = [k.arg for k in node.keywords] + [k for a in node.args if isinstance(a, ast.Dict) for k in a.keys]
                if any(k == "status" or (k is not None and not isinstance(k, str) and _status_key(k)) for k in keys):
                    found.append((node.lineno, "Ticket.update(status=…)"))
            elif isinstance(owner, ast.Name) and owner.id == "Escalation" and method in _ESCALATION_WRITES:
                found.append((node.lineno, f"Escalation.{method}(…)"))
            elif _name(owner) == "rows" and node.args:
                first = node.args[0]
                if method in _ROW_WRITES and isinstance(first, ast.Name) and first.id == "Escalation":
                    found.append((node.lineno, f"rows.{method}(Escalation, …)"))
                elif method == "update" and (_is_ladder_row(first) or (
                        _is_ticket(first) and any(_status_key(a) for a in node.args[1:]))):
                    found.append((node.lineno, f"rows.update({ast.unparse(first)}, …)"))
            elif method == "save" and _is_ladder_row(owner):
                found.append((node.lineno, f"{ast.unparse(owner)}.save()"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.search(node.value):
            found.append((node.lineno, "SQL writing a ticket's status or the escalation table"))
    return found


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in OWNERS or str(relative) in ALLOWED:
            continue
        yield relative, ast.parse(path.read_text(), str(path))


def test_only_the_ticket_state_machine_writes_status_and_ladders():
    offences = [f"{relative}:{line}: {what}" for relative, tree in _modules() for line, what in writes(tree)]
    assert not offences, ("ticket status and escalation ladder rows are written through tickets.py / "
                          "ladders.py only:\n" + "\n".join(offences))


def test_the_check_sees_each_kind_of_write():
    """The shapes above are recognised (a convention test that matches nothing would always pass)."""
    source = '''
ticket.status = "open"
t_ticket.status, other = "closed", 1
Ticket.update(status="closed").where(Ticket.id == 1).execute()
Ticket.update({Ticket.status: "closed"}).execute()
rows.update(ticket, "status", "updated_at")
Escalation.create(ticket=ticket)
Escalation.update(state="ended").execute()
rows.insert(Escalation, {})
rows.insert_returning(Escalation, [], "id")
rows.update(escalation, "state")
ladder_row.save()
rows.select('UPDATE "ticket" SET "status" = ? WHERE "id" = ?', [])
rows.select('INSERT INTO "escalation" ("ticket_id") VALUES (?)', [])
'''
    assert len(writes(ast.parse(source))) == 13
    harmless = '''
row.status = "sent"
Outbox.update(status="failed").execute()
rows.update(ticket, "severity", "next_due_at")
Escalation.select().where(Escalation.ticket == 1)
rows.select('UPDATE "ticket" SET "next_due_at" = ? WHERE "status" IN (?)', [])
'''
    assert writes(ast.parse(harmless)) == []
