"""The coded-notes memory: what notes like this one were coded with, learned from any coded dataset.

Two views of the same memory: a kNN over TF-IDF vectors of the notes (score of a code = sum of
cubed similarities of the neighbours that carry it) and a one-vs-rest linear SVM over the same
vectors for codes seen in at least `min_svm_notes` notes. How like the memory a note is
(`note_similarity`) travels with every score, so the ranker can trust the memory less for notes
unlike anything it holds.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from medcoder.ranking.metrics import category

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class MemoryHit:
    """What the memory says about one code for one note."""

    knn_score: float = 0.0
    knn_share: float = 0.0  # knn_score over the sum of the neighbours' cubed similarities
    knn_rank: int = 0  # 1-based; 0: not among the kNN candidates
    svm_margin: float = float("nan")
    svm_rank: int = 0


@dataclass
class MemoryView:
    """The memory's answer for one note: per-code hits and how similar the note is to the memory."""

    hits: dict[str, MemoryHit]
    top_similarity: float
    mean_top5_similarity: float
    centroid: dict[str, float] = field(default_factory=dict)  # cosine to the mean note of each code (top codes)


@dataclass
class CodedNotesMemory:
    """TF-IDF kNN + linear one-vs-rest classifier over coded notes."""

    k: int = 50
    top: int = 100  # candidates each view proposes per note
    min_svm_notes: int = 2
    svm_c: float = 0.5
    svm_keep: int = 3000  # largest weights kept per code: the linear view stays a few MB on disk
    max_features: int = 60_000
    vectorizer: Any = None  # a fitted TfidfVectorizer
    matrix: Any = None  # (notes x terms), L2-normalised
    note_codes: list[list[str]] = field(default_factory=list)
    code_freq: Counter[str] = field(default_factory=Counter)
    category_freq: Counter[str] = field(default_factory=Counter)
    svm_codes: list[str] = field(default_factory=list)
    svm_coef: Any = None  # (terms x codes) sparse or dense
    svm_intercept: Any = None
    centroids: Any = None  # (terms x codes) sparse, columns L2-normalised
    centroid_codes: list[str] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.note_codes)

    def fit(self, texts: Sequence[str], codes: Sequence[Sequence[str]]) -> "CodedNotesMemory":
        """Learn the memory from notes and their (already canonical) codes."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.preprocessing import MultiLabelBinarizer
        from sklearn.svm import LinearSVC

        if len(texts) != len(codes) or not texts:
            raise ValueError("the memory needs as many code lists as notes, and at least one note")
        self.vectorizer = TfidfVectorizer(
            ngram_range=(1, 2),
            min_df=2 if len(texts) >= 20 else 1,
            sublinear_tf=True,
            stop_words="english",
            max_features=self.max_features,
            dtype=np.float32,
        )
        self.matrix = self.vectorizer.fit_transform(texts)
        self.note_codes = [sorted(set(c)) for c in codes]
        self.code_freq = Counter(c for cs in self.note_codes for c in cs)
        self.category_freq = Counter(k for cs in self.note_codes for k in {category(c) for c in cs})
        self.svm_codes = sorted(c for c, n in self.code_freq.items() if n >= self.min_svm_notes and n < len(texts))
        if self.svm_codes:
            mlb = MultiLabelBinarizer(classes=self.svm_codes)
            y = mlb.fit_transform([[c for c in cs if c in set(self.svm_codes)] for cs in self.note_codes])
            from scipy import sparse

            rows, cols, vals, intercepts = [], [], [], []
            for j in range(y.shape[1]):
                clf = LinearSVC(
                    C=self.svm_c, class_weight="balanced", max_iter=5000, random_state=0
                )  # liblinear shuffles: fixed, so learning repeats
                clf.fit(self.matrix, y[:, j])
                w = clf.coef_[0]
                keep = np.argsort(-np.abs(w))[: self.svm_keep]
                rows.append(keep)
                cols.append(np.full(len(keep), j))
                vals.append(w[keep].astype(np.float32))
                intercepts.append(float(clf.intercept_[0]))
            self.svm_coef = sparse.csr_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                shape=(self.matrix.shape[1], len(self.svm_codes)),
                dtype=np.float32,
            )
            self.svm_intercept = np.asarray(intercepts, dtype=np.float32)
        self._fit_centroids()
        logger.info(
            "memory: %d notes, %d codes, %d with a linear classifier",
            self.size,
            len(self.code_freq),
            len(self.svm_codes),
        )
        return self

    def _fit_centroids(self) -> None:
        """The mean TF-IDF vector of the notes carrying each code (a Rocchio view of the memory)."""
        from scipy import sparse
        from sklearn.preprocessing import normalize

        self.centroid_codes = sorted(self.code_freq)
        index = {c: j for j, c in enumerate(self.centroid_codes)}
        rows, cols = [], []
        for i, cs in enumerate(self.note_codes):
            for c in cs:
                rows.append(i)
                cols.append(index[c])
        assign = sparse.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(self.note_codes), len(self.centroid_codes))
        )
        cent = (self.matrix.T @ assign).tocsc()  # terms x codes
        self.centroids = normalize(cent, axis=0).astype(np.float32)

    def query(self, texts: Sequence[str]) -> list[MemoryView]:
        """The memory's candidates for each note, with scores and ranks per view."""
        if self.vectorizer is None:
            raise ValueError("the memory is empty: fit it first")
        q = self.vectorizer.transform(texts)
        sims = (q @ self.matrix.T).toarray()
        margins = (np.asarray((q @ self.svm_coef).todense()) + self.svm_intercept) if self.svm_codes else None
        csims = np.asarray((q @ self.centroids).todense()) if self.centroids is not None else None
        views = []
        for i in range(len(texts)):
            row = sims[i]
            order = np.argsort(-row)[: self.k]
            scores: dict[str, float] = {}
            total = 0.0
            for j in order:
                w = float(max(row[j], 0.0)) ** 3
                total += w
                for c in self.note_codes[j]:
                    scores[c] = scores.get(c, 0.0) + w
            hits: dict[str, MemoryHit] = {}
            for rank, (code, s) in enumerate(sorted(scores.items(), key=lambda kv: -kv[1])[: self.top], start=1):
                hits[code] = MemoryHit(knn_score=s, knn_share=s / total if total else 0.0, knn_rank=rank)
            if margins is not None:
                m = np.asarray(margins[i]).ravel()
                top = np.argsort(-m)
                for rank, j in enumerate(top, start=1):
                    code = self.svm_codes[j]
                    if rank > self.top and code not in hits:
                        continue
                    hit = hits.setdefault(code, MemoryHit())
                    hit.svm_margin = float(m[j])
                    hit.svm_rank = rank if rank <= self.top else 0
            best = np.sort(row)[::-1]
            cent: dict[str, float] = {}
            if csims is not None:
                c = np.asarray(csims[i]).ravel()
                for j in np.argsort(-c)[: self.top * 2]:
                    cent[self.centroid_codes[j]] = float(c[j])
            views.append(
                MemoryView(
                    hits, float(best[0]) if len(best) else 0.0, float(best[:5].mean()) if len(best) else 0.0, cent
                )
            )
        return views

    def frequency(self, code: str) -> tuple[float, float]:
        """log(1 + notes with the code), log(1 + notes with its category)."""
        return math.log1p(self.code_freq.get(code, 0)), math.log1p(self.category_freq.get(category(code), 0))
