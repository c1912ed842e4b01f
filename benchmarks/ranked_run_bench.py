"""A whole ranked run per note with the model as verifier: prompt tokens the run's prompts hold, tokens
evaluated, the share served from cache, and seconds, for the `icd10cm` workflow with `verify: true`, the
questions as shipped (with the evidence sentence) and short (`verify_evidence: false`), same notes, same run.
With `--extract`: `icd10cm-extract` (one extraction call per section chunk, the verifier's own prompt)
against `icd10cm-warm` (one extraction call in the note-first layout, the verifier reusing its prefix),
both verifying with short questions, with micro-F1 against the gold codes.

Run: python benchmarks/ranked_run_bench.py [--model default] [--notes 3] [--extract] [--out ranked_run.json]
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
from medcoder.llm import load_llm  # noqa: E402
from medcoder.ranking.datasets import load_dataset  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "codiesp" / "dev"


def _variant(evidence: bool) -> str:
    text = builtin_path("icd10cm").read_text()
    return text.replace("verify: auto, verify_top: 30",
                        f"verify: true, verify_top: 30, verify_evidence: {str(evidence).lower()}")


def _extract_variants() -> dict[str, str]:
    extract = builtin_path("icd10cm-extract").read_text().replace(
        "verify: auto, verify_top: 30", "verify: true, verify_top: 30, verify_evidence: false")
    return {"extract_per_section": extract, "warm_note_prefix": builtin_path("icd10cm-warm").read_text()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--notes", type=int, default=3)
    ap.add_argument("--extract", action="store_true", help="compare icd10cm-extract with icd10cm-warm")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    notes = load_dataset(DEV).head(args.notes).examples
    llm = load_llm(args.model)
    out: dict = {"model": args.model, "model_sha256": llm.sha256, "notes": [n.id for n in notes], "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        variants = _extract_variants() if args.extract else {"with_evidence": _variant(True), "short": _variant(False)}
        for name, text in variants.items():
            wf = load_workflow(text=text, llms={"default": llm}, audit=False, checkpoint_path=f"{tmp}/{name}.sqlite")
            wf.run(notes[0].text)  # warm: ranker, retrieval, the model's system prompt
            rows = []
            for n in notes:
                log = RunLog(f"{name}-{n.id}")
                t0 = time.perf_counter()
                result = wf.run(n.text, run_id=log.run_id, log=log)
                seconds = time.perf_counter() - t0
                held = sum(c.stats.sampling.get("tokens_as_separate_prompts") or c.stats.prompt_tokens
                           for c in log.calls)
                evaluated = sum(c.stats.prompt_tokens - c.stats.cached_tokens for c in log.calls)
                got, gold = {c.code for c in result.codes}, set(n.codes)
                rows.append({"note": n.id, "seconds": round(seconds, 2), "model_calls": len(log.calls),
                             "prompt_tokens_held": held, "prompt_tokens_evaluated": evaluated,
                             "served_from_cache": round(1 - evaluated / held, 3) if held else None,
                             "codes": len(got), "tp": len(got & gold), "fp": len(got - gold), "fn": len(gold - got)})
                print(name, rows[-1], flush=True)
            wf.close()
            k = len(rows)
            tp, fp, fn = (sum(r[x] for r in rows) for x in ("tp", "fp", "fn"))
            evaluated = sum(r["prompt_tokens_evaluated"] for r in rows)
            out["variants"][name] = {"per_note": rows, "micro_f1": round(2 * tp / max(1, 2 * tp + fp + fn), 3),
                                     "mean_seconds": round(sum(r["seconds"] for r in rows) / k, 2),
                                     "mean_evaluated": round(evaluated / k),
                                     "served_from_cache": round(
                                         1 - evaluated / max(1, sum(r["prompt_tokens_held"] for r in rows)), 3)}
    llm.close()
    print(f"wrote {write_result(args.out or ('ranked_extract_run.json' if args.extract else 'ranked_run.json'), out)}")


if __name__ == "__main__":
    main()
