"""Candidate retrieval: the seam where search plugs into the coding workflow and `kb search`.

`Retriever.candidates(text, system, k)` returns codes worth offering as entry points. Three
rankers exist: BM25 over descriptions and inclusion terms (`lexical`), MiniLM vectors in
ChromaDB (`dense`), and the ICD-10-CM Alphabetic Index walk (`index`). `HybridRetriever` fuses
any of them by weighted reciprocal rank, with filters by chapter and level, and says which
ranker found each code at which rank.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

from medcoder.errors import MedcoderError
from medcoder.knowledge import KnowledgeBase, default_kb
from medcoder.knowledge.lexical import SearchHit

logger = logging.getLogger(__name__)

RANKERS = ("lexical", "dense", "index")


class Retriever(Protocol):
    def candidates(self, text: str, system: str = "icd10cm", k: int = 10) -> list[SearchHit]: ...


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


@dataclass
class HybridRetriever:
    """Weighted reciprocal-rank fusion of the lexical, dense and index rankers."""

    kb: KnowledgeBase = field(default_factory=default_kb)
    rankers: tuple[str, ...] = RANKERS
    # chosen on 100 CodiEsp *train* notes by benchmarks/retrieval_bench.py (grid in results/retrieval.json)
    rrf_k: int = 5
    pool: int = 50
    weights: dict[str, float] = field(default_factory=lambda: {"lexical": 1.0, "dense": 1.5, "index": 1.5})
    _dense: dict[str, Any] = field(default_factory=dict, repr=False)
    _chapters: dict[str, Callable[[str], str]] = field(default_factory=dict, repr=False)  # per system, memoised
    _atc_names: dict[str, list[str]] | None = field(default=None, repr=False)  # substance -> level-5 codes

    def __post_init__(self) -> None:
        unknown = set(self.rankers) - set(RANKERS)
        if unknown or not self.rankers:
            raise MedcoderError(f"unknown rankers {sorted(unknown)}; choose from {', '.join(RANKERS)}")

    def dense(self, system: str) -> Any:
        from medcoder.knowledge.dense import DenseIndex

        if system not in self._dense:
            self._dense[system] = DenseIndex(self.kb, system)
        return self._dense[system]

    def candidates(self, text: str, system: str = "icd10cm", k: int = 10) -> list[SearchHit]:
        return self.search(text, system, k)

    def search(self, text: str, system: str = "icd10cm", k: int = 10, filt: SearchFilter | None = None) -> list[SearchHit]:
        return self.search_many([text], system, k, filt)[0]

    def search_many(self, texts: list[str], system: str = "icd10cm", k: int = 10,
                    filt: SearchFilter | None = None) -> list[list[SearchHit]]:
        """Fused top-k per text; the dense ranker embeds all texts in one batch."""
        if any(not t.strip() for t in texts):
            raise MedcoderError("empty search text")
        return [self.fuse(system, lists, k) for lists in self.ranked_lists(texts, system, filt)]

    def ranked_lists(self, texts: list[str], system: str = "icd10cm",
                     filt: SearchFilter | None = None) -> list[dict[str, list[SearchHit]]]:
        """Each ranker's own list per text (up to `pool` codes), before fusion: what benchmarks compare."""
        filt = self._normalise(system, filt or SearchFilter())
        dense_lists: list[list[SearchHit]] = [[] for _ in texts]
        if "dense" in self.rankers:
            dense_lists = self.dense(system).search_many(texts, self.pool, filt.where())
        out = []
        for text, dense_hits in zip(texts, dense_lists):
            lists: dict[str, list[SearchHit]] = {}
            if "lexical" in self.rankers:
                lists["lexical"] = self._filtered(system, self.kb.ontology(system).lexical.search(text, k=self.pool * 4), filt)[: self.pool]
            if "dense" in self.rankers:
                lists["dense"] = dense_hits
            if "index" in self.rankers:
                hits = self._index_hits(text) if system == "icd10cm" else self._substance_hits(text)
                lists["index"] = self._filtered(system, hits, filt)
            out.append(lists)
        return out

    # -- rankers and fusion -------------------------------------------------------------
    def _index_hits(self, text: str) -> list[SearchHit]:
        """The Alphabetic Index: the deepest entry of the walk first, then entries found by words."""
        index = self.kb.alphabetic_index
        walked = index.lookup(text)
        entries = [e for e in reversed(walked) if index.follow(e)][:1] + index.search(text, k=15)
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for e in entries:
            code = index.follow(e)
            if code and code not in seen:
                seen.add(code)
                hits.append(SearchHit(code, 1.0 / (len(hits) + 1), "", ["index"]))
        return hits

    def _substance_hits(self, text: str) -> list[SearchHit]:
        """ATC's term index: substance names matched whole, salts and hydrates set aside
        ("FLUTICASONE PROPIONATE" -> fluticasone); several ingredients -> their combination codes first."""
        names = self._atc_names
        if names is None:
            names = {}
            for n in self.kb.atc.iter_nodes():
                if n.depth == 5:
                    names.setdefault(_substance(n.label), []).append(n.code)
            self._atc_names = names
        parts = [_substance(p) for p in re.split(r",|;|/|\||\+|\band\b|\bwith\b", text.lower()) if p.strip()]
        parts = [_US_NAMES.get(p, p) for p in parts if p]
        ordered: list[str] = []
        if len(parts) > 1:  # a combination: labels that name every ingredient, then "<ingredient>, combinations"
            ordered += [c for label, codes in names.items() if all(p in label for p in parts) for c in codes]
            ordered += [c for p in parts for label, codes in names.items()
                        if label.startswith(p) and "combination" in label for c in codes]
        for p in parts:
            ordered += names.get(p, [])
        seen: set[str] = set()
        return [SearchHit(c, 1.0 / (i + 1), "", ["index"]) for i, c in enumerate(ordered) if not (c in seen or seen.add(c))]

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
        """Accept a chapter as the user writes it: `CH4`, `4`, `IV`-less ranges like `E00-E89`, ATC `a`."""
        if not filt.chapter:
            return filt
        onto = self.kb.ontology(system)
        raw = filt.chapter.strip()
        tops = {r.code: r for r in onto.roots()}
        wanted = None
        if system == "atc":
            wanted = raw.upper() if raw.upper() in tops else None
        else:
            for code, node in tops.items():
                span = re.search(r"\(([A-Z0-9]{3}-[A-Z0-9]{3})\)\s*$", node.label)
                if code.upper() in (raw.upper(), f"CH{raw}".upper()) or (span and raw.upper() == span.group(1)):
                    wanted = code
        if wanted is None:
            raise MedcoderError(f"unknown chapter {raw!r} for {system}; choose from {', '.join(tops)}")
        return SearchFilter(wanted, filt.kinds, filt.billable_only)

    def _filtered(self, system: str, hits: Iterable[SearchHit], filt: SearchFilter) -> list[SearchHit]:
        if not (filt.chapter or filt.kinds or filt.billable_only):
            return list(hits)
        from medcoder.knowledge.dense import chapter_lookup, index_kind

        if system not in self._chapters:
            self._chapters[system] = chapter_lookup(self.kb, system)
        chapter_of = self._chapters[system]
        nodes = self.kb.ontology(system).graph.nodes
        out = []
        for h in hits:
            n = nodes[h.code]["n"]
            if filt.billable_only and not n.billable:
                continue
            if filt.kinds and index_kind(system, n) not in filt.kinds:
                continue
            if filt.chapter and chapter_of(h.code) != filt.chapter:
                continue
            out.append(h)
        return out


