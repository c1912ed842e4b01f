"""A whole ranked run per note with the model as verifier: prompt tokens the run's prompts hold, tokens
evaluated, the share served from cache, and seconds, for the `icd10cm` workflow with `verify: true`, the
questions as shipped (with the evidence sentence) and short (`verify_evidence: false`), same notes, same run.

Run: python benchmarks/ranked_run_bench.py [--model default] [--notes 3] [--out ranked_run.json]
Needs ../shared/data/codiesp/dev. The counts: a `score` call's shared context is evaluated once for all
its sequences; asked as separate prompts, each continuation would hold the context again
(`tokens_as_separate_prompts`); "served from cache" is what the prompts hold minus what was evaluated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_result  # noqa: E402

from medcoder.engine.spec import builtin_path  # noqa: E402
from medcoder.engine.workflow import RunLog, load_workflow  # noqa: E402
from medcoder.evaluation.datasets import load_dataset  # noqa: E402
from medcoder.llm import load_llm  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "codiesp" / "dev"


def _variant(evidence: bool) -> str:
    text = builtin_path("icd10cm").read_text()
    return text.replace("verify: auto, verify_top: 30", f"verify: true, verify_top: 30, verify_evidence: {str(evidence).lower()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--notes", type=int, default=3)
    ap.add_argument("--out", default="ranked_run.json")
    args = ap.parse_args()
    notes = load_dataset(DEV).head(args.notes).examples
    llm = load_llm(args.model)
    out: dict = {"model": args.model, "model_sha256": llm.sha256, "notes": [n.id for n in notes], "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, evidence in (("with_evidence", True), ("short", False)):
            wf = load_workflow(text=_variant(evidence), llms={"default": llm}, audit=False,
                               checkpoint_path=f"{tmp}/{name}.sqlite")
            wf.run(notes[0].text)  # warm: ranker, retrieval, the model's system prompt
            rows = []
            for n in notes:
                log = RunLog(f"{name}-{n.id}")
                t0 = time.perf_counter()
                result = wf.run(n.text, run_id=log.run_id, log=log)
                seconds = time.perf_counter() - t0
                held = sum(c.stats.sampling.get("tokens_as_separate_prompts") or c.stats.prompt_tokens for c in log.calls)
                evaluated = sum(c.stats.prompt_tokens - c.stats.cached_tokens for c in log.calls)
                rows.append({"note": n.id, "seconds": round(seconds, 2), "model_calls": len(log.calls),
                             "prompt_tokens_held": held, "prompt_tokens_evaluated": evaluated,
                             "served_from_cache": round(1 - evaluated / held, 3) if held else None,
                             "codes": len(result.codes)})
                print(name, rows[-1], flush=True)
            wf.close()
            k = len(rows)
            out["variants"][name] = {"per_note": rows, "mean_seconds": round(sum(r["seconds"] for r in rows) / k, 2),
                                     "mean_evaluated": round(sum(r["prompt_tokens_evaluated"] for r in rows) / k),
                                     "served_from_cache": round(1 - sum(r["prompt_tokens_evaluated"] for r in rows)
                                                                / max(1, sum(r["prompt_tokens_held"] for r in rows)), 3)}
    llm.close()
    print(f"wrote {write_result(args.out, out)}")


if __name__ == "__main__":
    main()
