"""`medcoder learn`: build a coded-notes memory and a calibrated ranker from coded notes.

Out-of-fold throughout: each note's memory features come from a memory built without it, and
the calibrator and threshold come from the ranker's out-of-fold predictions, so the ranker
never learns from its memory's own leaks and the reported CV figures are honest.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

import numpy as np

from medcoder.errors import MedcoderError
from medcoder.knowledge import KnowledgeBase
from medcoder.knowledge.ontology import CodeSystem
from medcoder.knowledge.retrieval import Retriever
from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.llm import LLM
from medcoder.progress import Progress
from medcoder.ranking import metrics
from medcoder.ranking.candidates import FEATURES, NoteCandidates, collect, note_kind, note_spans
from medcoder.ranking.coder import RankedCode, RetrievalCache, ranked_codes, search_spans
from medcoder.ranking.datasets import Example
from medcoder.ranking.decisions import Decided, decided, fit_final
from medcoder.ranking.memory import CodedNotesMemory
from medcoder.ranking.model import (  # noqa: F401 - re-exported
    RankerModel,
    VerifierBlend,
    expected_calibration_error,
    new_calibrator,
    new_classifier,
)
from medcoder.ranking.verify import verify_context, verify_question
from medcoder.visit.conventions import CONVENTIONS, DEFAULT_CONVENTIONS
from medcoder.visit.rules import apply_guidelines

logger = logging.getLogger(__name__)


@dataclass
class LearnReport:
    """What learning measured: cross-validated quality on the training notes and the threshold chosen."""

    notes: int
    candidates_per_note: float
    gold_in_candidates: float
    cv: dict[str, Any]
    threshold: float
    seconds: float
    folder: str = ""
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def canonical_codes(onto: CodeSystem, codes: Sequence[str]) -> set[str]:
    """Gold codes as the ontology's node ids (unknown ones kept upper-case: they count as misses)."""
    out = set()
    for c in codes:
        try:
            out.add(onto.resolve(c))
        except MedcoderError:
            out.add(c.upper())
    return out


def training_targets(onto: CodeSystem, codes: set[str]) -> set[str]:
    """Gold codes as the billable codes the ranker can propose: a code lacking its 7th character
    stands for the initial encounter (…A), a category coded alone for its unspecified child."""
    out = set()
    for c in codes:
        if c not in onto:
            continue
        node = onto.node(c)
        if node.billable:
            out.add(c)
            continue
        kids = [n for n in onto.children(c) if n.billable]
        initial = [n for n in kids if n.kind == "extension" and n.code.endswith("A")]
        unspecified = [n for n in kids if "unspecified" in n.label.lower()]
        pick = initial or unspecified or (kids if len(kids) == 1 else [])
        if pick:
            out.add(pick[0].code)
    return out


def folds_of(n: int, k: int, seed: int = 0, groups: Sequence[str] | None = None) -> np.ndarray:
    """A fold per note; notes of one `groups` key (the same encounter written as a note and as its
    conversation) share a fold, so no note is scored by a memory or trees that learned its twin. With every key
    distinct the folds are those of `n` ungrouped notes."""
    keys = list(groups) if groups is not None else [str(i) for i in range(n)]
    unique = list(dict.fromkeys(keys))
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(unique))
    of_group = np.empty(len(unique), dtype=int)
    of_group[order] = np.arange(len(unique)) % k
    index = {key: i for i, key in enumerate(unique)}
    return np.asarray([of_group[index[key]] for key in keys], dtype=int)


