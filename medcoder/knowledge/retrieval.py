"""Candidate retrieval: the seam where search plugs into the coding workflow and `kb search`.

`Retriever.candidates(text, system, k)` returns codes worth offering as entry points. Three
rankers exist: BM25 over descriptions and inclusion terms (`lexical`), MiniLM vectors in
ChromaDB (`dense`), and the code system's own term matcher (`index`: ICD-10-CM's Alphabetic
Index walk, ATC's substance names). `HybridRetriever` fuses
any of them by weighted reciprocal rank, with filters by chapter and level, and says which
ranker found each code at which rank.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from medcoder.errors import MedcoderError
from medcoder.knowledge import DEFAULT_SYSTEM, KnowledgeBase, default_kb
from medcoder.knowledge.lexical import SearchHit

logger = logging.getLogger(__name__)

RANKERS = ("lexical", "dense", "index")


@dataclass(slots=True)
class SearchFilter:
    """Which codes a search may return: a chapter (ICD `CH4`/`4`/`E00-E89`, ATC `A`) and node kinds."""

    chapter: str | None = None
    kinds: tuple[str, ...] = ()
    billable_only: bool = False

    def where(self) -> dict[str, Any] | None:
        """The same filter as a Chroma metadata clause."""
        clauses: list[dict[str, Any]] = []
        if self.chapter:
            clauses.append({"chapter": self.chapter})
        if self.kinds:
            clauses.append({"kind": {"$in": list(self.kinds)}})
        if self.billable_only:
            clauses.append({"billable": True})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}


class Retriever(abc.ABC):
    """The retrieval seam: candidate codes for texts, best first; every retriever answers in batches."""

    @abc.abstractmethod
    def search_many(
        self, texts: list[str], system: str = DEFAULT_SYSTEM, k: int = 10, filt: SearchFilter | None = None
    ) -> list[list[SearchHit]]:
        """Top-k codes per text (one list per text, in order)."""

    def search(
        self, text: str, system: str = DEFAULT_SYSTEM, k: int = 10, filt: SearchFilter | None = None
    ) -> list[SearchHit]:
        return self.search_many([text], system, k, filt)[0]

    def candidates(self, text: str, system: str = DEFAULT_SYSTEM, k: int = 10) -> list[SearchHit]:
        """Entry points for the navigator (the same as `search`)."""
        return self.search(text, system, k)

    def close(self) -> None:
        """Release open stores (a no-op where there are none)."""


@dataclass
class HybridRetriever(Retriever):
    """Weighted reciprocal-rank fusion of the lexical, dense and index rankers."""

    kb: KnowledgeBase = field(default_factory=default_kb)
    rankers: tuple[str, ...] = RANKERS
    # chosen on 100 CodiEsp *train* notes by benchmarks/retrieval_bench.py (grid in results/retrieval.json)
    rrf_k: int = 5
    pool: int = 50
    weights: dict[str, float] = field(default_factory=lambda: {"lexical": 1.0, "dense": 1.5, "index": 1.5})
    _dense: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        unknown = set(self.rankers) - set(RANKERS)
        if unknown or not self.rankers:
            raise MedcoderError(f"unknown rankers {sorted(unknown)}; choose from {', '.join(RANKERS)}")

    def dense(self, system: str) -> Any:
        from medcoder.knowledge.dense import DenseIndex  # deferred: ChromaDB loads only when the dense ranker runs

        if system not in self._dense:
            self._dense[system] = DenseIndex(self.kb, system)
        return self._dense[system]

    def search_many(
        self, texts: list[str], system: str = DEFAULT_SYSTEM, k: int = 10, filt: SearchFilter | None = None
    ) -> list[list[SearchHit]]:
        """Fused top-k per text; the dense ranker embeds all texts in one batch."""
        if any(not t.strip() for t in texts):
            raise MedcoderError("empty search text")
        return [self.fuse(system, lists, k) for lists in self.ranked_lists(texts, system, filt)]

    def ranked_lists(
        self, texts: list[str], system: str = DEFAULT_SYSTEM, filt: SearchFilter | None = None
    ) -> list[dict[str, list[SearchHit]]]:
        """Each ranker's own list per text (up to `pool` codes), before fusion: what benchmarks compare."""
        filt = self._normalise(system, filt or SearchFilter())
        dense_lists: list[list[SearchHit]] = [[] for _ in texts]
        if "dense" in self.rankers:
            dense_lists = self.dense(system).search_many(texts, self.pool, filt.where())
        out = []
        for text, dense_hits in zip(texts, dense_lists):
            lists: dict[str, list[SearchHit]] = {}
            if "lexical" in self.rankers:
                lists["lexical"] = self._filtered(
                    system, self.kb.ontology(system).lexical.search(text, k=self.pool * 4), filt
                )[: self.pool]
            if "dense" in self.rankers:
                lists["dense"] = dense_hits
            if "index" in self.rankers:
                onto = self.kb.ontology(system)
                lists["index"] = self._filtered(system, onto.term_hits(text), filt)
            out.append(lists)
        return out

    # -- fusion ---------------------------------------------------------------------------
    def fuse(self, system: str, lists: dict[str, list[SearchHit]], k: int) -> list[SearchHit]:
        """Weighted reciprocal-rank fusion: sum of weight / (rrf_k + rank) over the rankers that found a code."""
        scores: dict[str, float] = {}
        found: dict[str, list[str]] = {}
        for name, hits in lists.items():
            w = self.weights.get(name, 1.0)
            for rank, hit in enumerate(hits[: self.pool], start=1):
                scores[hit.code] = scores.get(hit.code, 0.0) + w / (self.rrf_k + rank)
                found.setdefault(hit.code, []).append(f"{name}#{rank}")
        onto = self.kb.ontology(system)
        best = sorted(scores, key=lambda c: (-scores[c], len(c), c))[:k]
        return [SearchHit(c, scores[c], onto.label(c), found[c]) for c in best]

    def _normalise(self, system: str, filt: SearchFilter) -> SearchFilter:
        """Accept a top level as the user writes it (ICD `CH4`, `4`, `E00-E89`; ATC `a`)."""
        if not filt.chapter:
            return filt
        onto = self.kb.ontology(system)
        wanted = onto.find_top_level(filt.chapter)
        if wanted is None:
            raise MedcoderError(
                f"unknown chapter {filt.chapter.strip()!r} for {system}; "
                f"choose from {', '.join(r.code for r in onto.roots())}"
            )
        return SearchFilter(wanted, filt.kinds, filt.billable_only)

    def _filtered(self, system: str, hits: Iterable[SearchHit], filt: SearchFilter) -> list[SearchHit]:
        if not (filt.chapter or filt.kinds or filt.billable_only):
            return list(hits)
        onto = self.kb.ontology(system)
        nodes = onto.graph.nodes
        out = []
        for h in hits:
            n = nodes[h.code]["n"]
            if filt.billable_only and not n.billable:
                continue
            if filt.kinds and onto.index_kind(n) not in filt.kinds:
                continue
            if filt.chapter and onto.top_level(h.code) != filt.chapter:
                continue
            out.append(h)
        return out


class LexicalRetriever(HybridRetriever):
    """BM25 plus the Alphabetic Index walk, no vectors: the fallback when ChromaDB is not wanted."""

    def __init__(self, kb: KnowledgeBase | None = None) -> None:
        super().__init__(kb or default_kb(), rankers=("lexical", "index"))


def make_retriever(kind: str, kb: KnowledgeBase | None = None) -> Retriever | None:
    """The retriever a workflow's `knowledge.retriever` names (`hybrid`, `lexical`, `dense`, `none`)."""
    kb = kb or default_kb()
    if kind == "none":
        return None
    if kind == "hybrid":
        return HybridRetriever(kb)
    if kind == "lexical":
        return LexicalRetriever(kb)
    if kind == "dense":
        return HybridRetriever(kb, rankers=("dense",))
    raise MedcoderError(f"unknown retriever {kind!r}; choose hybrid, lexical, dense or none")
