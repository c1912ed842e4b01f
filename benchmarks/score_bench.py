"""Judging many candidates of one note: 30 sequential `choose` calls against one batched `score`
(`judge`) call, same model, same note, same candidates, same run; plus the prompt tokens evaluated.

Run: python benchmarks/score_bench.py [--models test default] [--candidates 30] [--out benchmarks/results/score.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from medcoder.agents.ranker import verify_context, verify_question  # noqa: E402
from medcoder.evaluation.datasets import load_dataset  # noqa: E402
from medcoder.knowledge import default_kb  # noqa: E402
from medcoder.knowledge.retrieval import HybridRetriever  # noqa: E402
from medcoder.llm import Option, load_llm  # noqa: E402
from medcoder.ranking.coder import RankedCoder  # noqa: E402
from medcoder.agents.ranker import ranker_folder  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "codiesp" / "dev"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["test", "default"])
    ap.add_argument("--candidates", type=int, default=30)
    ap.add_argument("--note", type=int, default=0, help="index of the CodiEsp dev note")
    ap.add_argument("--out", default="score.json")
    args = ap.parse_args()
    note = load_dataset(DEV).examples[args.note]
    kb = default_kb()
    coder = RankedCoder.from_folder(ranker_folder("icd10cm"), kb, HybridRetriever(kb))
    top = coder.rank(coder.candidates(note.text))[: args.candidates]
    questions = [verify_question(r.code, coder.onto.label(r.code), r.evidence[0].text if r.evidence else "")
                 for r in top]
    context = verify_context(note.text, 6000)
    out: dict = {"note": note.id, "note_chars": len(note.text), "candidates": len(questions), "models": {}}
    for name in args.models:
        llm = load_llm(name)
        llm.judge(context[:1], ["warm-up\nDocumented (yes/no):"])  # load and touch the weights once
        calls: list = []
        stop = llm.observe(calls.append)
        t0 = time.perf_counter()
        seq = []
        for q in questions:
            msgs = [dict(m) for m in context]
            msgs[-1]["content"] += "\n\n" + q
            res = llm.choose(msgs, [Option("yes", "yes"), Option("no", "no")])
            seq.append(next(c.probability for c in res.choices if c.key == "yes"))
        t_seq = time.perf_counter() - t0
        seq_calls = list(calls)
        calls.clear()
        llm.judge(context[:1], ["reset\nDocumented (yes/no):"])  # a different prefix: the batched call starts cold
        calls.clear()
        t0 = time.perf_counter()
        judged = llm.judge(context, questions)
        t_batch = time.perf_counter() - t0
        stop()
        prompt_seq = sum(c.stats.prompt_tokens for c in seq_calls)
        cached_seq = sum(c.stats.cached_tokens for c in seq_calls)
        rec = judged.record.stats
        agree = sum((a >= 0.5) == (b >= 0.5) for a, b in zip(seq, judged.p_yes)) / max(1, len(seq))
        out["models"][name] = {
            "model_sha256": llm.sha256, "sequential_choose_s": round(t_seq, 2), "batched_score_s": round(t_batch, 2),
            "speedup": round(t_seq / t_batch, 2) if t_batch else None,
            "sequential_prompt_tokens": prompt_seq, "sequential_cached_tokens": cached_seq,
            "sequential_cache_share": round(cached_seq / prompt_seq, 3) if prompt_seq else 0,
            "batched_prompt_tokens": rec.prompt_tokens, "batched_cached_tokens": rec.cached_tokens,
            "yes_no_agreement": round(agree, 3)}
        print(name, out["models"][name], flush=True)
        llm.close()
    print(f"wrote {write_result(args.out, out)}")


if __name__ == "__main__":
    main()
