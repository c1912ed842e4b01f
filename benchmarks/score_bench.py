"""Judging many candidates of one note: 30 sequential `choose` calls against one batched `score`
(`judge`) call, same model, same note, same candidates, same run; plus the prompt tokens evaluated and
the share served from cache (tokens the prompts hold that were not evaluated). Each is measured with the
ranker's questions as shipped (code, label and evidence sentence) and short (code and label only).

Run: python benchmarks/score_bench.py [--models test default] [--candidates 30] [--out score.json]
     python benchmarks/score_bench.py --save-case case.json    # the note and its 30 questions, for a GPU machine
     python benchmarks/score_bench.py --case case.json --models M  # no retrieval or ranker needed (GPU bench)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from medcoder.llm import Option, load_llm  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "codiesp" / "dev"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["test", "default"])
    ap.add_argument("--candidates", type=int, default=30)
    ap.add_argument("--note", type=int, default=0, help="index of the CodiEsp dev note")
    ap.add_argument("--out", default="score.json")
    ap.add_argument("--case", help="a saved note + questions (JSON), instead of retrieval and the ranker")
    ap.add_argument("--save-case", help="write the note + questions to this JSON file and stop")
    args = ap.parse_args()
    if args.case:
        case = json.loads(Path(args.case).read_text())
    else:
        case = _case(args.note, args.candidates)
    if args.save_case:
        Path(args.save_case).write_text(json.dumps(case, indent=1))
        print(f"wrote {args.save_case}")
        return
    context, questions = case["context"], case["questions"]
    out: dict = {"note": case["note"], "note_chars": case["note_chars"], "candidates": len(questions), "models": {}}
    variants = {"with_evidence": questions, "short": [_short(q) for q in questions]}
    for name in args.models:
        llm = load_llm(name)
        llm.judge(context[:1], ["warm-up\nDocumented (yes/no):"])  # load and touch the weights once
        out["models"][name] = {"model_sha256": llm.sha256}
        for variant, qs in variants.items():
            out["models"][name][variant] = _measure(llm, context, qs)
            print(name, variant, out["models"][name][variant], flush=True)
        llm.close()
    out["cpu_seconds_outside_model"] = case.get("cpu_seconds_outside_model")
    for m in out["models"].values():  # the ranked workflow spends one judge call per note on the model
        for variant in variants:
            per_note = m[variant]["batched_score_s"] + (case.get("cpu_seconds_outside_model") or 0.0)
            m[variant]["ranked_notes_per_hour_estimate"] = round(3600 / per_note) if per_note else None
    target = Path(args.out)
    if target.parent != Path("."):
        from medcoder.evaluation.bench import run_info

        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"run": run_info(), **out}, indent=2) + "\n")
    else:
        target = write_result(args.out, out)
    print(f"wrote {target}")


def _short(question: str) -> str:
    """The same question without the evidence line (the sentence is in the note already)."""
    return re.sub(r'\nEvidence: ".*?"', "", question, flags=re.S)


def _measure(llm, context: list, questions: list[str]) -> dict:  # type: ignore[no-untyped-def]
    """(a) one `choose` per question after the note, prefix-cached; (b) one batched `judge` call."""
    calls: list = []
    stop = llm.observe(calls.append)
    singles = [llm.score(context, [(q, " yes"), (q, " no")]).logprobs for q in questions[:5]]
    seq = []
    calls.clear()
    t0 = time.perf_counter()
    for q in questions:
        msgs = [dict(m) for m in context]
        msgs[-1]["content"] += "\n\n" + q
        res = llm.choose(msgs, [Option("yes", "yes"), Option("no", "no")])
        seq.append(next(c.probability for c in res.choices if c.key == "yes"))
    t_seq = time.perf_counter() - t0
    seq_calls = list(calls)
    llm.judge(context[:1], ["reset\nDocumented (yes/no):"])  # a different prefix: the batched call starts cold
    calls.clear()
    t0 = time.perf_counter()
    judged = llm.judge(context, questions)
    t_batch = time.perf_counter() - t0
    stop()
    prompt_seq = sum(c.stats.prompt_tokens for c in seq_calls)
    cached_seq = sum(c.stats.cached_tokens for c in seq_calls)
    rec = judged.record.stats
    separate = rec.sampling.get("tokens_as_separate_prompts") or rec.prompt_tokens
    agree = sum((a >= 0.5) == (b >= 0.5) for a, b in zip(seq, judged.p_yes)) / max(1, len(seq))
    batched_lp = llm.score(context, [(q, t) for q in questions[:5] for t in (" yes", " no")]).logprobs
    max_diff = max(abs(a - b) for a, b in zip(batched_lp, [x for pair in singles for x in pair]))
    evaluated_seq, evaluated_batch = prompt_seq - cached_seq, rec.prompt_tokens - rec.cached_tokens
    return {
        "sequential_choose_s": round(t_seq, 2), "batched_score_s": round(t_batch, 2),
        "speedup": round(t_seq / t_batch, 2) if t_batch else None,
        "sequential_prompt_tokens": prompt_seq, "sequential_evaluated_tokens": evaluated_seq,
        "sequential_cache_share": round(cached_seq / prompt_seq, 3) if prompt_seq else 0,
        "batched_evaluated_tokens": evaluated_batch, "batched_tokens_as_separate_prompts": separate,
        "batched_cache_share": round(1 - evaluated_batch / separate, 3) if separate else 0,
        "yes_no_agreement_with_choose": round(agree, 3),
        "max_abs_logprob_diff_batched_vs_single": round(max_diff, 5)}


def _case(index: int, n: int) -> dict:
    """The note's verifier prompt and its top-n candidates' questions, from the shipped ranker."""
    from medcoder.knowledge import default_kb
    from medcoder.knowledge.retrieval import HybridRetriever
    from medcoder.ranking.coder import RankedCoder
    from medcoder.ranking.datasets import load_dataset
    from medcoder.ranking.folders import ranker_folder
    from medcoder.ranking.verify import verify_context, verify_question

    note = load_dataset(DEV).examples[index]
    kb = default_kb()
    coder = RankedCoder.from_folder(ranker_folder("icd10cm"), kb, HybridRetriever(kb))
    t0 = time.perf_counter()
    top = coder.rank(coder.candidates(note.text))[:n]
    cpu_s = time.perf_counter() - t0
    questions = [verify_question(r.code, coder.onto.label(r.code), r.evidence[0].text if r.evidence else "")
                 for r in top]
    return {"note": note.id, "note_chars": len(note.text), "context": verify_context(note.text, 6000),
            "questions": questions, "cpu_seconds_outside_model": round(cpu_s, 3)}


if __name__ == "__main__":
    main()
