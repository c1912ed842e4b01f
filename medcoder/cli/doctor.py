"""`medcoder doctor`: what is wrong with this installation, and the command that repairs each thing."""

from __future__ import annotations

import click

from medcoder.cli.output import emit_json

_MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


@click.command()
@click.option(
    "--only",
    multiple=True,
    type=click.Choice(["config", "home", "stores", "runtime", "models", "index"]),
    help="Run only these checks.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def doctor(only: tuple[str, ...], as_json: bool) -> None:
    """Check config, home folder, audit and checkpoint databases, models (sha256), llama.cpp and search indexes.

    Exit 1 when a check fails; each failure names the file and the fix."""
    from medcoder.doctor import run_checks  # deferred: CLI start-up (`medcoder --help` < 1 s)

    checks = run_checks(list(only) or None)
    failed = sum(c.status == "fail" for c in checks)
    if as_json:
        emit_json([c.to_dict() for c in checks])
    else:
        for c in checks:
            click.echo(f"{_MARK[c.status]} {c.name}: {c.detail}" + (f"\n      fix: {c.fix}" if c.fix else ""))
        click.echo(f"{len(checks)} checks, {failed} failed, {sum(c.status == 'warn' for c in checks)} warnings")
    if failed:
        raise SystemExit(1)
