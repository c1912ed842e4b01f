"""Does the model help on visit notes? The default model reads the assessment and plan and lists the problems
assessed or treated at the visit; each confirmed one is read through the Alphabetic Index like a problem line of
the note (`visit.rules._code_assessed_problems`). Measured against the same workflow without it: the same
notes, the same candidates (searched once), the same shipped ranker and rules, one run.

Run: python benchmarks/visit_model_problems.py [--data ../shared/data/aci-bench-coded/valid.jsonl] [--model default]
Writes benchmarks/results/visit_model_problems.json (micro P/R/F1 with and without, the codes the model's
problems added or removed per note, model calls, tokens and seconds per note).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import visit_notes_setup, write_result  # noqa: E402

import medcoder.visit.rules as rules_module  # noqa: E402
from medcoder.agents.problem_lister import list_problems  # noqa: E402
from medcoder.llm import load_llm  # noqa: E402
from medcoder.ranking import metrics  # noqa: E402
from medcoder.ranking.candidates import SearchSpan, problem_spans  # noqa: E402
from medcoder.visit import read_layout  # noqa: E402


def model_problems(llm: Any, note: str) -> tuple[list[SearchSpan], dict[str, Any]]:
    """The confirmed problems the model lists from the note's assessment (`agents.problem_lister`)."""
    return list_problems(llm, note, read_layout(note))


def main() -> None:
    args, data, coder, cache = visit_notes_setup(
        __doc__.splitlines()[0], "visit_model_problems.json", lambda ap: ap.add_argument("--model", default="default")
    )
    llm = load_llm(args.model)
    gold = [set(ex.codes) for ex in data.examples]
    without, with_model, per_note = [], [], {}
    for i, ex in enumerate(data.examples, 1):
        cands = coder.candidates(ex.text, cache=cache)
        without.append({r.code for r in coder.rank(cands, note=ex.text) if r.accepted})
        extra, info = model_problems(llm, ex.text)
        own = problem_spans
        with mock.patch.object(rules_module, "problem_spans", lambda note, layout=None: own(note, layout) + extra):
            with_model.append({r.code for r in coder.rank(cands, note=ex.text) if r.accepted})
        info.update(added=sorted(with_model[-1] - without[-1]), removed=sorted(without[-1] - with_model[-1]))
        per_note[ex.id] = info
        print(f"\r{i}/{len(data)} {ex.id}: {info.get('kept')} +{info['added']} -{info['removed']}", file=sys.stderr)
    out = {
        "data": str(args.data),
        "model": args.model,
        "notes": len(data),
        "without_model": metrics.micro(gold, without).to_dict(),
        "with_model_problems": metrics.micro(gold, with_model).to_dict(),
        "seconds_per_note": round(sum(v.get("seconds", 0.0) for v in per_note.values()) / max(1, len(data)), 1),
        "per_note": per_note,
    }
    f1 = (out["without_model"]["f1"], out["with_model_problems"]["f1"])
    print(f"micro-F1 without {f1[0]:.3f}, with {f1[1]:.3f}", file=sys.stderr)
    print(write_result(args.out, out))


if __name__ == "__main__":
    main()
