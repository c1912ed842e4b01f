"""`medcoder batch`: code a folder or JSONL of notes into a JSONL file, resumably."""

from __future__ import annotations

import click

from medcoder.cli.output import emit_pairs


@click.command()
@click.argument("input_path", metavar="INPUT")
@click.option("--out", "-o", required=True, help="JSONL file of results; an existing one is resumed.")
@click.option("--workflow", "-w", default="full", show_default=True, help="icd10cm, atc, full, or a YAML file.")
@click.option("--model", "-m", default=None, help="default, test, fake, or a GGUF path.")
@click.option("--workers", "-j", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes, each with its own model instance.")
def batch(input_path: str, out: str, workflow: str, model: str | None, workers: int) -> None:
    """Code every note in INPUT (a folder of text files or a JSONL of {id, text}) into --out.

    Killed or crashed? Run the same command again: notes already in --out are skipped, none is
    written twice. A bad note (empty, binary, too long) becomes an error line and the batch goes on."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from medcoder.batch import BatchSummary, iter_inputs  # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.engine.workflow import load_workflow  # deferred: CLI start-up (`medcoder --help` < 1 s)

    items = list(iter_inputs(input_path))
    with load_workflow(workflow, model=model) as wf, Progress(
            TextColumn("coding"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]} notes/min"),
            TextColumn("{task.fields[errors]} errors"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True)) as bar:
        task = bar.add_task("batch", total=len(items), rate="-", errors=0)

        def progress(s: BatchSummary) -> None:
            d = s.to_dict()
            bar.update(task, completed=s.skipped + s.finished, rate=d["notes_per_minute"] or "-", errors=s.errors)

        summary = wf.run_batch(items, out, workers=workers, progress=progress)
    emit_pairs(list(summary.to_dict().items()), title="batch")
