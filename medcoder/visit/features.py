"""The visit feature group of a candidate code: where in a visit note its evidence sits (the visit parts), how
the note states it (`guidelines.finding_status`), and what the outpatient guidelines say of the code (a symptom,
an unspecified label, the side its label names against the side the text states)."""

from __future__ import annotations

from typing import Protocol

from medcoder.knowledge.ontology import CodeSystem
from medcoder.visit import guidelines as gl
from medcoder.visit.parts import RANKER_PARTS

# where in a visit note the evidence sits, how it is stated, and what the outpatient guidelines say of the code
VISIT_FEATURES = (
    *(f"sec_{p}" for p in RANKER_PARTS),
    "only_findings",
    "prob_best_rank",
    "prob_max_score",
    "prob_n",
    "label_in_problem",
    *(f"st_{s}" for s in gl.STATUSES),
    "symptom",
    "unspecified_label",
    "side_match",
    "visit_note",
    "cat_plan_hits",
)
_FINDINGS_ONLY = {"ros", "exam", "results"}


class VisitSignals(Protocol):
    """What the note's spans said of one candidate code, as the visit features read it."""

    parts: dict[str, int]  # visit part -> spans there that found it
    statuses: dict[str, int]  # finding status -> spans stating it so
    prob_ranks: list[int]  # its ranks in the searches of the problem lines
    prob_scores: list[float]
    label_in_problem: float  # best share of the label's words found in one problem line
    sides: set[str]  # the laterality of the spans that found it


def visit_features(
    onto: CodeSystem, code: str, found: VisitSignals, visit: bool, cat_plan_hits: int, missing_rank: float
) -> dict[str, float]:
    """The VISIT_FEATURES of one candidate: `visit` whether the note is a visit note, `cat_plan_hits` the
    assessment's present sightings of its category's codes, `missing_rank` the rank of a search that missed it."""
    label = onto.label(code)
    stated = sum(found.statuses.values())
    found_in = {p for p, n in found.parts.items() if n}
    side = gl.label_side(label)
    if not found.sides or not side:
        side_match = 0.0
    elif side == "unspecified":
        side_match = -0.5
    else:
        side_match = 1.0 if side in found.sides else -1.0
    return {
        **{f"sec_{p}": float(found.parts.get(p, 0)) for p in RANKER_PARTS},
        "only_findings": float(bool(found_in) and found_in <= _FINDINGS_ONLY),
        "prob_best_rank": min(found.prob_ranks, default=missing_rank),
        "prob_max_score": max(found.prob_scores, default=0.0),
        "prob_n": len(found.prob_ranks),
        "label_in_problem": found.label_in_problem,
        **{f"st_{s}": (found.statuses.get(s, 0) / stated) if stated else -1.0 for s in gl.STATUSES},
        "symptom": float(gl.is_symptom(code)),
        "unspecified_label": float(gl.is_unspecified(label)),
        "side_match": side_match,
        "visit_note": float(visit),
        "cat_plan_hits": float(cat_plan_hits),
    }
