"""Coding metrics: micro/macro P/R/F1 on full codes and 3-character categories, CodiEsp-D's MAP,
ATC exact match per level, per-chapter F1, and error types against the code tree.

Codes are compared in medcoder's canonical form (`E11.65`); callers normalise first.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from medcoder.knowledge.ontology import CodeSystem

ATC_LEVEL_LENGTHS = (1, 3, 4, 5, 7)


@dataclass(slots=True)
class PRF:
    precision: float
    recall: float
    f1: float
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def to_dict(self) -> dict[str, float | int]:
        return {
            "precision": round(self.precision, 4),
            "recall": round(self.recall, 4),
            "f1": round(self.f1, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
        }


def _prf(tp: int, fp: int, fn: int) -> PRF:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return PRF(p, r, 2 * p * r / (p + r) if p + r else 0.0, tp, fp, fn)


def category(code: str) -> str:
    """A code's first three characters, dot left out: its ICD-10-CM category (`E11.65` -> `E11`), or for ATC
    its therapeutic subgroup's first part (`C01AA05` -> `C01`, level 2). The one `category()`."""
    return code.replace(".", "")[:3]


def micro(gold: Sequence[set[str]], pred: Sequence[set[str]]) -> PRF:
    """Counts pooled over all documents."""
    tp = sum(len(g & p) for g, p in zip(gold, pred))
    fp = sum(len(p - g) for g, p in zip(gold, pred))
    fn = sum(len(g - p) for g, p in zip(gold, pred))
    return _prf(tp, fp, fn)


def macro(gold: Sequence[set[str]], pred: Sequence[set[str]]) -> PRF:
    """Per-code P/R/F1 averaged over every code that is gold or predicted somewhere (CodiEsp's macro)."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g, p in zip(gold, pred):
        tp.update(g & p)
        fp.update(p - g)
        fn.update(g - p)
    codes = set(tp) | set(fp) | set(fn)
    if not codes:
        return _prf(0, 0, 0)
    per = [_prf(tp[c], fp[c], fn[c]) for c in codes]
    return PRF(
        sum(x.precision for x in per) / len(per),
        sum(x.recall for x in per) / len(per),
        sum(x.f1 for x in per) / len(per),
        sum(tp.values()),
        sum(fp.values()),
        sum(fn.values()),
    )


def average_precision(gold: set[str], ranked: Sequence[str]) -> float:
    """AP of one document's ranked predictions: mean of precision@k at each relevant rank, over |gold|."""
    if not gold:
        return 0.0
    hits, total, seen = 0, 0.0, set()
    for k, code in enumerate(ranked, start=1):
        if code in seen:
            continue
        seen.add(code)
        if code in gold:
            hits += 1
            total += hits / k
    return total / len(gold)


def mean_average_precision(gold: Sequence[set[str]], ranked: Sequence[Sequence[str]]) -> float:
    """CodiEsp-D's official metric: AP averaged over documents that have gold codes."""
    aps = [average_precision(g, r) for g, r in zip(gold, ranked) if g]
    return sum(aps) / len(aps) if aps else 0.0


def atc_level_match(gold: str, pred: str | None) -> list[bool]:
    """Whether the prediction equals the gold code at each of the five ATC levels."""
    if not pred:
        return [False] * 5
    return [len(pred) >= n and len(gold) >= n and pred[:n] == gold[:n] for n in ATC_LEVEL_LENGTHS]


