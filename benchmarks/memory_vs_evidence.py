"""Is the memory a crutch? On notes unlike the memory (ACI-Bench US visit notes vs CodiEsp case reports),
count how many of the ranker's accepted codes rest on a sentence of the note (retrieval found them there)
and how many on the memory alone; the same count on CodiEsp dev notes (like the memory) for contrast.

Run: python benchmarks/memory_vs_evidence.py [--aci 20] [--codiesp 50] [--out memory_vs_evidence.json]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402

from medcoder.knowledge import default_kb  # noqa: E402
from medcoder.knowledge.retrieval import HybridRetriever  # noqa: E402
from medcoder.ranking.coder import RankedCoder, RetrievalCache  # noqa: E402
from medcoder.ranking.datasets import load_dataset  # noqa: E402
from medcoder.ranking.folders import ranker_folder  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def tally(coder: RankedCoder, notes: list[str], cache: RetrievalCache | None = None) -> dict:
    supported = memory_only = 0
    sims = []
    examples = []
    for text in notes:
        cands = coder.candidates(text, cache=cache)
        sims.append(coder.memory.query([text])[0].top_similarity)
        for r in coder.rank(cands):
            if not r.accepted:
                continue
            if "sentence" in r.sources or "mention" in r.sources:
                supported += 1
            else:
                memory_only += 1
                if len(examples) < 5:
                    examples.append({"code": r.code, "label": coder.onto.label(r.code), "p": round(r.probability, 3)})
    total = supported + memory_only
    return {"notes": len(notes), "codes": total, "supported_by_a_sentence": supported, "memory_only": memory_only,
            "memory_only_share": round(memory_only / total, 4) if total else 0.0,
            "codes_per_note": round(total / max(1, len(notes)), 2),
            "median_top_similarity_to_memory": round(statistics.median(sims), 4) if sims else 0.0,
            "memory_only_examples": examples}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--aci", type=int, default=20)
    ap.add_argument("--codiesp", type=int, default=50)
    ap.add_argument("--out", default="memory_vs_evidence.json")
    args = ap.parse_args()
    kb = default_kb()
    coder = RankedCoder.from_folder(ranker_folder("icd10cm"), kb, HybridRetriever(kb))
    with open(SHARED / "aci-bench" / "valid.csv", newline="", encoding="utf-8") as fh:
        aci = [row["note"] for row in csv.DictReader(fh)][: args.aci]
    dev = [e.text for e in load_dataset(SHARED / "codiesp" / "dev").examples[: args.codiesp]]
    cache = RetrievalCache(RESULTS / "eval-codiesp-nomodel" / "retrieval-cache.jsonl")
    out = {"aci_bench_valid": tally(coder, aci), "codiesp_dev": tally(coder, dev, cache)}
    print(out)
    print(f"wrote {write_result(args.out, out)}")


if __name__ == "__main__":
    main()
