"""`medcoder learn`: a memory and a calibrated ranker from coded notes (and coders' feedback)."""

from __future__ import annotations

from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

import click

from medcoder.cli.output import DEFAULT_SYSTEM, emit_table, installed_system, progress_bar


@contextmanager
def stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """One progress bar per stage (memory folds, retrieval, verifier), each with its own rate and ETA."""
    with ExitStack() as stack:
        current: dict[str, Callable[[int, int], None]] = {}

        def advance(stage: str, done: int, total: int) -> None:
            if stage not in current:
                current.clear()
                current[stage] = stack.enter_context(progress_bar(f"learning: {stage}"))
            current[stage](done, total)

        yield advance


@click.command("learn")
@click.argument("datasets", nargs=-1)
@click.option(
    "--system",
    default=DEFAULT_SYSTEM,
    show_default=True,
    callback=installed_system,
    help="The code system the dataset is coded in.",
)
@click.option("--out", "out_dir", required=True, help="Folder to write the ranker into (a workflow names it).")
@click.option("--feedback", "feedback", multiple=True, help="Feedback JSONL from review sessions (repeatable).")
@click.option(
    "--audit", "audit_path", default=None, help="Audit store holding the sessions' notes (default: the home's)."
)
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20))
@click.option("--limit", "-n", type=int, default=None, help="Only the first N notes of the dataset.")
@click.option("--cache", "cache_path", default=None, help="Retrieval cache file (default: OUT/retrieval-cache.jsonl).")
@click.option("--verifier-model", default=None, help="Also learn how much this model's yes/no judgement should count.")
@click.option("--verifier-notes", default=40, show_default=True, help="Training notes the verifier judges.")
@click.option(
    "--from-workspace",
    is_flag=True,
    help="Learn from the notes coders decided on in this home's web workspace (DATASETS, if given, too); hold a "
    "slice back and write a before/after report (report.html) comparing the ranker in use with the new one.",
)
@click.option("--adopt", is_flag=True, help="With --from-workspace: use the new ranker if it is not worse.")
def learn_command(
    datasets: tuple[str, ...],
    system: str,
    out_dir: str,
    feedback: tuple[str, ...],
    audit_path: str | None,
    folds: int,
    limit: int | None,
    cache_path: str | None,
    verifier_model: str | None,
    verifier_notes: int,
    from_workspace: bool,
    adopt: bool,
) -> None:
    """Learn a ranker from DATASETS (CodiEsp folder, JSONL {id, text, codes, system}, or for --system atc
    drug-product tables) and/or feedback files."""
    from pathlib import Path

    from medcoder.errors import MedcoderError  # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.ranking.service import learn_from  # deferred: CLI start-up (`medcoder --help` < 1 s)

    if from_workspace:
        return _learn_from_workspace(datasets, system, out_dir, folds, adopt)
    if not datasets and not feedback:
        raise MedcoderError("give a DATASET, --feedback files, --from-workspace, or several")
    from medcoder.knowledge.systems import system_class  # deferred: CLI start-up (`medcoder --help` < 1 s)

    if system_class(system).entity_kind == "medication":  # drugs: learned from products and notes (`--system atc`)
        return _learn_drugs(datasets, out_dir, folds, limit)
    with stage_progress() as advance:
        report = learn_from(
            datasets,
            out_dir,
            system=system,
            feedback=feedback,
            audit_path=audit_path,
            folds=folds,
            limit=limit,
            cache_path=cache_path or str(Path(out_dir) / "retrieval-cache.jsonl"),
            progress=advance,
            verifier_model=verifier_model,
            verifier_notes=verifier_notes,
        )
    cv = report.cv
    emit_table(
        [
            {
                "notes": report.notes,
                "candidates/note": report.candidates_per_note,
                "gold reachable": report.gold_in_candidates,
                "CV MAP": cv["map"],
                "CV micro F1": cv["micro"]["f1"],
                "P": cv["micro"]["precision"],
                "R": cv["micro"]["recall"],
                "category F1": cv["category_micro"]["f1"],
                "ECE": cv["ece"],
                "threshold": report.threshold,
            }
        ],
        [
            "notes",
            "candidates/note",
            "gold reachable",
            "CV MAP",
            "CV micro F1",
            "P",
            "R",
            "category F1",
            "ECE",
            "threshold",
        ],
        title=f"learned {system} ranker ({report.seconds:.0f} s)",
    )
    click.echo(
        f"cross-validated on {report.notes} notes: MAP {cv['map']:.4f}, micro F1 {cv['micro']['f1']:.4f} "
        f"(P {cv['micro']['precision']:.4f}, R {cv['micro']['recall']:.4f}), category F1 "
        f"{cv['category_micro']['f1']:.4f}, threshold {report.threshold:.4f}"
    )
    for kind, k in (cv.get("by_kind") or {}).items():
        click.echo(
            f"  {kind} notes ({k['notes']}): MAP {k['map']:.4f}, micro F1 {k['micro']['f1']:.4f}, category F1 "
            f"{k['category_micro']['f1']:.4f}, ECE {k['ece']:.4f}, threshold {k['threshold']:.4f}"
        )
    final = cv.get("final")
    if final:  # a visit note's codes as the rules decide them, calibrated by decision (cross-fitted)
        f = final["cv"]["micro"]
        click.echo(
            f"  visit notes, final codes (rules in the loop): micro F1 {f['f1']:.4f} (P {f['precision']:.4f}, "
            f"R {f['recall']:.4f}), ECE {final['ece']:.4f}, threshold {final['threshold']:.4f}, auto-accept "
            f"{final['auto_accept_threshold']} ({final['auto_accept_share']:.0%} of accepted codes, precision "
            f"{final['auto_accept_precision']})"
        )
        for way in ("without", "with"):
            for name, w in (final.get(way) or {}).items():
                click.echo(f"    {way} the {name} convention: micro F1 {w['micro_f1']:.4f}")
    if cv.get("verifier"):
        v = cv["verifier"]
        click.echo(
            f"verifier ({v['notes']} notes, top {v['top_k']}): AUC ranker {v['auc_ranker']:.4f} -> "
            f"blend {v['auc_blend']:.4f}"
        )
    click.echo(f"wrote {out_dir} (ranker.json, ranker.joblib, memory.joblib, learn-report.json)")


