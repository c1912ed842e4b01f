"""Retrieval quality and speed: hybrid search against each ranker alone, measured in the same run.

Run: python benchmarks/retrieval_bench.py [--notes N] [--tune-notes N]   (writes benchmarks/results/retrieval.json)

(a) CodiEsp dev (English): every sentence of a note is a query; a note's recall@k is the share
    of its gold codes found in the union of its sentences' top-k (micro-averaged over codes).
(b) DPD sample: each product's ingredients (and, separately, its brand name) against its gold
    ATC level-5 code; recall@k = gold code within the top k.
The fusion settings (rrf_k, per-ranker weights) are chosen on CodiEsp *train* notes, never dev.
Index build time and size come from the index's own record; query latency is measured here.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from medcoder.knowledge import default_kb  # noqa: E402
from medcoder.knowledge.retrieval import HybridRetriever  # noqa: E402
from medcoder.ranking.datasets import Dataset, load_codiesp, load_dpd, sentences  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
KS = (1, 5, 20)
CONFIGS = {  # name -> rankers fused (a single ranker is that ranker's own order)
    "lexical": ("lexical",),
    "dense": ("dense",),
    "index": ("index",),
    "hybrid": ("lexical", "dense", "index"),
}


def _lists_for(retriever: HybridRetriever, data: Dataset, system: str, field: str = "text") -> list[list[dict]]:
    """Per example, each query's ranked lists from every ranker (computed once, fused many ways)."""
    out = []
    done = 0
    for ex in data.examples:
        queries = list(sentences(ex.text)) if field == "sentences" else [ex.meta.get(field, ex.text) or ex.text]
        out.append(retriever.ranked_lists(queries, system) if queries else [])
        done += 1
        if done % 25 == 0:
            print(f"  {data.name}: {done}/{len(data)}", file=sys.stderr)
    return out


def _recall(retriever: HybridRetriever, data: Dataset, lists: list[list[dict]], system: str,
            rankers: tuple[str, ...]) -> dict[str, float]:
    onto = retriever.kb.ontology(system)
    found = {k: 0 for k in KS}
    total = 0
    for ex, per_query in zip(data.examples, lists):
        gold = {onto.normalize(c) for c in ex.codes}
        total += len(gold)
        for k in KS:
            union: set[str] = set()
            for lists_q in per_query:
                union.update(h.code for h in retriever.fuse(system, {r: lists_q.get(r, []) for r in rankers}, k))
            found[k] += len(gold & union)
    return {f"recall@{k}": round(found[k] / max(total, 1), 4) for k in KS}


def _tune(retriever: HybridRetriever, data: Dataset, lists: list[list[dict]]) -> dict[str, Any]:
    """Grid over rrf_k and ranker weights on the tuning split; best mean of recall@5 and @20."""
    best: tuple[float, dict[str, Any]] = (-1.0, {})
    grid = []
    for rrf_k, w_lex, w_dense, w_index in itertools.product((5, 20, 60), (0.5, 1.0), (1.0, 1.5), (0.5, 1.0, 1.5)):
        retriever.rrf_k = rrf_k
        retriever.weights = {"lexical": w_lex, "dense": w_dense, "index": w_index}
        r = _recall(retriever, data, lists, "icd10cm", CONFIGS["hybrid"])
        score = (r["recall@5"] + r["recall@20"]) / 2
        grid.append({"rrf_k": rrf_k, "weights": dict(retriever.weights), **r})
        if score > best[0]:
            best = (score, {"rrf_k": rrf_k, "weights": dict(retriever.weights)})
    return {"chosen": best[1], "grid": grid}


def _latency(retriever: HybridRetriever, queries: list[str], system: str) -> dict[str, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        retriever.search(q, system, 10)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"median_ms": round(statistics.median(times), 2), "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notes", type=int, default=250, help="CodiEsp dev notes to measure on")
    ap.add_argument("--tune-notes", type=int, default=100, help="CodiEsp train notes to choose the fusion on")
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--out", default="retrieval.json")
    args = ap.parse_args()

    kb = default_kb()
    retriever = HybridRetriever(kb, pool=50)
    builds = {}
    for system in ("icd10cm", "atc"):
        t = time.perf_counter()
        info = retriever.dense(system).build()  # cached: returns the record of the build that made it
        builds[system] = {"docs": info["docs"], "codes": info["codes"], "build_seconds": info["seconds"],
                          "size_mb": round(info["bytes"] / 1e6, 1), "open_seconds": round(time.perf_counter() - t, 2)}

    print("tuning fusion on CodiEsp train ...", file=sys.stderr)
    train = load_codiesp(args.data / "codiesp" / "train").head(args.tune_notes)
    tuning = _tune(retriever, train, _lists_for(retriever, train, "icd10cm", "sentences"))
    retriever.rrf_k = tuning["chosen"]["rrf_k"]
    retriever.weights = tuning["chosen"]["weights"]

    print("measuring on CodiEsp dev ...", file=sys.stderr)
    dev = load_codiesp(args.data / "codiesp" / "dev").head(args.notes)
    t = time.perf_counter()
    dev_lists = _lists_for(retriever, dev, "icd10cm", "sentences")
    n_sent = sum(len(x) for x in dev_lists)
    codiesp = {name: _recall(retriever, dev, dev_lists, "icd10cm", rankers) for name, rankers in CONFIGS.items()}
    codiesp["_meta"] = {"notes": len(dev), "sentences": n_sent, "gold_codes": sum(len(e.codes) for e in dev.examples),
                        "all_rankers_seconds_per_sentence": round((time.perf_counter() - t) / max(n_sent, 1), 4)}

    print("measuring on the DPD sample ...", file=sys.stderr)
    dpd = load_dpd(args.data / "dpd-sample")
    dpd_res: dict[str, Any] = {}
    for field in ("ingredients", "brand"):
        lists = _lists_for(retriever, dpd, "atc", field)
        dpd_res[field] = {name: _recall(retriever, dpd, lists, "atc", rankers)
                          for name, rankers in CONFIGS.items()}
    dpd_res["_meta"] = {"products": len(dpd)}

    sample = [s for e in dev.examples[:20] for s in sentences(e.text)][:200]
    latency = {"icd10cm_sentence": _latency(retriever, sample, "icd10cm"),
               "atc_ingredient": _latency(retriever, [e.text for e in dpd.examples[:200]], "atc")}
    path = write_result(args.out, {
        "fusion": {"rrf_k": retriever.rrf_k, "weights": retriever.weights, "pool": retriever.pool,
                   "tuned_on": f"codiesp/train first {len(train)} notes"},
        "codiesp_dev_sentences": codiesp, "dpd_sample": dpd_res, "index": builds, "query_latency": latency,
        "tuning_grid": tuning["grid"],
    })
    print(path)
    for name in CONFIGS:
        print(f"{name:8s} codiesp {codiesp[name]}  dpd-ingredients {dpd_res['ingredients'].get(name)}")


if __name__ == "__main__":
    main()
