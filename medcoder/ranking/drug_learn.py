"""`medcoder learn --system atc`: the drug ranker, learned from coded drug products and coded notes.

Products teach how to choose among a substance's codes from its ingredients and from its brand
name (each product is two items); coded notes teach the same choice in context (route words,
section, status). Cross-validation groups products by ingredient set and notes by note, and the
priors (how often each ATC group was the answer) are recomputed without the held-out fold, so
the reported figures are those of substances the ranker never saw, which is how the held-out
products are measured.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medcoder.errors import MedcoderError
from medcoder.knowledge.atc import ATC
from medcoder.knowledge.ontology import CodeSystem
from medcoder.progress import Progress
from medcoder.ranking import metrics
from medcoder.ranking.drug_features import DRUG_FEATURES, DrugPriors, family_word
from medcoder.ranking.drugs import (
    PRIORS_FILE,
    CodedMention,
    DrugCandidate,
    DrugCoder,
    apply_rules,
    candidates_of,
    product_context,
    product_records,
    rank_key,
)
from medcoder.ranking.model import RankerModel, expected_calibration_error, new_calibrator, new_drug_classifier

logger = logging.getLogger(__name__)


@dataclass
class DrugItem:
    """One thing to code while learning: a product (from ingredients or brand) or a note's mention."""

    group: str  # cross-validation group: the ingredient set, or the note id
    coded: CodedMention
    gold: frozenset[str]
    note: str | None = None  # the note id for a note's mention
    mode: str = "note"  # ingredients | brand (each + drugs.RECORD when read with the product record) | note
    counts: bool = True  # its answer counts in the priors (a product once: its fullest reading)

    @property
    def candidates(self) -> list[DrugCandidate]:
        return self.coded.candidates


@dataclass
class DrugLearnReport:
    """Cross-validated quality of the drug ranker on substances it did not see."""

    products: int
    notes: int
    items: int
    rows: int
    cv: dict[str, Any]
    threshold: float
    seconds: float
    folder: str = ""
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _items(coder: DrugCoder, products: Sequence[Any], notes: Sequence[Any]) -> list[DrugItem]:
    """Mentions without rows yet (rows depend on the fold's priors). A product with a record (route, dosage
    form) is read with and without it, so the ranker codes both a bare name and a pharmacy system's record."""
    items: list[DrugItem] = []
    for ex in products:
        gold = frozenset(c.upper() for c in ex.codes)
        ingredients, brand = ex.meta.get("ingredients") or ex.text, ex.meta.get("brand", "")
        readings = [(suffix, product_context(brand, route, form)) for suffix, route, form in product_records(ex.meta)]
        m = coder.product_mention(ingredients=ingredients)
        group = "+".join(sorted(m.substances)) if m else ingredients.lower()
        mb = coder.product_mention(brand=brand) if brand else None
        for mode, mention in (("ingredients", m), ("brand", mb)):
            if mention is None:
                continue
            for suffix, ctx in readings:
                counts = mode == "ingredients" and suffix == readings[-1][0]
                items.append(DrugItem(group, CodedMention(mention, ctx, []), gold, mode=mode + suffix, counts=counts))
    for ex in notes:
        gold = frozenset(c.upper() for c in ex.codes)
        for m, ctx in coder.read(ex.text):
            items.append(DrugItem(f"note:{ex.id}", CodedMention(m, ctx, []), gold, note=ex.id))
    return items


def _priors(coder: DrugCoder, items: Sequence[DrugItem]) -> DrugPriors:
    """How often each group and each substance's code was the answer in these items."""
    priors = DrugPriors()
    seen: set[tuple[str, str]] = set()
    for it in items:
        if not it.counts:
            continue  # the same product as its fullest ingredients item
        if it.note is None:
            for g in it.gold:
                priors.add(it.coded.mention.substances, g)
                priors.add_family(family_word(it.coded.context.window), g)
                priors.add_context(it.coded.context, g)
                priors.add_words(it.coded.mention.substances, g)
            continue
        for g in it.gold & {c.code for c in candidates_of(coder.lex, it.coded.mention)}:
            if (it.note, g) not in seen:
                seen.add((it.note, g))
                priors.add(it.coded.mention.substances, g)
                priors.add_family(family_word(it.coded.mention.text), g)
                priors.add_context(it.coded.context, g)
    return priors


def _fill(coder: DrugCoder, items: Sequence[DrugItem], priors: DrugPriors) -> None:
    for it in items:
        it.coded.candidates = coder.rows(
            it.coded.mention,
            it.coded.context,
            is_product=it.mode != "note",
            brand_only=it.mode.startswith("brand"),
            priors=priors,
        )