_SALTS = frozenset(
    "hydrochloride hcl dihydrochloride sodium potassium calcium magnesium propionate dipropionate acetate sulfate "
    "sulphate maleate mesylate besylate besilate citrate tartrate bitartrate phosphate fumarate succinate bromide "
    "chloride hydrobromide monohydrate dihydrate trihydrate sesquihydrate hemihydrate anhydrous hyclate furoate "
    "valerate lactate gluconate nitrate oxalate pamoate palmitate stearate tosylate trometamol tromethamine "
    "disodium dipotassium hydrate base free as".split())


_US_NAMES = {  # US adopted names -> the INNs that ATC uses
    "acetaminophen": "paracetamol", "albuterol": "salbutamol", "glyburide": "glibenclamide",
    "meperidine": "pethidine", "levalbuterol": "levosalbutamol", "cyclosporine": "ciclosporin",
    "rifampin": "rifampicin", "furosemide": "furosemide", "hydrocodone": "hydrocodone",
    "acetylsalicylic acid": "acetylsalicylic acid", "aspirin": "acetylsalicylic acid",
}


def _substance(name: str) -> str:
    """A substance name without salt, hydrate and strength words, lower case."""
    words = [w for w in re.findall(r"[a-z][a-z\-]*", name.lower()) if w not in _SALTS]
    return " ".join(words)


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
