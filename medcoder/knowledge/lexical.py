"""A small BM25 ranker over code descriptions: the lexical half of code search.

Pure Python and picklable, so it is built once with the graph and cached beside it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from medcoder.words import STOPWORDS, stem, tokenize  # noqa: F401 - the words BM25 counts


@dataclass(slots=True)
class SearchHit:
    """One search result: the code, its score and which ranker(s) found it."""

    code: str
    score: float
    label: str = ""
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "label": self.label, "score": round(self.score, 4), "sources": self.sources}


class LexicalIndex:
    """Okapi BM25 over one text per code (label plus synonyms), with an inverted index."""

    def __init__(self, docs: Iterable[tuple[str, str, str]], k1: float = 1.2, b: float = 0.75) -> None:
        """`docs` yields (code, label, searchable text)."""
        self.k1, self.b = k1, b
        self.codes: list[str] = []
        self.labels: list[str] = []
        self.lengths: list[int] = []
        postings: dict[str, dict[int, int]] = defaultdict(dict)
        for code, label, text in docs:
            idx = len(self.codes)
            self.codes.append(code)
            self.labels.append(label)
            toks = tokenize(text)
            self.lengths.append(len(toks))
            for t in toks:
                postings[t][idx] = postings[t].get(idx, 0) + 1
        self.avg_len = (sum(self.lengths) / len(self.lengths)) if self.lengths else 1.0
        n = len(self.codes)
        self.postings = {t: tuple(p.items()) for t, p in postings.items()}
        self.idf = {t: math.log(1 + (n - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self.postings.items()}

    def search(self, text: str, k: int = 10) -> list[SearchHit]:
        scores: dict[int, float] = defaultdict(float)
        k1, b, avg, lengths = self.k1, self.b, self.avg_len, self.lengths
        for t in sorted(set(tokenize(text))):  # one order of summing in every process: same scores, same ties
            plist = self.postings.get(t)
            if not plist:
                continue
            idf = self.idf[t]
            for idx, tf in plist:
                denom = tf + k1 * (1 - b + b * lengths[idx] / avg)
                scores[idx] += idf * tf * (k1 + 1) / denom
        best = sorted(scores.items(), key=lambda kv: (-kv[1], lengths[kv[0]], self.codes[kv[0]]))[:k]
        return [SearchHit(self.codes[i], s, self.labels[i], ["lexical"]) for i, s in best]