def _fill_out_of_fold(coder: DrugCoder, items: Sequence[DrugItem], folds: int, seed: int) -> None:
    """Training rows whose priors were counted without their own group: otherwise "how often this
    substance's code was the answer" is the answer, and the ranker learns nothing that transfers."""
    fold_of = group_folds([it.group for it in items], folds, seed + 1)
    for f in range(folds):
        inside = [it for it in items if fold_of[it.group] == f]
        _fill(coder, inside, _priors(coder, [it for it in items if fold_of[it.group] != f]))


def _xy(items: Sequence[DrugItem]) -> tuple[np.ndarray, np.ndarray]:
    """Training rows: a product with one candidate teaches no choice and is left out; a note's mention
    always teaches whether to code it."""
    items = [it for it in items if len(it.candidates) > 1 or it.note is not None]
    rows = [c.row for it in items for c in it.candidates]
    y = [int(c.code in it.gold) for it in items for c in it.candidates]
    x = np.asarray(rows, dtype=np.float64).reshape(-1, len(DRUG_FEATURES))
    x[:, np.all(np.isnan(x), axis=0)] = 0.0  # a signal never computed in this data (no brands, no combinations)
    return x, np.asarray(y, dtype=int)


def group_folds(groups: Sequence[str], k: int, seed: int = 0) -> dict[str, int]:
    uniq = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(uniq))
    return {uniq[j]: i % k for i, j in enumerate(order)}


def product_scores(items: Sequence[DrugItem], products: int) -> dict[str, Any]:
    """Level 1-5 exact match of the top code per product, by mode, over all `products` (a product the
    lexicon found nothing in is a miss)."""
    out: dict[str, Any] = {}
    for mode in dict.fromkeys(it.mode for it in items if it.note is None):
        its = [it for it in items if it.mode == mode and it.candidates]
        out[mode] = {
            "products": products,
            "found": len(its),
            **{
                f"level{lvl}": round(
                    sum(min(it.candidates, key=rank_key).code[:n] == next(iter(it.gold))[:n] for it in its)
                    / max(1, products),
                    4,
                )
                for lvl, n in ((1, 1), (2, 3), (3, 4), (4, 5), (5, 7))
            },
        }
    return out


def _mentions_by_note(items: Sequence[DrugItem], golds: dict[str, frozenset[str]]) -> dict[str, list[CodedMention]]:
    """Each coded note's drug mentions, their candidates best first (as `DrugCoder.decide` reads them)."""
    by_note: dict[str, list[CodedMention]] = {n: [] for n in golds}
    for it in items:
        if it.note is not None:
            it.coded.candidates.sort(key=rank_key)
            by_note[it.note].append(it.coded)
    return by_note


def note_scores(
    coder: DrugCoder, items: Sequence[DrugItem], golds: dict[str, frozenset[str]], threshold: float
) -> dict[str, float]:
    """Micro precision/recall/F1 of the notes' accepted drug codes at a threshold."""
    by_note = _mentions_by_note(items, golds)
    tp = fp = fn = 0
    for note, gold in golds.items():
        pred = {d.code for d in coder.decide(by_note[note], threshold) if d.accepted}
        tp, fp, fn = tp + len(pred & gold), fp + len(pred - gold), fn + len(gold - pred)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def auto_accept_of_notes(
    coder: DrugCoder, items: Sequence[DrugItem], golds: dict[str, frozenset[str]], threshold: float
) -> dict[str, Any]:
    """The auto-accept threshold chosen on the notes' out-of-fold accepted codes for 0.95 precision, with the
    precision and the share of accepted codes above it."""
    by_note = _mentions_by_note(items, golds)
    pairs = [
        (d.probability, d.code in gold)
        for note, gold in golds.items()
        for d in coder.decide(by_note[note], threshold)
        if d.accepted
    ]
    p, y = np.asarray([a for a, _ in pairs]), np.asarray([b for _, b in pairs], dtype=float)
    cut = metrics.precision_cut(p, y) if len(p) else None
    above = p >= cut if cut is not None else np.zeros(len(p), dtype=bool)
    return {
        "auto_accept_threshold": cut,
        "auto_accept_precision": round(float(y[above].mean()), 4) if above.any() else None,
        "auto_accept_share": round(float(above.mean()), 4) if len(p) else 0.0,
    }


