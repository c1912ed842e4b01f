"""Helpers every benchmark shares: where results go and what identifies a run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

from medcoder.evaluation.bench import run_info

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps({"run": run_info(), **data}, indent=2) + "\n")
    return path


def visit_notes_setup(
    description: str, out: str, more_args: Callable[[argparse.ArgumentParser], None] = lambda ap: None
) -> tuple[argparse.Namespace, Any, Any, Any]:
    """What the visit-note benchmarks share: --data (the coded ACI-Bench validation notes), --cache, --out; the
    notes' diagnosis lines, the shipped ICD-10-CM ranker over the real retrieval, and the retrieval cache."""
    from medcoder.knowledge import default_kb
    from medcoder.knowledge.retrieval import HybridRetriever
    from medcoder.ranking.coder import RankedCoder, RetrievalCache
    from medcoder.ranking.datasets import load_dataset
    from medcoder.ranking.folders import ranker_folder

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", default=str(shared / "aci-bench-coded" / "valid.jsonl"))
    ap.add_argument("--cache", default="", help="retrieval cache (JSONL) to reuse between runs")
    ap.add_argument("--out", default=out)
    more_args(ap)
    args = ap.parse_args()
    kb = default_kb()
    coder = RankedCoder.from_folder(ranker_folder("icd10cm", "shipped"), kb, HybridRetriever(kb))
    return args, load_dataset(args.data, system="icd10cm"), coder, RetrievalCache(args.cache or None)
