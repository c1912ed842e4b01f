"""The drug lexicon over every coded note and CodiEsp: each drug it finds that the note's reference does not code.

    .venv/bin/python benchmarks/lexicon_audit.py [--data ../shared/data] [--reviewed TSV] [--out lexicon_audit.json]

A lexicon entry that is an everyday or instruction word shows up here as a drug no reference codes; CodiEsp codes
diagnoses only, so every drug found there is listed. Writes benchmarks/results/lexicon_audit.json and a readable
benchmarks/results/lexicon_audit.md (by via, most frequent first, with each row's reviewed verdict).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS, write_result  # noqa: E402

from medcoder.evaluation.lexicon_audit import (  # noqa: E402
    VERDICTS,
    AuditGroup,
    Review,
    audit_datasets,
    audit_datasets_at,
    counts_by_via,
    group_hits,
    load_reviewed,
    substances_field,
)
from medcoder.knowledge.druglex import drug_lexicon  # noqa: E402
from medcoder.knowledge.systems import load_system  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
Reviewed = dict[tuple[str, str, tuple[str, ...]], Review]


def _verdict(g: AuditGroup, reviewed: Reviewed) -> str:
    review = reviewed.get((g.text, g.via, g.substances))
    return review.verdict if review else "unreviewed"


def _group_json(g: AuditGroup, reviewed: Reviewed) -> dict[str, Any]:
    return {
        "text": g.text,
        "via": g.via,
        "substances": list(g.substances),
        "count": g.count,
        "notes": len(g.notes),
        "verdict": _verdict(g, reviewed),
        "examples": [{"dataset": h.dataset, "note": h.note_id, "context": h.context} for h in g.examples],
    }


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write_markdown(path: Path, groups: list[AuditGroup], by_via: dict[str, dict[str, int]], reviewed: Reviewed) -> None:
    """One table per way of recognising a drug, most frequent first."""
    lines = [
        "# Drug lexicon audit: drugs found outside each note's reference",
        "",
        "Coded ACI-Bench notes (reference ATC codes) and CodiEsp (ICD-10 only: every drug found is listed). "
        "Verdicts from `tests/data/lexicon_audit_reviewed.tsv`.",
        "",
        "| via | hits | distinct |",
        "|---|---:|---:|",
        *(f"| {via} | {n['hits']} | {n['distinct']} |" for via, n in by_via.items()),
    ]
    for via in by_via:
        lines += [
            "",
            f"## {via}",
            "",
            "| hits | notes | text | substances | verdict | example |",
            "|---:|---:|---|---|---|---|",
        ]
        for g in (g for g in groups if g.via == via):
            example = f"{g.examples[0].dataset}: {g.examples[0].context}"
            lines.append(
                f"| {g.count} | {len(g.notes)} | {_cell(g.text)} | {substances_field(g.substances)} | "
                f"{_verdict(g, reviewed)} | {_cell(example)} |"
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="the shared data folder")
    ap.add_argument("--reviewed", default=str(ROOT / "tests" / "data" / "lexicon_audit_reviewed.tsv"))
    ap.add_argument("--out", default="lexicon_audit.json", help="file name under benchmarks/results")
    args = ap.parse_args()
    start = time.perf_counter()
    lex = drug_lexicon(load_system("atc"))
    built = time.perf_counter()
    datasets = audit_datasets_at(Path(args.data))
    hits = audit_datasets(lex, datasets)
    audited = time.perf_counter()
    groups = group_hits(hits)
    by_via = counts_by_via(hits)
    reviewed: Reviewed = load_reviewed(Path(args.reviewed)) if Path(args.reviewed).is_file() else {}
    verdicts = {v: sum(g.count for g in groups if _verdict(g, reviewed) == v) for v in VERDICTS}
    unreviewed = [g for g in groups if _verdict(g, reviewed) == "unreviewed"]
    path = write_result(
        args.out,
        {
            "datasets": {name: len(ds) for name, ds in datasets},
            "seconds": {"lexicon": round(built - start, 2), "audit": round(audited - built, 2)},
            "hits": len(hits),
            "by_via": by_via,
            "by_verdict": {**verdicts, "unreviewed": sum(g.count for g in unreviewed)},
            "groups": [_group_json(g, reviewed) for g in groups],
        },
    )
    write_markdown(RESULTS / Path(args.out).with_suffix(".md").name, groups, by_via, reviewed)
    per_via = ", ".join(f"{v} {n['hits']}" for v, n in by_via.items())
    print(
        f"lexicon audit: {len(hits)} hits outside the reference in {sum(len(ds) for _, ds in datasets)} notes "
        f"({per_via}); {len(unreviewed)} unreviewed groups; "
        f"{audited - built:.1f}s -> {path}"
    )


if __name__ == "__main__":
    main()
