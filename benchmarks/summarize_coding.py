"""Summarise a coding bench from its progress file (what a long run measured so far, even if stopped).

Run: python benchmarks/summarize_coding.py benchmarks/results/coding_default.progress.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path


def summarize(path: Path) -> dict[str, object]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    tp = fp = fn = tp3 = fp3 = fn3 = calls = codes = 0
    for r in rows:
        p, g = set(r["pred"]), set(r["gold"])
        tp, fp, fn = tp + len(p & g), fp + len(p - g), fn + len(g - p)
        p3, g3 = {c[:3] for c in p}, {c[:3] for c in g}
        tp3, fp3, fn3 = tp3 + len(p3 & g3), fp3 + len(p3 - g3), fn3 + len(g3 - p3)
        calls += r["model_calls"]
        codes += len(p)

    def f1(tp: int, fp: int, fn: int) -> dict[str, float]:
        pr = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * pr * rc / (pr + rc) if pr + rc else 0
        return {"precision": round(pr, 4), "recall": round(rc, 4), "f1": round(f1, 4)}

    return {"notes": len(rows), "micro_full_code": f1(tp, fp, fn), "micro_category": f1(tp3, fp3, fn3),
            "seconds_per_note_mean": round(statistics.mean(r["seconds"] for r in rows), 1),
            "model_calls_per_code": round(calls / codes, 2) if codes else None,
            "codes_per_note": round(codes / len(rows), 2), "docs": [r["doc"] for r in rows]}


if __name__ == "__main__":
    print(json.dumps(summarize(Path(sys.argv[1])), indent=2))
