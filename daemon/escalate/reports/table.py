"""The one table style of every listing a person reads (`tickets list`, `outbox list`,
`quarantine list`, `chat list`, `rules matrix`, `status`, `report`, `drill report`, …).

Title Case headings over a rule, columns three spaces apart, counts right-aligned, "-" for
nothing, and every time in the team's zone with its abbreviation ("2026-11-02 10:00 CET").
rich fits a table to the terminal and wraps its last column instead of cutting it; piped, it
writes plain text at a fixed width with no colour codes. A listing longer than RICH_ROWS is
written a row at a time in the same look (rich lays a table out whole, ~1 ms a row), sized by its
first rows, so it costs what the rows do and holds none of them. Scripts use `--json` instead.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from escalate.clock import shown_iso

PIPE_WIDTH = 140  # columns when the output is not a terminal (COLUMNS overrides)
RICH_ROWS = 200  # a table rich lays out whole; a longer listing is streamed in the same look
GAP = "   "  # rich's padding either side of SIMPLE_HEAD's blank column divider
RULE = "─"


def console() -> Console:
    """A console on the current stdout (click's test runner swaps it), sized for a terminal or a pipe."""
    stream = sys.stdout
    terminal = stream.isatty()
    if terminal:
        width = shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    else:
        width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else PIPE_WIDTH
    # markup off: a subject such as "[urgent] down" is text, never a style tag
    return Console(file=stream, width=width, highlight=False, emoji=False, markup=False, no_color=not terminal,
                   force_terminal=terminal, soft_wrap=False)


def new(title: str | None, *columns: str, right: Iterable[str] = (), wrap: Iterable[str] = ()) -> Table:
    """An empty table in the one style; only the last column and those in `wrap` may wrap, so
    references, times and counts stay on one line each."""
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False)
    right, wrap = set(right), set(wrap) | {columns[-1]}
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold",
                         no_wrap=column not in wrap, min_width=20 if column == columns[-1] and len(columns) > 3 else None)
    return table


def text(value: Any) -> str:
    """A cell: "-" for nothing."""
    return "-" if value is None or value == "" else str(value)


def when(value: str | None) -> str:
    """An ISO time (as the JSON views carry it) as the team reads it, "2026-11-02 10:00 CET", or "-"."""
    return shown_iso(value)


@dataclass(frozen=True)
class Column:
    """One column of a listing of dicts: its heading, how a row gives its cell, how it aligns."""

    title: str
    key: str | Callable[[dict[str, Any]], Any]
    right: bool = False  # counts and ids
    time: bool = False  # an ISO time, shown in the team's zone
    wrap: bool = False  # may wrap (the last column always may)

    def cell(self, row: dict[str, Any]) -> str:
        value = self.key(row) if callable(self.key) else row.get(self.key)
        if self.time:
            return when(value)
        return " ".join(text(value).split())  # one line: a subject's line breaks become spaces


def show(rows: Iterable[dict[str, Any]], columns: Sequence[Column], *, title: str | None = None,
         empty: str = "None.", total: int | None = None, noun: str = "rows", more: str = "") -> int:
    """Print rows of dicts as the one table; `empty` when there are none; "Showing N of TOTAL
    <noun>" with `more` (how to see the rest) when a limit left some out. Returns how many were shown."""
    out = console()
    rows = iter(rows)
    first = list(itertools.islice(rows, RICH_ROWS + 1))
    if not first:
        out.print(Text(f"{title}: none" if title else empty, style="bold" if title else ""))
        return 0
    if len(first) > RICH_ROWS:
        shown = _stream(itertools.chain(first, rows), columns, title)
    else:
        table = new(title, *(c.title for c in columns), right=[c.title for c in columns if c.right],
                    wrap=[c.title for c in columns if c.wrap])
        for row in first:
            table.add_row(*(c.cell(row) for c in columns))
        out.print(table)
        shown = len(first)
    if total is not None and total > shown:
        out.print(f"Showing {shown} of {total} {noun}; {more or 'use --limit 0 for all'}.")
    return shown


def facts(pairs: Iterable[tuple[str, Any]]) -> None:
    """Label and value, one pair a line (one ticket, one mail): the table without headings."""
    table = new(None, "", "")
    table.show_header = False
    for label, value in pairs:
        table.add_row(label, text(value))
    console().print(table)


def _stream(rows: Iterable[dict[str, Any]], columns: Sequence[Column], title: str | None) -> int:
    """The same look as rich's table, a line written as each row comes; returns how many."""
    write = sys.stdout.write
    rows = iter(rows)
    head = [tuple(c.cell(row) for c in columns) for row in itertools.islice(rows, RICH_ROWS)]
    widths = [max(len(c.title), *(len(cells[i]) for cells in head)) for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        fitted = [cell.rjust(width) if column.right else cell.ljust(width)
                  for cell, width, column in zip(cells[:-1], widths, columns)]
        return GAP.join([*fitted, cells[-1]]).rstrip() + "\n"

    if title:
        write(title + "\n")
    write(line([c.title for c in columns]))
    write(RULE * (sum(widths) + len(GAP) * (len(widths) - 1)) + "\n")
    count = 0
    for cells in itertools.chain(head, (tuple(c.cell(row) for c in columns) for row in rows)):
        write(line(cells))
        count += 1
    return count
