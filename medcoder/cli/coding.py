"""`medcoder code`, `medcoder validate`, `medcoder graph`: run, check and draw workflows."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.text import Text

from medcoder.cli.output import Cell, print_table
from medcoder.engine.spec import code_nodes, load_spec
from medcoder.notetext import apart, snippet
from medcoder.result import CodingResult


def _read_input(note: str) -> bytes:
    if note == "-":
        return sys.stdin.buffer.read()
    try:
        with open(note, "rb") as fh:
            return fh.read()
    except IsADirectoryError:
        raise click.UsageError(f"{note} is a folder; `medcoder batch` codes folders") from None
    except OSError as exc:
        raise click.UsageError(f"cannot read {note}: {exc.strerror}") from None


def print_result(result: CodingResult) -> None:
    console = Console()
    rows: list[list[Cell]] = []
    for c in result.codes:
        ev = Text()
        shown = [c.evidence[i] for i in apart((e.start, e.end) for e in c.evidence)]
        for i, e in enumerate(shown):
            before, span, after = snippet(result.note, e.start, e.end)
            ev.append(("\n" if i else "") + before)
            ev.append(span, style="bold yellow")
            ev.append(after)
        rows.append([c.code, c.system, c.label, f"{c.confidence:.2f}", ev, c.verdict.decision])
    print_table(
        ("code", "system", "label", "conf.", "evidence", "critic"),
        rows,
        title=f"run {result.run_id} ({result.workflow})",
        console=console,
    )
    s = result.stats
    console.print(
        f"{len(result.entities)} entities, {s.get('model_calls', 0)} model calls, "
        f"{s.get('seconds', 0)} s; `medcoder audit show {result.run_id}` tells how each code was chosen"
    )


@click.command()
@click.argument("note")
@click.option("--workflow", "-w", default="full", show_default=True, help="icd10cm, atc, full, or a YAML file.")
@click.option("--model", "-m", default=None, help="default, test, or a GGUF path (overrides the workflow's).")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv", "fhir"]), default="table", show_default=True
)
@click.option("--run-id", default=None, help="Resume this run, or name a new one.")
def code(note: str, workflow: str, model: str | None, fmt: str, run_id: str | None) -> None:
    """Code one NOTE (a text file, or - for stdin)."""
    from medcoder.engine.workflow import load_workflow  # deferred: CLI start-up (`medcoder --help` < 1 s)

    data = _read_input(note)
    with load_workflow(workflow, model=model) as wf:
        result = wf.run(data, run_id=run_id)
    if fmt == "json":
        click.echo(result.to_json())
    elif fmt == "csv":
        click.echo(result.to_csv(), nl=False)
    elif fmt == "fhir":
        click.echo(json.dumps(result.to_fhir(), indent=2))
    else:
        print_result(result)


@click.command()
@click.argument("workflow")
def validate(workflow: str) -> None:
    """Check a workflow YAML (or a built-in name); exit 1 naming the file, line and field of the first problem."""
    spec, _ = load_spec(workflow)
    click.echo(f"{workflow}: ok ({spec.name}: {len(spec.nodes)} nodes, {len(spec.edges)} edges)")
    for node in code_nodes(spec):
        click.echo(
            f"{workflow}: node {node.id} runs Python code ({node.agent}): this YAML is code, like a plugin; "
            "`medcoder serve` and `medcoder batch` run it only with --allow-code"
        )


@click.command()
@click.argument("workflow")
@click.option("--mermaid", "fmt", flag_value="mermaid", default=True, help="Print a mermaid flowchart.")
def graph(workflow: str, fmt: str) -> None:
    """Draw a workflow's graph (every node and edge) without loading a model."""
    import tempfile

    from medcoder.engine.workflow import Workflow  # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.llm import FakeLLM  # deferred: CLI start-up (`medcoder --help` < 1 s)

    spec, text = load_spec(workflow)
    with tempfile.TemporaryDirectory() as tmp:
        wf = Workflow(
            spec, text, llms={name: FakeLLM() for name in spec.models}, checkpoint_path=f"{tmp}/c.sqlite", audit=None
        )
        click.echo(wf.mermaid())
        wf.close()