def learn_drugs(
    onto: CodeSystem,
    products: Sequence[Any],
    notes: Sequence[Any] = (),
    out: str | Path | None = None,
    folds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
    source: dict[str, Any] | None = None,
) -> tuple[DrugCoder, DrugLearnReport]:
    """Learn the drug ranker; `products` are Examples with `meta` brand/ingredients, `notes` coded notes (ATC)."""
    start = time.perf_counter()
    placeholder = RankerModel(ATC.system, None, None, 0.5, features=DRUG_FEATURES)
    coder = DrugCoder(onto, placeholder, DrugPriors())
    items = _items(coder, products, notes)
    if len({it.group for it in items}) < folds:
        raise MedcoderError(
            f"learning the drug ranker needs at least {folds} products or notes, got {len(items)} items"
        )
    golds = {ex.id: frozenset(c.upper() for c in ex.codes) for ex in notes}
    fold_of = group_folds([it.group for it in items], folds, seed)
    fold = np.asarray([fold_of[it.group] for it in items])
    oof: list[np.ndarray] = [np.zeros(0)] * len(items)
    # each item's candidates as its held-out fold saw them (the word memory's candidates depend on the priors,
    # and later folds refill an item as training data)
    held_out: list[list[DrugCandidate]] = [[] for _ in items]
    stages: dict[str, float] = {}
    for f in range(folds):
        train = [it for it, g in zip(items, fold) if g != f]
        held = [i for i, g in enumerate(fold) if g == f]
        _fill_out_of_fold(coder, train, folds, seed)
        _fill(coder, [items[i] for i in held], _priors(coder, train))
        x, y = _xy(train)
        clf = new_drug_classifier(seed).fit(x, y)
        for i in held:
            cands = held_out[i] = items[i].candidates
            oof[i] = clf.predict_proba(np.asarray([c.row for c in cands]))[:, 1] if cands else np.zeros(0)
        if progress:
            progress("folds", f + 1, folds)
    stages["cv_s"] = round(time.perf_counter() - start, 1)
    for it, cands in zip(items, held_out):
        it.coded.candidates = cands
    labels = [np.asarray([int(c.code in it.gold) for c in it.candidates]) for it in items]
    calibrator = new_calibrator().fit(np.concatenate(oof), np.concatenate(labels))
    for it, o in zip(items, oof):
        for c, r, p in zip(it.candidates, o, np.clip(calibrator.predict(o), 0, 1) if len(o) else o):
            c.raw, c.probability = float(r), float(p)
        it.candidates.sort(key=rank_key)
        apply_rules(it.candidates, it.coded.context, it.note is None)  # as `DrugCoder.score` ranks them
    cv: dict[str, Any] = {"products": product_scores(items, len(products))}
    threshold = 0.5
    if golds:
        grid = [round(t, 2) for t in np.arange(0.05, 0.96, 0.05)]
        scored = [(note_scores(coder, items, golds, t), t) for t in grid]
        best, threshold = max(scored, key=lambda s: (s[0]["f1"], -abs(s[1] - 0.5)))
        cv["notes"] = {**best, "threshold": threshold, **auto_accept_of_notes(coder, items, golds, threshold)}
    cv["ece"] = round(
        expected_calibration_error(
            np.concatenate([[c.probability for c in it.candidates] for it in items]), np.concatenate(labels)
        ),
        4,
    )
    t0 = time.perf_counter()
    _fill_out_of_fold(coder, items, folds, seed)
    x, y = _xy(items)
    priors = _priors(coder, items)
    classifier = new_drug_classifier(seed).fit(x, y)
    stages["final_s"] = round(time.perf_counter() - t0, 1)
    report = DrugLearnReport(
        len(products),
        len(notes),
        len(items),
        int(len(y)),
        cv,
        threshold,
        round(time.perf_counter() - start, 1),
        stages=stages,
    )
    medians = [float(np.nanmedian(x[:, j])) if not np.all(np.isnan(x[:, j])) else 0.0 for j in range(x.shape[1])]
    meta = {
        "learned_from": source or {},
        "products": len(products),
        "notes": len(notes),
        "folds": folds,
        "seed": seed,
        "cv": cv,
        "feature_medians": medians,
        "report": report.to_dict(),
    }
    model = RankerModel(
        ATC.system, classifier, calibrator, float(threshold), floor=0.05, features=DRUG_FEATURES, meta=meta
    )
    coder = DrugCoder(onto, model, priors, coder.lex)
    if out is not None:
        model.save(out)
        Path(out, PRIORS_FILE).write_text(json.dumps(priors.to_json(), sort_keys=True) + "\n")
        report.folder = str(out)
        Path(out, "learn-report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return coder, report