def mean_cost(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Seconds, model calls and tokens per item, averaged over rows that carry them."""
    n = max(len(rows), 1)
    return {
        k: round(sum(r.get(k, 0) for r in rows) / n, 3)
        for k in ("seconds", "model_calls", "prompt_tokens", "cached_tokens")
    }


def icd_report(gold: Sequence[set[str]], pred: Sequence[set[str]], ranked: Sequence[Sequence[str]]) -> dict[str, Any]:
    """Everything the eval JSON says about ICD-10-CM coding quality (JSON values)."""
    cat_gold = [{category(c) for c in g} for g in gold]
    cat_pred = [{category(c) for c in p} for p in pred]
    return {
        "micro": micro(gold, pred).to_dict(),
        "macro": macro(gold, pred).to_dict(),
        "category_micro": micro(cat_gold, cat_pred).to_dict(),
        "category_macro": macro(cat_gold, cat_pred).to_dict(),
        "map": round(mean_average_precision(gold, ranked), 4),
    }


def chapter_of(onto: "CodeSystem") -> Callable[[str], str]:
    """A code's top-level group (ICD chapter) by `CodeSystem.top_level`, "unknown" for a code the system lacks
    (a gold code of another year): what `per_group_f1` groups by."""

    def chapter(code: str) -> str:
        try:
            return onto.top_level(code)
        except Exception:  # noqa: BLE001 - any code the system cannot place is grouped as unknown
            return "unknown"

    return chapter


def per_group_f1(
    gold: Sequence[set[str]], pred: Sequence[set[str]], group: Callable[[str], str]
) -> dict[str, dict[str, float]]:
    """Micro P/R/F1 within each group (ICD chapter) of the gold and predicted codes."""
    groups = {group(c) for g in gold for c in g} | {group(c) for p in pred for c in p}
    out = {}
    for name in sorted(groups):
        gs = [{c for c in g if group(c) == name} for g in gold]
        ps = [{c for c in p if group(c) == name} for p in pred]
        out[name] = micro(gs, ps).to_dict()
    return out


def error_types(gold: set[str], pred: set[str], is_ancestor: Callable[[str, str], bool]) -> Counter[str]:
    """How each wrong prediction and each miss relates to the gold codes in the tree.

    too_general: predicted an ancestor of a gold code; too_specific: a descendant; wrong_branch:
    same 3-character category, neither; extra: unrelated prediction; missed: a gold code that no
    prediction relates to."""
    out: Counter[str] = Counter()
    explained: set[str] = set()
    for p in sorted(pred - gold):
        kind = "extra"
        for g in sorted(gold - pred):
            if is_ancestor(p, g):
                kind = "too_general"
            elif is_ancestor(g, p):
                kind = "too_specific"
            elif category(p) == category(g):
                kind = "wrong_branch"
            else:
                continue
            explained.add(g)
            break
        out[kind] += 1
    out["missed"] += len((gold - pred) - explained)
    out["correct"] += len(gold & pred)
    return out


def calibration(
    scored: Sequence[tuple[float, bool]],
    bins: int = 10,
    precision_target: float = 0.95,
    auto_threshold: float | None = None,
) -> dict[str, object]:
    """Reliability of probabilities: per-bin confidence vs accuracy, expected calibration error, and the
    share of predictions that could be auto-accepted at `precision_target` precision (highest-first)."""
    n = len(scored)
    if not n:
        return {"ece": None, "bins": [], "auto_accept_share": 0.0}
    table = []
    ece = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(p, y) for p, y in scored if lo <= p < hi or (b == bins - 1 and p == 1.0)]
        if not inside:
            continue
        conf = sum(p for p, _ in inside) / len(inside)
        acc = sum(y for _, y in inside) / len(inside)
        ece += len(inside) / n * abs(acc - conf)
        table.append({"lo": lo, "hi": hi, "n": len(inside), "confidence": round(conf, 4), "accuracy": round(acc, 4)})
    ordered = sorted(scored, key=lambda x: -x[0])
    hits, best, cut = 0, 0, None
    for i, (p, y) in enumerate(ordered, start=1):
        hits += y
        if hits / i >= precision_target:
            best, cut = i, p
    out: dict[str, object] = {
        "ece": round(ece, 4),
        "bins": table,
        "pairs": n,
        "oracle_auto_accept_share": round(best / n, 4),
        "oracle_auto_accept_threshold": cut,
    }
    if auto_threshold is not None:  # the threshold fixed on training data, applied here
        above = [y for p, y in scored if p >= auto_threshold]
        out.update(
            auto_accept_threshold=auto_threshold,
            auto_accept_n=len(above),
            auto_accept_precision=round(sum(above) / len(above), 4) if above else None,
        )
    return out


def best_f1_cut(
    pairs: Sequence[tuple[float, bool]],
    total_gold: int,
    start: tuple[float, float] = (0.0, 0.5),
    in_gap: bool = False,
) -> tuple[float, float]:
    """(micro-F1, cut) of the probability cut with the best micro-F1 over (probability, right) pairs, against
    `total_gold` reference codes (those no pair reached count as misses); `start` when no cut beats it. With
    `in_gap` the cut sits midway to the next lower probability (0 below the last), not on the last one kept, so
    a new code a hair below the lowest learned probability is not cut off by the threshold's own edge."""
    ordered = sorted(pairs, key=lambda x: -x[0])
    tp = fp = 0
    best = start
    for i, (p, hit) in enumerate(ordered):
        tp += hit
        fp += not hit
        if i + 1 < len(ordered) and ordered[i + 1][0] == p:
            continue
        f1 = 2 * tp / (tp + fp + total_gold) if total_gold else 0.0
        if f1 > best[0]:
            below = ordered[i + 1][0] if i + 1 < len(ordered) else 0.0
            best = (f1, (p + below) / 2 if in_gap else p)
    return best


def precision_cut(p: np.ndarray, y: np.ndarray, precision: float = 0.95, min_support: int = 20) -> float | None:
    """The lowest probability above which the predictions were at least `precision` precise (at least
    `min_support` of them): an auto-accept threshold, chosen on out-of-fold predictions."""
    order = np.argsort(-p, kind="stable")
    prec = np.cumsum(y[order]) / np.arange(1, len(order) + 1)
    ok = [i for i in range(min_support - 1, len(order)) if prec[i] >= precision]
    return round(float(p[order][max(ok)]), 4) if ok else None
