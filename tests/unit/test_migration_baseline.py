"""The baseline migration is one SQL text for both dialects; what it runs on each must stay exactly
the SQL of the two per-dialect files it replaced (kept in tests/data/migrations as they shipped),
or databases adopted from before migrations would get another schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from escalate.store import migrations

SHIPPED = Path(__file__).parent.parent / "data" / "migrations"


def shipped_statements(dialect: str) -> list[str]:
    """The statements the shipped `0001_baseline.<dialect>.sql` ran, split as migrations split them then."""
    text = (SHIPPED / f"0001_baseline.{dialect}.sql").read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    return [statement.strip().rstrip(";") for statement in body.split(";\n") if statement.strip()]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_baseline_runs_exactly_the_statements_that_shipped_for_each_dialect(dialect):
    rendered = migrations.sql_statements("0001_baseline", dialect)
    shipped = shipped_statements(dialect)
    assert len(shipped) == 39  # 10 tables and their 29 indexes
    for number, (got, expected) in enumerate(zip(rendered, shipped), start=1):
        assert got == expected, f"statement {number} differs"
    assert len(rendered) == len(shipped)

