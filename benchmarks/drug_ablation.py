"""Drug coding with and without each model question, same notes, same run: does the model earn its place?

    .venv/bin/python benchmarks/drug_ablation.py [--model default] [--data ../shared/data/aci-bench-coded/valid.jsonl]

Variants: the lexicon and drug ranker alone; + (a) the model's status judgement; + (b) the model's choice
between close codes in different anatomical groups; + both. Each note's mentions are read once; the model
variants reuse them, so only the model's answers differ. Writes benchmarks/results/drug_ablation.json.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result  # noqa: E402

from medcoder.knowledge import default_kb  # noqa: E402
from medcoder.llm import load_llm  # noqa: E402
from medcoder.ranking.datasets import load_dataset  # noqa: E402
from medcoder.ranking.drug_questions import ModelReading, choose_close, judge_status  # noqa: E402
from medcoder.ranking.drugs import DrugCoder, drug_ranker_folder  # noqa: E402
from medcoder.ranking.metrics import micro  # noqa: E402

VARIANTS = {"ranker alone": (False, False), "+ status (a)": (True, False), "+ choice (b)": (False, True),
            "+ both": (True, True)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", default="../shared/data/aci-bench-coded/valid.jsonl")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    data = load_dataset(args.data, system="atc").head(args.limit)
    coder = DrugCoder.from_folder(drug_ranker_folder(), default_kb().ontology("atc"))
    llm = load_llm(args.model)
    gold = [set(ex.codes) for ex in data.examples]
    preds: dict[str, list[set[str]]] = {v: [] for v in VARIANTS}
    cost = {v: {"seconds": 0.0, "model_calls": 0, "prompt_tokens": 0} for v in VARIANTS}
    changed = {v: 0 for v in VARIANTS}
    for i, ex in enumerate(data.examples):
        base = coder.mentions(ex.text)
        for name, (status, choose) in VARIANTS.items():
            coded = copy.deepcopy(base)
            reading = ModelReading()
            calls: list = []
            stop = llm.observe(calls.append)
            start = time.perf_counter()
            try:
                if status:
                    judge_status(llm, ex.text, coded, reading)
                if choose:
                    choose_close(llm, ex.text, coded, coder.onto, reading)
            finally:
                stop()
            cost[name]["seconds"] += time.perf_counter() - start
            cost[name]["model_calls"] += len(calls)
            cost[name]["prompt_tokens"] += sum(c.stats.prompt_tokens for c in calls)
            changed[name] += len(reading.status_changed) + sum(
                1 for c in reading.choices.values() if c["chosen"] != c["options"][0])
            preds[name].append({d.code for d in coder.decide(coded) if d.accepted})
        print(f"{i + 1}/{len(data)} {ex.id}", file=sys.stderr, flush=True)
    n = max(1, len(data))
    table = {name: {**micro(gold, preds[name]).to_dict(), "decisions_changed": changed[name],
                    **{k: round(v / n, 3) for k, v in cost[name].items()}} for name in VARIANTS}
    path = write_result("drug_ablation.json", {"data": data.name, "notes": len(data), "model": llm.name,
                                               "model_sha256": llm.sha256, "per_note_cost": "seconds, model_calls, "
                                               "prompt_tokens are per note", "variants": table})
    llm.close()
    for name, row in table.items():
        print(f"{name:14s} F1 {row['f1']:.4f}  P {row['precision']:.4f}  R {row['recall']:.4f}  "
              f"changed {row['decisions_changed']:3d}  calls/note {row['model_calls']:.2f}  "
              f"s/note {row['seconds']:.2f}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
