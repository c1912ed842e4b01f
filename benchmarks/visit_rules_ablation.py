"""Each visit-note rule of the assessment step, measured by leaving it out: the same notes, the same candidates
(searched once per note), the same shipped ranker, in one run. A rule that does not help is a rule to remove.

Variants: all rules (what ships); without the Index reading of problem lines (`index_phrase`); naming a
problem's code by the Index search as well as by its label words (the previous behaviour); without E11.65 →
E11.9 when no sentence says the sugars are high; without the chief-complaint-only "referral question" rule;
without each coding convention (`visit.conventions`); without the final calibration of the decisions
(`ranking.decisions`: the ranker's threshold and probabilities as they were). Each variant also reports the
calibration (ECE over the codes shown) and the auto-accept policy's precision and share.

Run: python benchmarks/visit_rules_ablation.py [--data ../shared/data/aci-bench-coded/valid.jsonl] [--out F]
Writes benchmarks/results/visit_rules_ablation.json (micro P/R/F1, category F1 per variant, and the notes
whose codes each variant changes).
"""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import visit_notes_setup, write_result  # noqa: E402

import medcoder.visit.rules as rules_module  # noqa: E402
from medcoder.knowledge.abbreviations import expand  # noqa: E402
from medcoder.knowledge.lexical import tokenize  # noqa: E402
from medcoder.ranking import metrics  # noqa: E402
from medcoder.visit import guidelines as gl  # noqa: E402
from medcoder.visit.conventions import CONVENTIONS, DEFAULT_CONVENTIONS  # noqa: E402


def _names_by_index_search_too(onto: Any, code: str, line: str) -> bool:
    """The previous naming: a label word, or any of the Index search's first five hits the code sits under."""
    read = expand(line)
    if gl.sentence_words(onto.label(code)) & set(tokenize(read)):
        return True
    return any(code.startswith(h.code) for h in onto.term_hits(read)[:5])


VARIANTS: dict[str, Callable[[ExitStack, Any], None]] = {
    "all rules (shipped)": lambda stack, coder: None,
    "without the Index reading of problem lines": lambda stack, coder: stack.enter_context(
        mock.patch.object(rules_module, "read_phrase", lambda onto, text: None)
    ),
    "naming by the Index search too (before)": lambda stack, coder: stack.enter_context(
        mock.patch.object(rules_module, "_names", _names_by_index_search_too)
    ),
    "without E11.65 -> E11.9 (no high sugars)": lambda stack, coder: stack.enter_context(
        mock.patch.object(gl, "without_hyperglycemia", lambda code, sentences: code)
    ),
    "without the referral-question rule": lambda stack, coder: stack.enter_context(
        mock.patch.object(
            gl, "OUTPATIENT_RULES", tuple(r for r in gl.OUTPATIENT_RULES if r is not gl.referral_question)
        )
    ),
    **{
        f"{'without' if name in DEFAULT_CONVENTIONS else 'with'} the {name} convention": (
            lambda name: lambda stack, coder: stack.enter_context(
                mock.patch.object(
                    coder,
                    "conventions",
                    [c for c in DEFAULT_CONVENTIONS if c != name]
                    if name in DEFAULT_CONVENTIONS
                    else [*DEFAULT_CONVENTIONS, name],
                )
            )
        )(name)
        for name in CONVENTIONS
    },
    "without the final calibration": lambda stack, coder: stack.enter_context(
        mock.patch.dict(coder.ranker.meta, {"final": None})
    ),
}


def main() -> None:
    args, data, coder, cache = visit_notes_setup(__doc__.splitlines()[0], "visit_rules_ablation.json")
    t0 = time.perf_counter()
    cands = []
    for i, ex in enumerate(data.examples, 1):
        cands.append(coder.candidates(ex.text, cache=cache))
        print(f"\rcandidates: {i}/{len(data)}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    search_s = time.perf_counter() - t0
    gold = [set(ex.codes) for ex in data.examples]
    results: dict[str, Any] = {}
    shipped: list[set[str]] = []
    for name, patch in VARIANTS.items():
        t1 = time.perf_counter()
        with ExitStack() as stack:
            patch(stack, coder)
            ranked = [coder.rank(c, note=ex.text) for c, ex in zip(cands, data.examples)]
        pred = [{r.code for r in rs if r.accepted} for rs in ranked]
        shown = [(r.probability, r.code in g) for rs, g in zip(ranked, gold) for r in rs if r.probability >= 0.05]
        auto = [r.code in g for rs, g in zip(ranked, gold) for r in rs if r.auto]
        shipped = shipped or pred
        cat = metrics.micro(
            [{metrics.category(c) for c in g} for g in gold], [{metrics.category(c) for c in p} for p in pred]
        )
        results[name] = {
            "micro": metrics.micro(gold, pred).to_dict(),
            "category_f1": round(cat.f1, 4),
            "ece": metrics.calibration(shown)["ece"],
            "auto_accept": {
                "codes": len(auto),
                "precision": round(sum(auto) / len(auto), 4) if auto else None,
                "share_of_accepted": round(len(auto) / max(1, sum(len(p) for p in pred)), 4),
            },
            "notes_changed": {
                ex.id: {"added": sorted(p - s), "removed": sorted(s - p)}
                for ex, p, s in zip(data.examples, pred, shipped)
                if p != s
            },
            "rank_seconds": round(time.perf_counter() - t1, 2),
        }
        r = results[name]
        print(
            f"{name:50s} micro-F1 {r['micro']['f1']:.3f}  category F1 {cat.f1:.3f}  ECE {r['ece']}  "
            f"auto {r['auto_accept']['codes']} ({r['auto_accept']['precision']})",
            file=sys.stderr,
        )
    path = write_result(
        args.out,
        {"data": str(args.data), "notes": len(data), "search_seconds": round(search_s, 1), "variants": results},
    )
    print(path)


if __name__ == "__main__":
    main()
