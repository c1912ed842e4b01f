"""`medcoder eval` and `medcoder bench`: how good and how fast medcoder is, measured the same way every time."""

from __future__ import annotations

import click

from medcoder.cli.output import emit_json, emit_table, progress_bar


@click.command("eval")
@click.option(
    "--dataset", "-d", required=True, help="A CodiEsp split folder, a DPD .tsv/.csv, or a JSONL of {id, text, codes}."
)
@click.option("--workflow", "-w", default=None, help="Default: icd10cm for notes, atc for drug products.")
@click.option("--model", "-m", default=None, help="default, test, fake, or a GGUF path.")
@click.option("--limit", "-n", type=int, default=None, help="Only the first N items.")
@click.option(
    "--strategy",
    "strategies",
    multiple=True,
    type=click.Choice(["retrieval", "flat", "tree", "memory", "ranked-nomodel", "ranked"]),
    help="Strategies to compare (default: retrieval, memory, ranked-nomodel, ranked; DPD: retrieval, flat, "
    "tree). memory and ranked-nomodel alone load no model.",
)
@click.option("--ranker", default="builtin", show_default=True, help="Ranker folder for memory/ranked-nomodel.")
@click.option(
    "--system",
    default=None,
    help="For a JSONL coded in several systems: which one to score (default "
    "icd10cm; atc scores the notes' drug codes).",
)
@click.option("--out", "out_dir", default="eval-results", show_default=True, help="Folder for eval.json and eval.html.")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_command(
    dataset: str,
    workflow: str | None,
    model: str | None,
    limit: int | None,
    strategies: tuple[str, ...],
    ranker: str,
    system: str | None,
    out_dir: str,
    as_json: bool,
) -> None:
    """Score the coding strategies on a dataset, all on the same notes in one run."""
    from medcoder.evaluation.runner import evaluate  # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.evaluation.strategies import DEFAULT_STRATEGIES  # deferred: CLI start-up (`medcoder --help` < 1 s)

    with progress_bar("evaluating") as advance:
        report = evaluate(
            dataset,
            workflow,
            model,
            limit,
            out_dir,
            tuple(strategies) or DEFAULT_STRATEGIES,
            progress=lambda _stage, done, total: advance(done, total),
            ranker=ranker,
            system=system,
        )
    if as_json:
        return emit_json(
            {k: r["metrics"] for k, r in report["systems"].items()} if "systems" in report else report["metrics"]
        )
    for system, sub in (report.get("systems") or {"": report}).items():
        _print_report(sub)
    click.echo(
        f"wrote {out_dir}/"
        + ("{" + ",".join(report["systems"]) + "}/" if "systems" in report else "")
        + "eval.json and eval.html"
    )


def _print_report(report: dict) -> None:
    """One system's metrics as the tables a reader scans: strategies side by side, then what a coder would fix."""
    for name, why in (report.get("skipped") or {}).items():
        click.echo(f"strategy {name} left out: {why}")
    if report["dataset"]["layout"] == "dpd":
        rows = [
            {
                "field/strategy": k,
                "exact L5": v["exact_match"],
                **{k2: v2 for k2, v2 in v["exact_match_by_level"].items()},
                "L5 in file": v.get("exact_match_in_file", ""),
                "s/item": v["cost_per_item"]["seconds"],
            }
            for k, v in report["metrics"].items()
        ]
        emit_table(rows, list(rows[0]) if rows else [], title=report["dataset"]["name"])
        for fld, kinds in (report.get("misses") or {}).items():
            click.echo(
                f"misses from the {fld}: " + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in sorted(kinds.items()))
            )
    else:
        rows = [
            {
                "strategy": s,
                "micro F1": m["micro"]["f1"],
                "P": m["micro"]["precision"],
                "R": m["micro"]["recall"],
                "macro F1": m["macro"]["f1"],
                "category F1": m["category_micro"]["f1"],
                "MAP": m["map"],
                "ECE": (m.get("calibration") or {}).get("ece", ""),
                "s/note": m["cost_per_note"]["seconds"],
                "calls/note": m["cost_per_note"]["model_calls"],
            }
            for s, m in report["metrics"].items()
        ]
        emit_table(rows, list(rows[0]) if rows else [], title=report["dataset"]["name"])
        who = "a pharmacist" if report["dataset"].get("system") == "atc" else "a coder"
        for s, m in report["metrics"].items():
            if m.get("fixes"):
                click.echo(
                    f"{s}, what {who} would fix: "
                    + ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in sorted(m["fixes"].items()))
                )


@click.command()
@click.option(
    "--notes",
    "-d",
    "notes_path",
    default=None,
    help="A folder of notes or JSONL of {id, text} (default: the bundled examples).",
)
@click.option("--model", "-m", "models", multiple=True, help="Models to measure (default: test and default).")
@click.option("--workflow", "-w", default="icd10cm", show_default=True)
@click.option("--limit", "-n", type=int, default=2, show_default=True, help="Notes per model.")
@click.option("--out", "out_file", default="bench.json", show_default=True, help="JSON file of results.")
def bench(notes_path: str | None, models: tuple[str, ...], workflow: str, limit: int, out_file: str) -> None:
    """Notes per minute, model calls per code, prompt tokens and prefix-cache reuse, orchestration overhead."""
    from medcoder.evaluation.bench import run_bench  # deferred: CLI start-up (`medcoder --help` < 1 s)

    with progress_bar("benchmarking") as advance:
        result = run_bench(
            notes_path,
            models or ("test", "default"),
            workflow,
            limit,
            out_file,
            progress=lambda _stage, done, total: advance(done, total),
        )
    emit_table(
        [{"model": k, **v} for k, v in result["models"].items()],
        [
            "model",
            "notes",
            "notes_per_minute",
            "model_calls_per_code",
            "prompt_tokens_per_note",
            "prefix_reuse",
            "orchestration_share",
        ],
        title=f"bench ({workflow})",
    )
    click.echo(f"wrote {out_file}")
