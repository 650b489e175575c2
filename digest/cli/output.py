"""Where the CLI prints: tables and results to stdout, errors to stderr, one line each.

Piped into a file or another program, output is not cut to 80 columns (rich's default when
it cannot ask a terminal): tables get the width they need, and lines are never wrapped.
"""
from __future__ import annotations

import json
import re
import sys

from rich.console import Console
from rich.table import Table

WIDE = 10_000  # columns when not writing to a terminal: tables take what they need, no more


def _console(stream) -> Console:
    tty = stream.isatty()
    return Console(file=stream, width=None if tty else WIDE, soft_wrap=not tty)


_current: tuple = (None, None)


def stdout_console() -> Console:
    """The console of the current sys.stdout (test runners swap it after import)."""
    global _current
    if _current[0] is not sys.stdout:
        _current = (sys.stdout, _console(sys.stdout))
    return _current[1]


class _Stdout:
    def __getattr__(self, name):
        return getattr(stdout_console(), name)


console = _Stdout()
err = Console(stderr=True, soft_wrap=True, highlight=False)

FORMATS = ("table", "tsv", "json")
_CELL = re.compile(r"[\t\r\n]+")


def error_line(message: str) -> None:
    """A problem for the user, one line per line of `message`, never wrapped."""
    for line in str(message).splitlines() or [""]:
        err.print(f"[red]error:[/red] {line}" if err.is_terminal else f"error: {line}",
                  markup=err.is_terminal, highlight=False, soft_wrap=True)


def emit(rows: list[dict], *, fmt: str = "table", title: str | None = None, right: tuple[str, ...] = ()) -> None:
    """Rows of one shape as a table (people), TSV or JSON (scripts)."""
    columns = list(rows[0]) if rows else []
    if fmt == "json":
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, default=str) + "\n")
        return
    if fmt == "tsv":  # one line per row; tabs and line breaks inside a value become spaces
        lines = ["\t".join(columns)]
        for row in rows:
            lines.append("\t".join(_CELL.sub(" ", "" if v is None else str(v)) for v in row.values()))
        sys.stdout.write("\n".join(lines) + "\n")
        return
    table = Table(title=title)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(table)
