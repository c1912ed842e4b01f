"""How the CLI prints: JSON for machines, a readable table for people."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator, Sequence

import click
from rich.console import Console
from rich.table import Table

from medcoder import plugins


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def emit_table(rows: Iterable[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> None:
    table = Table(title=title, show_lines=False)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in columns))
    Console().print(table)


def emit_pairs(pairs: Iterable[tuple[str, Any]], title: str | None = None) -> None:
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in pairs:
        table.add_row(key, _cell(value))
    Console().print(table)


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
