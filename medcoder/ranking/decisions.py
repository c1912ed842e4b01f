"""What the confidence of a visit note's final code means: the rules decide, and each kind of decision has its
own measured precision.

The ranker's probability is the chance that a candidate is a code of the note *before* the outpatient rules. The
rules then code a problem line through the Alphabetic Index, accept a candidate the assessment names, re-specify a
code to what its text supports, or set a code aside. Each final code carries one of `DECISIONS`. A
`FinalCalibration` maps its ranker probability through the curve learned for its decision on out-of-fold rankings
of coded visit notes with the rules in the loop (`fit_final`), accepts at one threshold on that probability and
auto-accepts above the lowest probability that was at least 0.95 precise out of fold. So the probability shown is
the one the code was accepted by, and a code is never shown below the threshold that accepted it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from medcoder.ranking import metrics

if TYPE_CHECKING:
    from medcoder.ranking.coder import RankedCode
    from medcoder.ranking.model import RankerModel

logger = logging.getLogger(__name__)

# ranker: the ranker's own acceptance (or rejection), unchanged by the rules; named: a candidate below the threshold
# accepted because the assessment names it; index: the code the Alphabetic Index reads from a problem line;
# specified: a ranker's code re-specified (laterality, 7th character, site, combination); convention: a code a coding
# convention added or re-specified (`visit.conventions`); set-aside: a rule removed it
DECISIONS = ("ranker", "named", "index", "specified", "convention", "set-aside")
MODELLED = ("ranker", "named")  # accepted codes of these decisions get the model's probability, the rest their curve
AUTO_PRECISION = 0.95  # the out-of-fold precision the auto-accept threshold is chosen for
MIN_BIN = 25  # codes per bin before pooling: a curve step rests on at least this many decisions
AUTO_MIN_SUPPORT = 20


@dataclass
class Curve:
    """A monotone map from the ranker's probability to the precision of one kind of decision (linear between the
    pooled bins' centres, flat beyond them)."""

    xs: list[float]
    ys: list[float]
    n: int = 0
    precision: float = 0.0

    def __call__(self, x: float) -> float:
        if not self.xs:
            return self.precision
        return float(np.interp(x, self.xs, self.ys))

    def to_dict(self) -> dict[str, Any]:
        return {"xs": [round(v, 5) for v in self.xs], "ys": [round(v, 5) for v in self.ys], "n": self.n,
                "precision": round(self.precision, 4)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Curve":
        return cls([float(v) for v in d["xs"]], [float(v) for v in d["ys"]], int(d["n"]), float(d["precision"]))


def fit_curve(x: Sequence[float], y: Sequence[bool], min_bin: int = MIN_BIN, prior: float = 2.0) -> Curve:
    """Binned isotonic regression: codes in bins of at least `min_bin` by probability, adjacent bins pooled until
    precision never falls as the probability rises; each bin's precision is shrunk toward the decision's overall
    precision by `prior` pseudo-codes, so a small kind of decision gets its own rate, not a noisy staircase."""
    xa, ya = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not len(xa):
        return Curve([], [], 0, 0.0)
    overall = float((ya.sum() + 1) / (len(ya) + 2))
    order = np.argsort(xa, kind="stable")
    blocks = [
        [float(ya[b].sum()), float(len(b)), float(xa[b].sum())]
        for b in np.array_split(order, max(1, len(xa) // min_bin))
    ]
    pooled: list[list[float]] = []
    for blk in blocks:  # pool adjacent violators
        pooled.append(blk)
        while len(pooled) > 1 and pooled[-2][0] / pooled[-2][1] >= pooled[-1][0] / pooled[-1][1]:
            last = pooled.pop()
            pooled[-1] = [a + b for a, b in zip(pooled[-1], last)]
    xs = [s_x / n for _, n, s_x in pooled]
    ys = [(s_y + prior * overall) / (n + prior) for s_y, n, _ in pooled]
    for i in range(1, len(ys)):  # shrinkage keeps the order of well-filled bins, not always of thin ones
        ys[i] = max(ys[i], ys[i - 1])
    return Curve(xs, ys, len(xa), float(ya.mean()))


@dataclass
class FinalCalibration:
    """Curves per decision, the acceptance threshold on their probability and the auto-accept threshold."""

    curves: dict[str, Curve]
    threshold: float
    auto_threshold: float | None = None
    report: dict[str, Any] = field(default_factory=dict)
    accepted_model: AcceptedModel | None = None  # the rules-accepted codes' probability (curves: the rest)

    @classmethod
    def of(cls, ranker: "RankerModel") -> "FinalCalibration | None":
        """The final calibration a ranker learned for visit notes (None for one learned before it existed)."""
        data = ranker.meta.get("final")
        return cls.from_dict(data) if data else None

    def probability(self, r: "RankedCode") -> float:
        if r.accepted and r.decision in MODELLED and self.accepted_model is not None:
            return self.accepted_model(accepted_row(r))
        curve = self.curves.get(r.decision) or self.curves["ranker"]
        return curve(r.ranker_probability)

    def apply(self, ranked: list["RankedCode"]) -> list["RankedCode"]:
        """Each code's probability becomes its decision's calibrated one; a code the rules accepted below the
        threshold is left as a suggestion (so saying); the auto-accept policy marks the rest. Best first."""
        for r in ranked:
            r.probability = self.probability(r)
            if r.accepted and r.probability < self.threshold:
                r.accepted = False
                r.reason = (r.reason + "; " if r.reason else "") + (
                    f"its calibrated probability {r.probability:.2f} is below the threshold {self.threshold:.2f}"
                )
            elif not r.accepted and r.decision == "ranker" and r.probability >= self.threshold:
                r.probability = min(r.probability, np.nextafter(self.threshold, 0.0))  # the ranker did not accept it
            r.auto = bool(r.accepted and self.auto_threshold is not None and r.probability >= self.auto_threshold)
        return sorted(ranked, key=lambda r: (-r.probability, -r.score, r.code))

    def to_dict(self) -> dict[str, Any]:
        return {
            "curves": {k: c.to_dict() for k, c in self.curves.items()},
            "threshold": round(self.threshold, 4),
            "auto_threshold": self.auto_threshold,
            "report": self.report,
            "accepted_model": self.accepted_model.to_dict() if self.accepted_model else None,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FinalCalibration":
        return cls(
            {k: Curve.from_dict(c) for k, c in d["curves"].items()},
            float(d["threshold"]),
            d.get("auto_threshold"),
            d.get("report") or {},
            AcceptedModel.from_dict(d["accepted_model"]) if d.get("accepted_model") else None,
        )


@dataclass
class Decided:
    """One final code of a training note, for fitting: its decision, ranker probability, whether the rules
    accepted it, and whether it is a reference code of the note."""

    decision: str
    x: float
    accepted: bool
    right: bool
    code: str = ""
    row: tuple[float, ...] = ()  # `accepted_row`: what the model over accepted codes reads


def decided(ranked: Sequence["RankedCode"], gold: set[str]) -> list[Decided]:
    return [
        Decided(
            r.decision, r.ranker_probability, r.accepted, r.code in gold, r.code, accepted_row(r) if r.accepted else ()
        )
        for r in ranked
    ]


# what an accepted code's final probability is read from, beside its decision (one-hot, "ranker" the base)
ROW = (
    "ranker_log_odds", "score_log_odds", "named", "index", "specified", "convention", "in_plan", "problem_line",
    "evidence", "direct", "symptom", "pre_rule_probability", "index_read",
)  # fmt: skip


def _log_odds(p: float) -> float:
    """Log-odds, with a code no search proposed (p 0) read like the least likely candidate, not far below it."""
    p = min(max(p, 0.02), 0.98)
    return math.log(p / (1 - p))


def accepted_row(r: "RankedCode") -> tuple[float, ...]:
    """The accepted code's row (`ROW`): the ranker's view, how it was decided, and where its evidence sits."""
    ev = [e for e in r.evidence if e.status in ("", "present")]
    return (
        _log_odds(r.ranker_probability),
        _log_odds(r.score),
        float(r.decision == "named"),
        float(r.decision == "index"),
        float(r.decision == "specified"),
        float(r.decision == "convention"),
        float(any(e.section == "plan" for e in ev)),
        float(any(e.source == "problem" for e in ev)),
        math.log1p(len(ev)),
        math.log1p(float(r.features.get("direct") or 0.0)),
        float(r.code[:1] == "R"),
        _log_odds(r.probability),
        float(r.index_read),
    )


@dataclass
class AcceptedModel:
    """Logistic regression over `ROW`, fitted on the rules-accepted codes of coded visit notes out of fold."""

    coef: list[float]
    intercept: float
    n: int = 0

    def __call__(self, row: Sequence[float]) -> float:
        z = self.intercept + sum(c * v for c, v in zip(self.coef, row))
        return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(ROW), "coef": [round(c, 6) for c in self.coef], "intercept": round(self.intercept, 6),
                "n": self.n}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AcceptedModel | None":
        if list(d.get("features", ())) != list(ROW):
            return None  # learned over other features: the curves alone
        return cls([float(c) for c in d["coef"]], float(d["intercept"]), int(d.get("n", 0)))


def fit_accepted(rows: Sequence[Decided]) -> AcceptedModel | None:
    """The model over accepted codes (None with too few, or with one outcome only)."""
    from sklearn.linear_model import LogisticRegression

    sel = [d for d in rows if d.accepted and d.decision in MODELLED and d.row]
    if len(sel) < 40 or len({d.right for d in sel}) < 2:
        return None
    clf = LogisticRegression(C=0.5, max_iter=1000).fit(np.asarray([d.row for d in sel]), [d.right for d in sel])
    return AcceptedModel([float(c) for c in clf.coef_[0]], float(clf.intercept_[0]), len(sel))


def fit_curves(rows: Sequence[Decided], rejected_only: bool = False) -> dict[str, Curve]:
    """A curve per decision seen: over every code of that decision, or for the `MODELLED` decisions (`rejected_only`,
    when their accepted codes have the model) over the codes the rules left as suggestions. An Index reading, a
    re-specified code and a convention's code keep their own measured rate."""
    out = {}
    for kind in DECISIONS:
        sel = [d for d in rows if d.decision == kind and not (rejected_only and kind in MODELLED and d.accepted)]
        if sel or kind == "ranker":
            out[kind] = fit_curve([d.x for d in sel], [d.right for d in sel])
    return out


def best_threshold(probs: Sequence[float], accepted: Sequence[bool], right: Sequence[bool], gold: int) -> float:
    """The cut on the calibrated probability with the best micro-F1 over the rules-accepted codes."""
    pairs = [(p, y) for p, a, y in zip(probs, accepted, right) if a]
    return float(metrics.best_f1_cut(pairs, gold, start=(-1.0, 0.5), in_gap=True)[1])


def reliability(p: Sequence[float], y: Sequence[bool], bins: int = 10, floor: float = 0.05) -> dict[str, Any]:
    """Per-bin confidence vs accuracy and the expected calibration error, over codes shown (p >= `floor`)."""
    return metrics.calibration([(float(a), bool(b)) for a, b in zip(p, y) if a >= floor], bins)


def fit_final(notes: Sequence[Sequence[Decided]], golds: Sequence[set[str]], folds: Sequence[int]) -> FinalCalibration:
    """Learn the final calibration from out-of-fold rankings with the rules in the loop, and measure it honestly:
    each fold's codes are calibrated by curves fitted on the other folds (cross-fitting), the thresholds are chosen
    on those probabilities, and the report gives micro-F1, ECE, the auto-accept share and a reliability table per
    decision."""
    probs: list[list[float]] = [[0.0] * len(n) for n in notes]
    for f in sorted(set(folds)):
        train = [d for n, g in zip(notes, folds) if g != f for d in n]
        model = fit_accepted(train)
        curves = fit_curves(train, model is not None)
        for i, n in enumerate(notes):
            if folds[i] == f:
                probs[i] = [_probability(d, curves, model) for d in n]
    flat = [(p, d) for ps, n in zip(probs, notes) for p, d in zip(ps, n)]
    gold_total = sum(len(g) for g in golds)
    threshold = best_threshold(
        [p for p, _ in flat], [d.accepted for _, d in flat], [d.right for _, d in flat], gold_total
    )
    pred = [{d.code for p, d in zip(ps, n) if d.accepted and p >= threshold} for ps, n in zip(probs, notes)]
    ranking = [[d.code for _, d in sorted(zip(ps, n), key=lambda t: -t[0])] for ps, n in zip(probs, notes)]
    acc = np.asarray([p for p, d in flat if d.accepted and p >= threshold])
    acc_y = np.asarray([d.right for p, d in flat if d.accepted and p >= threshold], dtype=float)
    auto = metrics.precision_cut(acc, acc_y, AUTO_PRECISION, AUTO_MIN_SUPPORT) if len(acc) else None
    shown = flat
    report: dict[str, Any] = {
        "notes": len(notes),
        "cv": metrics.icd_report([set(g) for g in golds], pred, ranking),
        "ece": reliability([p for p, _ in shown], [d.right for _, d in shown])["ece"],
        "threshold": round(threshold, 4),
        "auto_accept_threshold": auto,
        "auto_accept_share": round(float((acc >= auto).mean()), 4) if auto is not None and len(acc) else 0.0,
        "auto_accept_precision": round(float(acc_y[acc >= auto].mean()), 4) if auto is not None and len(acc) else None,
        "by_decision": {},
    }
    for kind in DECISIONS:
        sel = [(p, d) for p, d in shown if d.decision == kind]
        if sel:
            acc_kind = [d.right for p, d in sel if d.accepted and p >= threshold]
            report["by_decision"][kind] = {
                "codes": len(sel),
                "accepted": len(acc_kind),
                "precision": round(sum(acc_kind) / len(acc_kind), 4) if acc_kind else None,
                "reliability": reliability([p for p, _ in sel], [d.right for _, d in sel]),
            }
    every = [d for n in notes for d in n]
    model = fit_accepted(every)
    curves = fit_curves(every, model is not None)
    logger.info("final calibration: threshold %.3f, auto-accept %s, cv micro-F1 %s", threshold, auto,
                report["cv"]["micro"]["f1"])  # fmt: skip
    return FinalCalibration(curves, threshold, auto, report, model)


def _probability(d: Decided, curves: dict[str, Curve], model: AcceptedModel | None) -> float:
    if d.accepted and d.decision in MODELLED and d.row and model is not None:
        return model(d.row)
    return (curves.get(d.decision) or curves["ranker"])(d.x)


__all__ = ["DECISIONS", "Curve", "Decided", "FinalCalibration", "decided", "fit_curve", "fit_final"]
