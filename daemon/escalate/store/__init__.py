"""The database layer: the connection (`db`: SQLite or PostgreSQL, `durability`: the SQLite commit
modes), the models and migrations, the unit of work a batch writes in (`batch`), fast row reads and
writes without the query builder (`rows`), private file modes (`private`), and every hand-written
SQL text, as a named constant beside the function that runs it.

For the SQL, one module per aggregate, by the table a statement reads: `messages` (stored mail and its
attachments), `tickets` (with their audit trail and ladder rows), `outbox` (notifications and their
deliveries), `incidents`.
Callers ask a question (`messages.dedupe_key_exists(key)`), never pass SQL.

Placeholders are written one way, `?` (SQLite's own), and never formatted in at call time: the
statement reads as the SQL that runs, a `%` in a LIKE pattern is written as SQL writes it, and
on PostgreSQL the database object translates `?` to the driver's `%s` in one place as it executes
(db.PortablePostgresqlDatabase). A list of values is the one thing filled in per call:
`IN ({marks})`, with `marks(n)`.
"""

from __future__ import annotations


def marks(count: int) -> str:
    """`?, ?, …` for an IN list of `count` values."""
    return ", ".join("?" * count)
