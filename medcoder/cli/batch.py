"""`medcoder batch`: code a folder or JSONL of notes into a JSONL file, resumably."""

from __future__ import annotations

import click

from medcoder.cli.output import emit_pairs


@click.command()
@click.argument("input_path", metavar="INPUT")
@click.option("--out", "-o", required=True, help="JSONL file of results; an existing one is resumed.")
@click.option("--workflow", "-w", default="full", show_default=True, help="icd10cm, atc, full, or a YAML file.")
@click.option("--model", "-m", default=None, help="default, test, fake, or a GGUF path.")
@click.option(
    "--workers",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Worker processes, each with its own model instance (local engine).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: worker processes on this machine; ray: a Ray actor pool, one model per actor.",
)
@click.option(
    "--address",
    default=None,
    metavar="auto|HOST:PORT|ray://HOST:PORT",
    help="Ray cluster to join (auto: the one this machine belongs to); left out, a private local Ray.",
)
@click.option("--actors", default=2, show_default=True, type=click.IntRange(1, 4096), help="Ray actors.")
@click.option(
    "--gpus-per-actor",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 64),
    help="GPUs Ray reserves for each actor (1: one model per GPU; 0.5: two per GPU).",
)
@click.option(
    "--cpus-per-actor",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0.01, 512),
    help="CPUs Ray reserves for each actor; also its llama.cpp threads unless n_threads is set.",
)
@click.option(
    "--allow-code",
    is_flag=True,
    help="Run a workflow YAML that names Python callables (module:callable), not only installed agents.",
)
@click.option(
    "--suffix",
    "suffixes",
    multiple=True,
    default=(".txt",),
    show_default=True,
    help="Which files of a folder are notes (repeatable: --suffix .txt --suffix .md).",
)
def batch(
    input_path: str,
    out: str,
    workflow: str,
    model: str | None,
    workers: int,
    engine: str,
    address: str | None,
    actors: int,
    gpus_per_actor: float,
    cpus_per_actor: float,
    allow_code: bool,
    suffixes: tuple[str, ...],
) -> None:
    """Code every note in INPUT (a folder of text files or a JSONL of {id, text}) into --out.

    `--engine ray` spreads the notes over a Ray actor pool (`ray start --head` on one machine, then
    `--address auto`); the output is the same. Killed or crashed? Run the same command again: notes
    already in --out are skipped, none is written twice. A bad note (empty, binary, too long) becomes an error
    line and the batch goes on."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.batch import BatchSummary, RayOptions, code_batch, iter_inputs
    from medcoder.engine.spec import load_spec, require_code_allowed  # deferred: CLI start-up
    from medcoder.engine.workflow import load_workflow  # deferred: CLI start-up (`medcoder --help` < 1 s)

    if engine == "ray" and workers > 1:
        raise click.UsageError("--workers is for the local engine; with --engine ray, use --actors")
    require_code_allowed(load_spec(workflow)[0], allow_code)
    items = list(iter_inputs(input_path, suffixes))
    with (
        load_workflow(workflow, model=model) as wf,
        Progress(
            TextColumn("coding"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} notes/min"),
            TextColumn("{task.fields[errors]} errors"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
        ) as bar,
    ):
        task = bar.add_task("batch", total=len(items), rate="-", errors=0)

        def progress(s: BatchSummary) -> None:
            d = s.to_dict()
            bar.update(task, completed=s.skipped + s.finished, rate=d["notes_per_minute"] or "-", errors=s.errors)

        ray = RayOptions(address, actors, gpus_per_actor, cpus_per_actor) if engine == "ray" else None
        summary = code_batch(wf, items, out, workers=workers, progress=progress, engine=engine, ray=ray)
    emit_pairs(list(summary.to_dict().items()), title="batch")