def note_candidates(
    examples: Sequence[Example],
    targets: Sequence[set[str]],
    onto: CodeSystem,
    retriever: Retriever | None,
    system: str,
    folds: np.ndarray,
    cache: RetrievalCache | None,
    progress: Progress | None = None,
    memory_factory: Callable[[], CodedNotesMemory] = CodedNotesMemory,
) -> list[NoteCandidates]:
    """Candidates of every note with out-of-fold memory views (memory fitted on the other folds,
    from their training `targets`)."""
    n = len(examples)
    golds = [sorted(t) for t in targets]
    views: list[Any] = [None] * n
    mems: list[CodedNotesMemory | None] = [None] * n
    k = int(folds.max()) + 1 if n else 0
    for f in range(k):
        train = [i for i in range(n) if folds[i] != f]
        held = [i for i in range(n) if folds[i] == f]
        if not train or not held:
            continue
        mem = memory_factory().fit([examples[i].text for i in train], [golds[i] for i in train])
        for i, v in zip(held, mem.query([examples[i].text for i in held])):
            views[i], mems[i] = v, mem
        if progress:
            progress("memory", f + 1, k)
    out = []
    for i, ex in enumerate(examples):
        spans = note_spans(ex.text)
        hits = search_spans(retriever, spans, system, cache) if spans and retriever is not None else []
        known = mems[i]
        out.append(collect(onto, spans, hits, views[i], known.frequency if known else None, note=ex.text))
        if progress:
            progress("retrieval", i + 1, n)
    return out


def note_kinds(cands: Sequence[NoteCandidates]) -> list[str]:
    """visit | case for each note (by its candidates' `visit_note` feature; a note without candidates: case)."""
    return [note_kind(c.features) or "case" for c in cands]


def kind_weights(kinds: Sequence[str]) -> np.ndarray:
    """Per-note weights that give each kind of note the same total weight: the 67 visit notes count as
    much as the 500 case reports, so the trees learn what a visit note's codes look like."""
    counts = {k: kinds.count(k) for k in set(kinds)}
    return np.asarray([len(kinds) / (len(counts) * counts[k]) for k in kinds])


def _fit(
    cands: list[NoteCandidates], labels: list[np.ndarray], idx: Sequence[int], seed: int, weights: np.ndarray
) -> Any:
    rows = [i for i in idx if cands[i].codes]
    x = np.vstack([np.asarray(cands[i].features, dtype=np.float64) for i in rows])
    y = np.concatenate([labels[i] for i in rows])
    if y.min() == y.max():
        return None
    w = np.concatenate([np.full(len(labels[i]), weights[i]) for i in rows])
    return new_classifier(seed).fit(x, y, sample_weight=w)


def fit_by_kind(
    cands: list[NoteCandidates], labels: list[np.ndarray], idx: Sequence[int], kinds: Sequence[str], seed: int
) -> dict[str, Any]:
    """The trees for each kind of note: case reports learn from case reports only (so adding visit notes
    cannot make them worse); visit notes learn from every note, the two kinds weighted equally."""
    present = sorted({kinds[i] for i in idx})
    if len(present) == 1:
        return {present[0]: _fit(cands, labels, idx, seed, np.ones(len(cands)))}
    out = {"case": _fit(cands, labels, [i for i in idx if kinds[i] == "case"], seed, np.ones(len(cands)))}
    out["visit"] = _fit(cands, labels, idx, seed, kind_weights(list(kinds)))
    return out


def _oof_scores(
    cands: list[NoteCandidates],
    labels: list[np.ndarray],
    folds: np.ndarray,
    seed: int,
    kinds: Sequence[str],
    progress: Progress | None = None,
) -> list[np.ndarray]:
    """Out-of-fold raw ranker scores per note (each note scored by the trees of its kind)."""
    out: list[np.ndarray] = [np.zeros(len(c.codes)) for c in cands]
    if progress:
        progress("ranker folds", 0, int(folds.max()) + 1)  # the clock starts before the first fold
    for f in range(int(folds.max()) + 1):
        tr = [i for i in range(len(cands)) if folds[i] != f and cands[i].codes]
        te = [i for i in range(len(cands)) if folds[i] == f and cands[i].codes]
        if not tr or not te:
            continue
        clfs = fit_by_kind(cands, labels, tr, kinds, seed)
        for i in te:
            clf = clfs.get(kinds[i]) or next(iter(clfs.values()))
            if clf is not None:
                out[i] = clf.predict_proba(np.asarray(cands[i].features, dtype=np.float64))[:, 1]
        if progress:
            progress("ranker folds", f + 1, int(folds.max()) + 1)
    return out


def best_threshold(
    golds: list[set[str]], cands: list[NoteCandidates], probs: list[np.ndarray]
) -> tuple[float, dict[str, Any]]:
    """The probability cut with the best micro-F1 (gold codes no candidate reached count as misses)."""
    pairs = [(float(p), c in g) for cand, g, ps in zip(cands, golds, probs) for c, p in zip(cand.codes, ps)]
    best = metrics.best_f1_cut(pairs, sum(len(g) for g in golds))
    return best[1], {"f1_at_threshold": round(best[0], 4)}


