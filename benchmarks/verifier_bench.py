"""Does the model's yes/no judgement add to the learned ranker? Ranked-nomodel against ranked + verifier
on the same CodiEsp dev notes, same run.

The verifier's weight is cross-fitted on the measured notes (two halves: fit a logistic blend of ranker
log-odds and verifier log-odds on one half, score the other), so no figure uses a weight fitted on the
note it scores; the shipped ranker does not use these weights. Also times the batched judgement.

Run: python benchmarks/verifier_bench.py [--model default] [--notes 40] [--top 30]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, write_result  # noqa: E402

from medcoder.agents.ranker import ranker_folder, verify_context, verify_question  # noqa: E402
from medcoder.evaluation import metrics  # noqa: E402
from medcoder.evaluation.datasets import load_dataset  # noqa: E402
from medcoder.knowledge import default_kb  # noqa: E402
from medcoder.knowledge.retrieval import HybridRetriever  # noqa: E402
from medcoder.llm import load_llm  # noqa: E402
from medcoder.ranking.coder import RankedCoder, RetrievalCache  # noqa: E402
from medcoder.ranking.learn import canonical_codes  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "codiesp" / "dev"


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--notes", type=int, default=40)
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", default="verifier.json")
    args = ap.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    data = load_dataset(DEV).head(args.notes)
    kb = default_kb()
    coder = RankedCoder.from_folder(ranker_folder("icd10cm"), kb, HybridRetriever(kb))
    cache = RetrievalCache(RESULTS / "eval-codiesp-nomodel" / "retrieval-cache.jsonl")
    llm = load_llm(args.model)
    rows = []  # per note: gold, [(code, p_ranker, log_odds or nan)]
    judge_s, judge_tokens, judge_cached = [], 0, 0
    for i, ex in enumerate(data.examples):
        ranked = coder.rank(coder.candidates(ex.text, cache=cache))
        top = ranked[: args.top]
        t0 = time.perf_counter()
        res = llm.judge(verify_context(ex.text, 6000), [
            verify_question(r.code, coder.onto.label(r.code), r.evidence[0].text if r.evidence else "") for r in top])
        judge_s.append(time.perf_counter() - t0)
        judge_tokens += res.record.stats.prompt_tokens
        judge_cached += res.record.stats.cached_tokens
        odds = dict(zip([r.code for r in top], res.log_odds))
        rows.append((canonical_codes(coder.onto, ex.codes), [(r.code, r.probability, odds.get(r.code, math.nan))
                                                            for r in ranked]))
        print(f"{i + 1}/{len(data)} {judge_s[-1]:.1f}s", flush=True)
    half = len(rows) // 2
    parts = [list(range(half)), list(range(half, len(rows)))]
    blended: list[list[tuple[str, float]]] = [[] for _ in rows]
    aucs = {"ranker": [], "verifier": [], "blend": []}
    for fit_idx, score_idx in ((parts[0], parts[1]), (parts[1], parts[0])):
        x, y = [], []
        for i in fit_idx:
            gold, cands = rows[i]
            for code, p, lo in cands[: args.top]:
                x.append([_logit(p), lo])
                y.append(code in gold)
        clf = LogisticRegression(C=1.0).fit(np.asarray(x), np.asarray(y))
        for i in score_idx:
            gold, cands = rows[i]
            out = []
            for code, p, lo in cands:
                if math.isnan(lo):
                    out.append((code, p * 1e-3))  # below every judged candidate, in the ranker's order
                else:
                    out.append((code, float(clf.predict_proba(np.asarray([[_logit(p), lo]]))[0, 1])))
            blended[i] = out
    golds = [g for g, _ in rows]
    base_ranked = [[c for c, _, _ in cands] for _, cands in rows]
    base_pred = [{c for c, p, _ in cands if p >= coder.ranker.threshold} for _, cands in rows]
    blend_ranked = [[c for c, _ in sorted(b, key=lambda t: -t[1])] for b in blended]
    blend_pred = [{c for c, p in b if p >= coder.ranker.threshold} for b in blended]
    ys = [c in g for g, (_, cands) in zip(golds, rows) for c, _, lo in cands[: args.top]]
    ps = [p for _, cands in rows for _, p, _ in cands[: args.top]]
    los = [lo for _, cands in rows for _, _, lo in cands[: args.top]]
    bl = [dict(b)[c] for b, (_, cands) in zip(blended, rows) for c, _, _ in cands[: args.top]]
    result = {
        "model": {"name": llm.name, "sha256": llm.sha256}, "notes": len(rows), "top": args.top,
        "judge_seconds_per_note": round(float(np.mean(judge_s)), 2), "judge_prompt_tokens_per_note": judge_tokens // len(rows),
        "judge_cached_share": round(judge_cached / judge_tokens, 3) if judge_tokens else 0,
        "auc_top_candidates": {"ranker": round(roc_auc_score(ys, ps), 4), "verifier": round(roc_auc_score(ys, los), 4),
                               "blend_crossfitted": round(roc_auc_score(ys, bl), 4)},
        "ranked_nomodel": metrics.icd_report(golds, base_pred, base_ranked),
        "ranked_with_verifier_crossfitted": metrics.icd_report(golds, blend_pred, blend_ranked),
    }
    print({k: v for k, v in result.items() if k not in ("ranked_nomodel", "ranked_with_verifier_crossfitted")})
    print("MAP", result["ranked_nomodel"]["map"], "->", result["ranked_with_verifier_crossfitted"]["map"])
    print(f"wrote {write_result(args.out, result)}")


if __name__ == "__main__":
    main()
