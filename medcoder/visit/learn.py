"""Learn the visit layout model from headered notes: their headers label every sentence for free.

    python -m medcoder.visit.learn --visits train.jsonl train2.jsonl --cases codiesp/train \
        --measure-visits valid.jsonl --measure-cases codiesp/dev

The sentence model learns each sentence's part from the notes' own headers (an "ASSESSMENT AND PLAN"
sentence is the assessment unless it says what will be done); the note model learns visit notes against case
reports. Both are measured on notes they never saw, with every header removed, and the figures are written to
the model's card.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medcoder.jsonl import numbered_rows
from medcoder.notetext import sentences
from medcoder.visit.classifier import CARD_FILE, MODEL_FILE, LayoutModel, _Linear, note_features, sentence_features
from medcoder.visit.parts import PARTS, coarse, header_parts
from medcoder.visit.sections import split_by_rules

logger = logging.getLogger(__name__)

_PLAN_LINE = re.compile(
    r"^\W*(medical treatment|additional testing|patient education|patient agreements?|counsel\w*|follow[- ]up)\b|"
    r"\b(will|we'll|i'll|continue|recommend\w*|prescrib\w*|order\w*|refer\w*|schedul\w*|advis\w*|discuss\w*|"
    r"return|start\w*|increase|decrease|stop|instruct\w*)\b",
    re.IGNORECASE,
)


def labelled_sentences(note: str) -> list[tuple[str, str]]:
    """(sentence, part) for each content sentence of a headered note, by its section's header; the header lines
    themselves are left out, as in a note without headers."""
    out = []
    for section in split_by_rules(note):
        allowed = header_parts(section.name) if section.name != "preamble" else ("other",)
        for _, _, text in sentences(note[section.start : section.end]):
            if len(allowed) == 1:
                part = allowed[0]
            elif set(allowed) == {"assessment", "plan"}:
                part = "plan" if _PLAN_LINE.search(text) else "assessment"
            else:
                continue  # a coarse header ("S:") does not say which part
            out.append((text, part))
    return out


def _texts(paths: Sequence[str]) -> list[str]:
    """The distinct notes of JSONL files ({id, text, ...} a line) and of CodiEsp folders (text_files_en/*.txt)."""
    seen: dict[str, str] = {}
    for path in map(Path, paths):
        if path.is_dir():
            folder = path / "text_files_en" if (path / "text_files_en").is_dir() else path / "text_files"
            for f in sorted(folder.glob("*.txt")):
                seen.setdefault(f.stem, f.read_text(encoding="utf-8"))
            continue
        for _, row, _ in numbered_rows(path):
            if isinstance(row, dict) and isinstance(row.get("text"), str):
                seen.setdefault(str(row.get("id", len(seen))), row["text"])
    return list(seen.values())


def _fit(
    rows: list[list[str]],
    labels: list[int],
    n_classes: int,
    c: float,
    min_count: int,
    balanced: bool = False,
    tfidf: bool = False,
) -> _Linear:
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    counts = Counter(f for feats in rows for f in set(feats))
    vocab = {f: i for i, f in enumerate(sorted(f for f, n in counts.items() if n >= min_count))}
    indptr, indices = [0], []
    for feats in rows:
        indices += sorted({vocab[f] for f in feats if f in vocab})
        indptr.append(len(indices))
    x = csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(rows), len(vocab)))
    idf = None
    if tfidf:  # binary features weighted by idf, each row L2-normalised (as `_Linear.log_proba` reads them)
        df = np.asarray((x > 0).sum(axis=0)).ravel()
        idf = np.log((1 + len(rows)) / (1 + df)) + 1.0
        x = x.multiply(idf).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        x = csr_matrix(x.multiply(1.0 / np.maximum(norms, 1e-12)[:, None]))
    model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced" if balanced else None)
    model.fit(x, labels)
    coef = np.zeros((len(vocab), n_classes if n_classes > 2 else 1))
    intercept = np.zeros(coef.shape[1])
    cols = list(model.classes_) if n_classes > 2 else [0]
    for j, k in enumerate(cols):
        coef[:, k] = model.coef_[j]
        intercept[k] = model.intercept_[j]
    if n_classes > 2:  # a class the data never had stays impossible
        missing = [k for k in range(n_classes) if k not in set(model.classes_)]
        intercept[missing] = -30.0
    return _Linear(vocab, coef, intercept, idf)


def _versions(note: str, visit: bool) -> list[str]:
    """A note as the note model learns it: as written; (a visit) without its headers, as a dictation; and short,
    its first two sentences and last third (a problem-oriented note), so short notes are read too."""
    said = [t for t, _ in labelled_sentences(note)] if visit else [t for _, _, t in sentences(note)]
    out = [note]
    if visit:
        out.append("\n".join(said))
    if len(said) > 6:
        out.append("\n".join(said[:2] + said[-len(said) // 3 :]))
    return out


def learn(visits: list[str], cases: list[str], c: float = 1.0) -> LayoutModel:
    """The layout model from the visit notes' labelled sentences and the visit / case notes."""
    index = {p: k for k, p in enumerate(PARTS)}
    rows: list[list[str]] = []
    labels: list[int] = []
    trans = np.full((len(PARTS) + 1, len(PARTS)), 0.5)
    for note in visits:
        labelled = labelled_sentences(note)
        texts = [t for t, _ in labelled]
        previous = len(PARTS)  # the start row
        for i, (_, part) in enumerate(labelled):
            rows.append(sentence_features(texts, i))
            labels.append(index[part])
            trans[previous, index[part]] += 1
            previous = index[part]
    trans = np.log(trans / trans.sum(axis=1, keepdims=True))
    sentence_model = _fit(rows, labels, len(PARTS), c, min_count=2)
    note_rows, kinds = [], []
    for kind, notes in ((1, visits), (0, cases)):
        for note in notes:
            for version in _versions(note, kind == 1):
                note_rows.append(note_features(version))
                kinds.append(kind)
    note_model = _fit(note_rows, kinds, 2, 10 * c, min_count=2, balanced=True, tfidf=True)
    return LayoutModel(PARTS, sentence_model, trans, note_model)


def measure(model: LayoutModel, visits: list[str], cases: list[str]) -> dict[str, Any]:
    """Accuracy per part on notes with every header removed (the sentence model and transitions alone), and the
    note model's accuracy on visit notes (as written and as one paragraph) and case reports."""
    gold: list[str] = []
    pred: list[str] = []
    for note in visits:
        labelled = labelled_sentences(note)
        texts = [t for t, _ in labelled]
        decoded = model.decode(texts, [PARTS] * len(texts))
        gold += [p for _, p in labelled]
        pred += [p for p, _ in decoded]
    per_part = {}
    for part in PARTS:
        tp = sum(g == p == part for g, p in zip(gold, pred))
        n_gold, n_pred = gold.count(part), pred.count(part)
        if not n_gold and not n_pred:
            continue
        prec, rec = (tp / n_pred if n_pred else 0.0), (tp / n_gold if n_gold else 0.0)
        per_part[part] = {
            "sentences": n_gold,
            "precision": round(prec, 3),
            "recall": round(rec, 3),
            "f1": round(2 * prec * rec / (prec + rec), 3) if prec + rec else 0.0,
        }
    flat = [" ".join(t.split()) for t in visits]
    kinds = [model.visit_probability(t) >= 0.5 for t in visits + flat] + [
        model.visit_probability(t) < 0.5 for t in cases
    ]
    return {
        "sentences": len(gold),
        "accuracy": round(sum(g == p for g, p in zip(gold, pred)) / max(1, len(gold)), 3),
        "ranker_part_accuracy": round(sum(coarse(g) == coarse(p) for g, p in zip(gold, pred)) / max(1, len(gold)), 3),
        "per_part": per_part,
        "note_kind_accuracy": round(sum(kinds) / max(1, len(kinds)), 3),
        "note_kind_items": {"visit notes (as written + one paragraph)": 2 * len(visits), "case reports": len(cases)},
    }


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--visits", nargs="+", required=True, help="headered visit notes to learn from (JSONL)")
    ap.add_argument("--cases", nargs="*", default=[], help="case reports (CodiEsp folders) as 'not a visit'")
    ap.add_argument("--measure-visits", nargs="*", default=[])
    ap.add_argument("--measure-cases", nargs="*", default=[])
    ap.add_argument("--out", default=str(MODEL_FILE))
    ap.add_argument("-C", type=float, default=1.0, help="inverse regularisation of both linear models")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    visits, cases = _texts(args.visits), _texts(args.cases)
    print(f"learning from {len(visits)} visit notes and {len(cases)} case reports ...", file=sys.stderr)
    model = learn(visits, cases, args.C)
    out = Path(args.out)
    model.save(out)
    figures = measure(model, _texts(args.measure_visits), _texts(args.measure_cases)) if args.measure_visits else {}
    card = {
        "learned_from": {"visits": [Path(p).name for p in args.visits], "cases": [Path(p).name for p in args.cases]},
        "notes": {"visits": len(visits), "cases": len(cases)},
        "C": args.C,
        "measured_on": {
            "visits": [Path(p).name for p in args.measure_visits],
            "cases": [Path(p).name for p in args.measure_cases],
            "condition": "every header removed: the sentence model and the learned transitions alone",
        },
        **figures,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    card_path = CARD_FILE if out == MODEL_FILE else out.with_suffix(".card.json")
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(json.dumps(card, indent=2))


if __name__ == "__main__":
    main()