def evaluate_ranked(
    golds: list[set[str]], cands: list[NoteCandidates], probs: list[np.ndarray], threshold: float | Sequence[float]
) -> dict[str, Any]:
    """MAP, micro P/R/F1 and category F1 of ranked candidate lists against gold sets (one threshold, or one
    per note)."""
    ranked = [[c for _, c in sorted(zip(-ps, cand.codes))] for cand, ps in zip(cands, probs)]
    cuts = [threshold] * len(cands) if isinstance(threshold, (int, float)) else list(threshold)
    pred = [{c for c, p in zip(cand.codes, ps) if p >= t} for cand, ps, t in zip(cands, probs, cuts)]
    return metrics.icd_report(golds, pred, ranked)


def learn(
    examples: Sequence[Example],
    kb: KnowledgeBase,
    retriever: Retriever | None,
    system: str = DEFAULT_SYSTEM,
    out: str | Path | None = None,
    folds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
    cache_path: str | Path | None = None,
    source: dict[str, Any] | None = None,
    verifier: Any = None,
    verifier_notes: int = 40,
    verifier_top: int = 30,
) -> tuple[RankerModel, CodedNotesMemory, LearnReport]:
    """Learn memory and ranker from coded examples; write them to `out` when given.

    With a `verifier` model, the first `verifier_notes` notes' top candidates are judged by it and a
    blend of the ranker's out-of-fold log-odds with the model's yes/no log-odds is learned for that model.
    """
    start = time.perf_counter()
    stages: dict[str, float] = {}
    examples = [e for e in examples if e.text.strip() and e.codes]
    if len(examples) < max(folds, 5):
        raise MedcoderError(f"learning needs at least {max(folds, 5)} coded notes, got {len(examples)}")
    onto = kb.ontology(system)
    fold = folds_of(len(examples), folds, seed, [e.id for e in examples])
    cache = RetrievalCache(cache_path)
    golds = [canonical_codes(onto, e.codes) for e in examples]
    targets = [training_targets(onto, g) for g in golds]
    cands = note_candidates(examples, targets, onto, retriever, system, fold, cache, progress)
    stages["candidates_s"] = round(time.perf_counter() - start, 1)
    labels = [np.asarray([c in t for c in cand.codes], dtype=int) for cand, t in zip(cands, targets)]
    t0 = time.perf_counter()
    kinds = note_kinds(cands)
    oof = _oof_scores(cands, labels, fold, seed, kinds, progress)
    # one calibrator and one threshold per kind of note: a visit note's probabilities mean what they say
    calibrators: dict[str, Any] = {}
    thresholds: dict[str, float] = {}
    cal: list[np.ndarray] = [o for o in oof]
    by_kind: dict[str, Any] = {}
    for kind in sorted(set(kinds)):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        calibrators[kind] = new_calibrator().fit(
            np.concatenate([oof[i] for i in idx]), np.concatenate([labels[i] for i in idx])
        )
        for i in idx:
            cal[i] = np.clip(calibrators[kind].predict(oof[i]), 0, 1) if len(oof[i]) else oof[i]
        thresholds[kind], info = best_threshold([golds[i] for i in idx], [cands[i] for i in idx], [cal[i] for i in idx])
        kcv = evaluate_ranked([golds[i] for i in idx], [cands[i] for i in idx], [cal[i] for i in idx], thresholds[kind])
        kcv.update(
            info,
            notes=len(idx),
            threshold=round(thresholds[kind], 4),
            ece=round(
                expected_calibration_error(
                    np.concatenate([cal[i] for i in idx]), np.concatenate([labels[i] for i in idx])
                ),
                4,
            ),
        )
        by_kind[kind] = kcv
    calibrator: Any = calibrators if len(calibrators) > 1 else next(iter(calibrators.values()))
    threshold = thresholds.get("case", next(iter(thresholds.values())))
    pred_thr = [thresholds[k] for k in kinds]
    cv = evaluate_ranked(golds, cands, cal, pred_thr)
    cv["f1_at_threshold"] = cv["micro"]["f1"]
    cv["by_kind"] = by_kind
    cv["ece"] = round(expected_calibration_error(np.concatenate(cal), np.concatenate(labels)), 4)
    cv.update(auto_accept_figures(cal, labels, pred_thr))
    floor = memory_similarity_floor(cands)
    final = None
    if "visit" in thresholds:  # the rules decide a visit note's codes: calibrate what they decide
        visit = [i for i, k in enumerate(kinds) if k == "visit"]
        vgolds, vfolds = [golds[i] for i in visit], [int(fold[i]) for i in visit]
        args = (examples, cands, cal, oof, golds, kinds, onto, thresholds["visit"], floor)
        final = fit_final(visit_decisions(*args), vgolds, vfolds)
        cv["final"] = final.report
        # each coding convention turned over (same notes, same folds): left out when on by default, added when off
        cv["final"]["without"], cv["final"]["with"] = {}, {}
        for name in CONVENTIONS:
            on = name in DEFAULT_CONVENTIONS
            use = [c for c in DEFAULT_CONVENTIONS if c != name] if on else [*DEFAULT_CONVENTIONS, name]
            without = fit_final(visit_decisions(*args, use), vgolds, vfolds)
            cv["final"]["without" if on else "with"][name] = {
                "micro_f1": without.report["cv"]["micro"]["f1"],
                "precision": without.report["cv"]["micro"]["precision"],
                "recall": without.report["cv"]["micro"]["recall"],
                "ece": without.report["ece"],
            }
        by_kind["visit"]["final"] = {k: final.report[k] for k in ("threshold", "ece", "auto_accept_threshold")}
    x_all = np.vstack([np.asarray(c.features, dtype=np.float64) for c in cands if c.codes])
    by_kind_trees = fit_by_kind(cands, labels, range(len(cands)), kinds, seed)
    classifier: Any = by_kind_trees if len(by_kind_trees) > 1 else next(iter(by_kind_trees.values()))
    stages["ranker_s"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    memory = CodedNotesMemory().fit([e.text for e in examples], [sorted(t) for t in targets])
    stages["memory_s"] = round(time.perf_counter() - t0, 1)
    medians = [
        float(np.nanmedian(x_all[:, j])) if not np.all(np.isnan(x_all[:, j])) else 0.0 for j in range(x_all.shape[1])
    ]
    gold_in = sum(len(g & set(c.codes)) for g, c in zip(golds, cands)) / max(1, sum(len(g) for g in golds))
    report = LearnReport(
        len(examples),
        round(float(np.mean([len(c.codes) for c in cands])), 1),
        round(gold_in, 4),
        cv,
        round(threshold, 4),
        round(time.perf_counter() - start, 1),
        stages=stages,
    )
    meta = {
        "learned_from": source or {},
        "notes": len(examples),
        "folds": folds,
        "seed": seed,
        "thresholds": {k: round(v, 4) for k, v in thresholds.items()},
        "cv": cv,
        "feature_medians": medians,
        "report": report.to_dict(),
        "memory_similarity_floor": floor,
    }
    if final is not None:
        meta["final"] = final.to_dict()
    model = RankerModel(system, classifier, calibrator, float(threshold), meta=meta)
    if verifier is not None:
        t0 = time.perf_counter()
        model.blend = learn_blend(verifier, examples, onto, cands, cal, targets, verifier_notes, verifier_top, progress)
        stages["verifier_s"] = round(time.perf_counter() - t0, 1)
        report.cv["verifier"] = {k: v for k, v in model.blend.__dict__.items() if k not in ("coef", "intercept")}
    if out is not None:
        model.save(out, memory)
        report.folder = str(out)
        Path(out, "learn-report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return model, memory, report


def visit_decisions(
    examples: Sequence[Example],
    cands: Sequence[NoteCandidates],
    cal: Sequence[np.ndarray],
    raw: Sequence[np.ndarray],
    golds: Sequence[set[str]],
    kinds: Sequence[str],
    onto: CodeSystem,
    threshold: float,
    floor: float | None,
    conventions: Collection[str] = DEFAULT_CONVENTIONS,
) -> list[list[Decided]]:
    """Every visit note's final codes out of fold, ranked and then decided by the outpatient rules (`coder`), each
    with its decision and whether it is a reference code: what the final calibration learns from."""
    out = []
    for i, kind in enumerate(kinds):
        if kind != "visit":
            continue
        ranked = ranked_codes(cands[i], cal[i], raw[i], threshold, floor)
        out.append(
            decided(
                apply_guidelines(onto, ranked, examples[i].text, threshold, (), conventions, make=RankedCode.proposed),
                golds[i],
            )
        )
    return out


def learn_blend(
    llm: LLM,
    examples: Sequence[Example],
    onto: CodeSystem,
    cands: list[NoteCandidates],
    cal: list[np.ndarray],
    targets: list[set[str]],
    notes: int,
    top: int,
    progress: Progress | None = None,
) -> Any:
    """Judge the top candidates of `notes` training notes with the model and learn how much its
    log-odds should move the ranker's out-of-fold probability (logistic regression, 2 inputs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict

    x, y, groups = [], [], []
    for i in range(min(notes, len(examples))):
        order = np.argsort(-cal[i])[:top]
        if not len(order):
            continue
        codes = [cands[i].codes[j] for j in order]
        ev = cands[i].evidence
        questions = [verify_question(c, onto.label(c), ev[c][0].text if ev.get(c) else "") for c in codes]
        judged = llm.judge(verify_context(examples[i].text, 6000), questions)
        for j, c, lo in zip(order, codes, judged.log_odds):
            p = min(max(float(cal[i][j]), 1e-4), 1 - 1e-4)
            x.append([np.log(p / (1 - p)), lo])
            y.append(int(c in targets[i]))
            groups.append(i)
        if progress:
            progress("verifier", i + 1, min(notes, len(examples)))
    xa: np.ndarray = np.asarray(x)
    ya: np.ndarray = np.asarray(y)
    clf = LogisticRegression(C=1.0)
    oof = cross_val_predict(
        clf, xa, ya, groups=groups, cv=GroupKFold(n_splits=min(5, len(set(groups)))), method="predict_proba"
    )[:, 1]
    clf.fit(xa, ya)
    auc_ranker, auc_blend = round(float(roc_auc_score(ya, xa[:, 0])), 4), round(float(roc_auc_score(ya, oof)), 4)
    if auc_blend <= auc_ranker:
        logger.warning(
            "the verifier's judgement did not improve the ranker on %d notes (AUC %.4f -> %.4f): it is "
            "recorded with each code but does not move the probabilities",
            len(set(groups)),
            auc_ranker,
            auc_blend,
        )
    return VerifierBlend(
        llm.sha256,
        [float(v) for v in clf.coef_[0]],
        float(clf.intercept_[0]),
        top,
        len(set(groups)),
        auc_ranker,
        auc_blend,
        applied=auc_blend > auc_ranker,
    )


def memory_similarity_floor(cands: list[NoteCandidates], percentile: float = 5.0) -> float | None:
    """How similar to the memory (out of fold) the training notes were, at the given percentile: below it
    a note is unlike the memory, and a code the memory alone proposes is not accepted."""
    col = FEATURES.index("note_top_sim")
    sims = [c.features[0][col] for c in cands if c.features]
    return round(float(np.percentile(sims, percentile)), 4) if sims else None


def auto_accept_figures(
    cal: Sequence[np.ndarray], labels: Sequence[np.ndarray], accept_at: Sequence[float]
) -> dict[str, float | None]:
    """The auto-accept threshold out of fold, with the precision of the codes above it and their share of the
    codes the ranker accepted (what a ranker's card reports)."""
    p, y = np.concatenate(cal), np.concatenate(labels)
    cut = metrics.precision_cut(p, y)
    if cut is None:
        return {"auto_accept_threshold": None, "auto_accept_precision": None, "auto_accept_share": 0.0}
    above = p >= cut
    accepted = sum(int((c >= t).sum()) for c, t in zip(cal, accept_at))
    return {
        "auto_accept_threshold": cut,
        "auto_accept_precision": round(float(y[above].mean()), 4),
        "auto_accept_share": round(int(above.sum()) / max(accepted, 1), 4),
    }


__all__ = ["LearnReport", "learn", "canonical_codes", "training_targets", "FEATURES"]
