"""How the CLI prints: JSON for machines, a readable table for people."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import click
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from medcoder import plugins


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def emit_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], title: str | None = None, key: int = 1) -> None:
    print_table(columns, [[_cell(row.get(c)) for c in columns] for row in rows], title=title, key=key)


def emit_pairs(pairs: Iterable[tuple[str, Any]], title: str | None = None) -> None:
    rows: list[list[Cell]] = [[key, _cell(value)] for key, value in pairs]
    print_table(["", ""], rows, title=title, show_header=False, styles=["bold", None])


# -- tables that fit ------------------------------------------------------------------------------------------
# A table printed to a pipe or a log file is 80 columns wide (rich's default when stdout is not a terminal), and
# rich fits a wide table by cutting cells with an ellipsis: `0.64…` for a micro-F1, `stra…` for a strategy. Every
# CLI table goes through `print_table`, which never lets that happen to a figure, a code or a name:
#   - a column whose every line is one short word (a number, a code, a digest, a run id, a strategy) is "whole":
#     its width is fixed at its widest value, so rich can never narrow it;
#   - any other column is text: it wraps at spaces and folds a word longer than the column, nothing is dropped;
#   - a table too wide for the console even so is split into several tables, one below the other, each
#     repeating the first `key` columns (what names the row), rather than cut.
WHOLE_MAX = 24  # the longest single word kept on one line (a sha256 is longer: it folds)
TEXT_MIN = 12  # the narrowest a text column gets before the table is split instead

Cell = str | Text


@dataclass
class _ColumnFit:
    whole: bool  # every line one word of at most WHOLE_MAX characters
    widest: int  # the widest line of its cells
    header: int  # the header on one line
    header_word: int  # the header's longest word (a header wraps at its spaces)
    text_min: int  # a text column: the narrowest it should be


def _plain(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


def _as_text(cell: Cell, highlight: Callable[[str], Text]) -> Text:
    return cell if isinstance(cell, Text) else highlight(cell)


def _fit_column(header: str, cells: Sequence[Cell]) -> _ColumnFit:
    lines = [line for cell in cells for line in _plain(cell).split("\n")]
    widest = max((cell_len(line) for line in lines), default=0)
    whole = all(cell_len(line) <= WHOLE_MAX and not any(ch.isspace() for ch in line) for line in lines)
    longest_word = max((cell_len(w) for line in lines for w in line.split()), default=0)
    header_len = cell_len(header)
    return _ColumnFit(
        whole=whole,
        widest=widest,
        header=header_len,
        header_word=max((cell_len(w) for w in header.split()), default=0),
        text_min=min(max(widest, header_len), max(TEXT_MIN, min(longest_word, WHOLE_MAX))),
    )


def _whole_width(fit: _ColumnFit, headers: int) -> int:
    """A whole column's width: its values, and the header on one line (0), wrapped at spaces (1) or folded (2)."""
    return max(1, fit.widest, (fit.header, fit.header_word, 0)[headers])


def _needed(fits: Sequence[_ColumnFit], headers: int) -> int:
    """The narrowest a table of these columns is: whole columns at full width, text columns at their minimum,
    plus rich's borders and padding (a rule each side of every column, one space of padding each side)."""
    content = sum(_whole_width(f, headers) if f.whole else f.text_min for f in fits)
    return content + 3 * len(fits) + 1


def _layout(fits: Sequence[_ColumnFit], key: int, width: int) -> tuple[list[list[int]], int]:
    """Which columns go in which table, and how headers of whole columns are laid out (see `_whole_width`)."""
    every = list(range(len(fits)))
    for headers in (0, 1):
        if _needed(fits, headers) <= width:
            return [every], headers
    key = min(max(key, 0), len(fits) - 1)
    keys, rest = every[:key], every[key:]
    for headers in (1, 2):
        groups: list[list[int]] = []
        for i in rest:
            if groups and _needed([fits[j] for j in keys + groups[-1] + [i]], headers) <= width:
                groups[-1].append(i)
            else:
                groups.append([i])
        if all(_needed([fits[j] for j in keys + g], headers) <= width for g in groups):
            return [keys + g for g in groups], headers
    return [every], 2  # narrower than any column: one table, rich folds what does not fit


def fit_tables(
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    title: str | None = None,
    *,
    width: int = 80,
    key: int = 1,
    show_header: bool = True,
    styles: Sequence[str | None] | None = None,
    highlight: Callable[[str], Text] = Text,
) -> list[Table]:
    """The tables that show ROWS within WIDTH columns without cutting a value (see the note above)."""
    fits = [_fit_column(name if show_header else "", [row[i] for row in rows]) for i, name in enumerate(columns)]
    groups, headers = _layout(fits, key, width) if columns else ([[]], 0)
    tables = []
    for n, group in enumerate(groups):
        name = title if n == 0 else f"{title} (continued)" if title else "(continued)"
        table = Table(title=name, show_header=show_header)
        for i in group:
            fit, style = fits[i], (styles[i] if styles else None) or ""
            if fit.whole:
                table.add_column(columns[i], width=_whole_width(fit, headers), overflow="fold", style=style)
            else:
                table.add_column(columns[i], overflow="fold", style=style)
        for row in rows:
            table.add_row(*(_as_text(row[i], highlight) for i in group))
        tables.append(table)
    return tables


def print_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Cell]],
    title: str | None = None,
    *,
    console: Console | None = None,
    key: int = 1,
    show_header: bool = True,
    styles: Sequence[str | None] | None = None,
) -> None:
    """Print ROWS (strings are shown as they are, never read as rich markup) on CONSOLE (default: stdout), as
    wide as the console: 80 columns in a pipe or a log file, COLUMNS if set; numbers and codes are never cut."""
    console = console or Console()

    def highlight(value: str) -> Text:
        return console.render_str(value, markup=False, emoji=False)

    for table in fit_tables(
        columns,
        rows,
        title,
        width=console.width,
        key=key,
        show_header=show_header,
        styles=styles,
        highlight=highlight,
    ):
        console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return "\n".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return "\n".join(f"{k}: {_cell(v)}" for k, v in value.items())
    return str(value)


@contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr with rate and ETA; yields `advance(done, total)`."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:  # a log file or CI: a plain line every 10%, not a bar drawn once at the end
        import time

        start, shown = time.time(), [-1]

        def log_line(done: int, total: int) -> None:
            step = int(10 * done / total) if total else 0
            if step > shown[0]:
                shown[0] = step
                elapsed = time.time() - start
                rate = done / elapsed if done and elapsed > 0.05 else 0.0
                eta = (total - done) / rate if rate else 0
                # slow stages (a fold of the ranker takes a minute) read better as seconds per item
                speed = f"{rate:.1f}/s" if rate >= 1 else (f"{1 / rate:.0f} s each" if rate else "starting")
                click.echo(f"{label}: {done}/{total} ({10 * step}%), {speed}, ETA {eta:.0f} s", err=True)

        yield log_line
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


DEFAULT_SYSTEM = plugins.DEFAULT_SYSTEM  # what --system defaults to; the registry lists the rest


def installed_system(ctx: click.Context, param: click.Parameter, value: str | tuple[str, ...]) -> str | tuple[str, ...]:
    """Check a --system value against the installed code systems (entry points), naming them when wrong."""
    from medcoder.knowledge.systems import system_names  # deferred: CLI start-up (`medcoder --help` < 1 s)

    names = system_names()
    for v in (value,) if isinstance(value, str) else value:
        if v not in names:
            raise click.BadParameter(f"{v!r} is not an installed code system; choose from {', '.join(names)}")
    return value