def _learn_drugs(datasets: tuple[str, ...], out_dir: str, folds: int, limit: int | None) -> None:
    from medcoder.ranking.service import learn_drugs_from  # deferred: CLI start-up (`medcoder --help` < 1 s)

    with stage_progress() as advance:
        report = learn_drugs_from(datasets, out_dir, folds=folds, limit=limit, progress=advance)
    cv = report.cv
    rows = [
        {"items": f"{mode} ({v['found']}/{v['products']} found)", **{k: v[k] for k in ("level1", "level3", "level5")}}
        for mode, v in cv["products"].items()
        if v["products"]
    ]
    if "notes" in cv:
        rows.append(
            {
                "items": f"notes ({report.notes})",
                "level1": "",
                "level3": "",
                "level5": f"F1 {cv['notes']['f1']} (P {cv['notes']['precision']}, R {cv['notes']['recall']})",
            }
        )
    emit_table(
        rows,
        ["items", "level1", "level3", "level5"],
        title=f"learned ATC drug ranker, cross-validated by ingredient set ({report.seconds:.0f} s)",
    )
    notes = cv.get("notes") or {}
    if notes.get("auto_accept_threshold") is not None:
        click.echo(
            f"auto-accept at {notes['auto_accept_threshold']}: {notes['auto_accept_share']:.0%} of the notes' accepted "
            f"drug codes, precision {notes['auto_accept_precision']} (out of fold)"
        )
    click.echo(
        f"threshold {report.threshold:.2f}, ECE {cv['ece']:.4f}; wrote {out_dir} "
        "(ranker.json, ranker.joblib, priors.json, learn-report.json)"
    )


def _learn_from_workspace(datasets: tuple[str, ...], system: str, out_dir: str, folds: int, adopt: bool) -> None:
    """`learn --from-workspace`: the site's decided notes (plus DATASETS), a held-back slice, the report."""
    from medcoder.engine.workflow import load_workflow  # deferred: CLI start-up (`medcoder --help` < 1 s)
    from medcoder.evaluation.relearn import relearn, site_examples  # deferred: CLI start-up
    from medcoder.session import Session  # deferred: CLI start-up
    from medcoder.web.relearning import decided_notes  # deferred: CLI start-up
    from medcoder.web.worklist import READY, Worklist  # deferred: CLI start-up

    worklist = Worklist()
    try:
        ready = [item.id for item in worklist.items() if item.state == READY]
    finally:
        worklist.close()
    with load_workflow("icd10cm-nomodel") as wf:  # only for the home's checkpoints: the sessions live there
        notes = decided_notes([Session(wf, i) for i in ready], system)
    click.echo(f"{len(notes)} decided notes in the workspace ({len(ready)} coded)", err=True)
    with stage_progress() as advance:
        report = relearn(
            site_examples(notes, system),
            None,
            out_dir,
            base=datasets,
            system=system,
            folds=folds,
            adopt=adopt,
            progress=advance,
        )
    b, a = report.before, report.after
    emit_table(
        [
            {
                "ranker": f"current {report.current['digest']}",
                "MAP": b["map"],
                "micro F1": b["micro"]["f1"],
                "auto-accept precision": b["calibration"]["auto_accept_policy"]["precision"],
            },
            {
                "ranker": f"new {report.new['digest']}",
                "MAP": a["map"],
                "micro F1": a["micro"]["f1"],
                "auto-accept precision": a["calibration"]["auto_accept_policy"]["precision"],
            },
        ],
        ["ranker", "MAP", "micro F1", "auto-accept precision"],
        title=f"on {len(report.held_back)} held-back decided notes",
    )
    click.echo(f"{report.verdict}\nreport: {report.html}")
