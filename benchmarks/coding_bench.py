"""Coding quality and speed on CodiEsp dev (English): micro-F1 of ICD-10-CM diagnosis codes,
seconds per note and model calls per code, for one workflow and model.

Run: python benchmarks/coding_bench.py --notes 20 --model default [--workflow icd10cm]
Writes benchmarks/results/coding_<model>.json (one line per note is appended to a .jsonl
as it goes, so a long run shows progress and keeps what it measured).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402

from medcoder import load_workflow  # noqa: E402
from medcoder.knowledge.icd10cm import normalize_icd  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "codiesp" / "dev"


def gold_codes(split_dir: Path) -> dict[str, set[str]]:
    gold: dict[str, set[str]] = defaultdict(set)
    for line in (split_dir / f"{split_dir.name}D.tsv").read_text().splitlines():
        if line.strip():
            doc, code = line.split("\t")[:2]
            gold[doc].add(normalize_icd(code))
    return gold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--notes", type=int, default=20)
    ap.add_argument("--model", default="default")
    ap.add_argument("--workflow", default="icd10cm")
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args()
    data = Path(args.data)
    gold = gold_codes(data)
    docs = sorted(p for p in (data / "text_files_en").glob("*.txt"))[: args.notes]
    progress = RESULTS / f"coding_{Path(args.model).stem}.progress.jsonl"
    progress.write_text("")
    tp = fp = fn = 0
    tp3 = fp3 = fn3 = 0
    seconds, calls, n_codes = [], 0, 0
    with load_workflow(args.workflow, model=args.model) as wf:
        for i, doc in enumerate(docs, 1):
            t = time.perf_counter()
            result = wf.run(doc.read_text())
            dt = time.perf_counter() - t
            pred = set(result.codes_of("icd10cm"))
            g = gold.get(doc.stem, set())
            tp += len(pred & g); fp += len(pred - g); fn += len(g - pred)  # noqa: E702
            p3, g3 = {c[:3] for c in pred}, {c[:3] for c in g}
            tp3 += len(p3 & g3); fp3 += len(p3 - g3); fn3 += len(g3 - p3)  # noqa: E702
            seconds.append(dt)
            calls += result.stats["model_calls"]
            n_codes += len(pred)
            row = {"doc": doc.stem, "seconds": round(dt, 1), "pred": sorted(pred), "gold": sorted(g),
                   "model_calls": result.stats["model_calls"], "entities": len(result.entities)}
            with progress.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"[{i}/{len(docs)}] {doc.stem}: {dt:.0f}s, {len(pred)} codes, {len(pred & g)} right", flush=True)
            model_sha = result.stats["model_sha256"]

    def f1(tp: int, fp: int, fn: int) -> dict[str, float]:
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r) if p + r else 0.0, 4)}

    out = {"workflow": args.workflow, "model": args.model, "model_sha256": model_sha, "notes": len(docs),
           "data": str(data), "micro_full_code": f1(tp, fp, fn), "micro_category": f1(tp3, fp3, fn3),
           "seconds_per_note_mean": round(statistics.mean(seconds), 1),
           "model_calls_per_code": round(calls / n_codes, 2) if n_codes else None,
           "codes_per_note": round(n_codes / len(docs), 2)}
    path = write_result(f"coding_{Path(args.model).stem}.json", out)
    print(json.dumps(out, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
