"""`medcoder audit`: list runs, tell one step by step, verify its chain, export, report, replay."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click

from medcoder.audit.events import describe
from medcoder.cli.output import emit_json, emit_table

store_option = click.option(
    "--store",
    "store_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Audit store (default $MEDCODER_HOME/audit.sqlite).",
)


def _store(path: str | None) -> Any:
    from medcoder import audit  # deferred: CLI start-up (`medcoder --help` < 1 s)

    return audit.open(path)


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if ts else ""


@click.group(name="audit")
def audit_group() -> None:
    """Read the audit trail: every step of every run, hash-chained."""


@audit_group.command(name="list")
@store_option
@click.option("-n", "--limit", default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def list_(store_path: str | None, limit: int, as_json: bool) -> None:
    """The most recent runs."""
    runs = _store(store_path).runs(limit)
    rows = [
        {
            "run_id": r.run_id,
            "created": _when(r.created),
            "workflow": r.workflow,
            "status": r.status,
            "events": r.n_events,
            "codes": len((r.result or {}).get("codes", [])),
        }
        for r in runs
    ]
    if as_json:
        return emit_json(rows)
    emit_table(rows, ["run_id", "created", "workflow", "status", "events", "codes"])


@audit_group.command()
@click.argument("run_id")
@store_option
def show(run_id: str, store_path: str | None) -> None:
    """A run as a readable step-by-step story."""
    store = _store(store_path)
    info = store.run(run_id)
    click.echo(f"run {info.run_id}: workflow {info.workflow}, {info.status}, created {_when(info.created)}")
    for ev in store.events(info.run_id):
        click.echo(describe(ev))


@audit_group.command()
@click.argument("run_id")
@store_option
def verify(run_id: str, store_path: str | None) -> None:
    """Recompute the hash chain; exit 1 naming the first changed, inserted or deleted event."""
    result = _store(store_path).verify(run_id)
    if result.ok:
        click.echo(f"run {result.run_id}: ok, {result.events} events, chain intact")
        return
    click.echo(f"run {result.run_id}: FAILED at event {result.first_bad}: {result.reason}", err=True)
    raise SystemExit(1)


@audit_group.command()
@click.argument("run_id")
@store_option
@click.option("--jsonl", "fmt", flag_value="jsonl", default=True, help="One JSON event per line (the default).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="File to write (default stdout).")
def export(run_id: str, store_path: str | None, fmt: str, out: str | None) -> None:
    """The run's record and events as JSON lines."""
    store = _store(store_path)
    info = store.run(run_id)
    lines = [json.dumps({"run": info.to_dict()}, ensure_ascii=False)]
    lines += [json.dumps(ev.to_dict(), ensure_ascii=False) for ev in store.events(info.run_id)]
    text = "\n".join(lines) + "\n"
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


@audit_group.command()
@click.argument("run_id")
@store_option
@click.option("--html", "fmt", flag_value="html", default=True, help="A self-contained HTML page (the default).")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None, help="Default: run-<id>.html")
def report(run_id: str, store_path: str | None, fmt: str, out: str | None) -> None:
    """One HTML page: highlighted evidence, the path with probabilities, the critic, timings."""
    from medcoder.audit.report import render_run  # deferred: CLI start-up (`medcoder --help` < 1 s)

    store = _store(store_path)
    info = store.run(run_id)
    path = Path(out or f"run-{info.run_id}.html")
    path.write_text(render_run(store, info.run_id), encoding="utf-8")
    click.echo(str(path))


@audit_group.command()
@click.argument("run_id")
@store_option
@click.option("--json", "as_json", is_flag=True)
def replay(run_id: str, store_path: str | None, as_json: bool) -> None:
    """Re-run the workflow with the recorded model answers (no model loaded); exit 1 if a code differs."""
    from medcoder.engine.replay import replay_run  # deferred: loads the engine (LangGraph) only when replaying

    rep = replay_run(_store(store_path), run_id)
    if as_json:
        emit_json(rep.to_dict())
    else:
        click.echo(
            f"run {rep.run_id}: {'codes match' if rep.match else 'codes DIFFER'} "
            f"({len(rep.replayed)} replayed, {len(rep.original)} recorded)"
        )
        for c in rep.missing:
            click.echo(f"  missing in replay: {c}")
        for c in rep.extra:
            click.echo(f"  extra in replay:   {c}")
    if not rep.match:
        raise SystemExit(1)
