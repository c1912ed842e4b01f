"""Ranked coding of one note: gather candidates, score them with the learned ranker, threshold.

`RankedCoder` is what the workflow's `rank` node, the eval strategies and `medcoder learn` share,
so a code is scored the same way everywhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from medcoder.knowledge.lexical import SearchHit
from medcoder.ranking.candidates import (
    FEATURES, Evidence, NoteCandidates, Span, collect, mention_spans, sentence_spans,
)
from medcoder.ranking.memory import CodedNotesMemory, MemoryView
from medcoder.ranking.model import RankerModel, load_memory

logger = logging.getLogger(__name__)

SENTENCE_K = 20
MENTION_K = 10


@dataclass(slots=True)
class RankedCode:
    """One scored candidate: the calibrated probability and what it rests on."""

    code: str
    probability: float
    evidence: list[Evidence] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    accepted: bool = False
    ranker_probability: float = 0.0  # before the verifier's blend

    def feature_dict(self) -> dict[str, Any]:
        """The features as JSON values (NaN, a signal that was not computed, becomes null)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.features.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "probability": round(self.probability, 4), "accepted": self.accepted,
                "ranker_probability": round(self.ranker_probability, 4), "sources": self.sources,
                "evidence": [asdict(e) for e in self.evidence], "features": self.feature_dict()}


def hits_to_json(hits: Sequence[Sequence[SearchHit]]) -> list[list[list[Any]]]:
    return [[[h.code, round(h.score, 6), h.sources] for h in hs] for hs in hits]


def hits_from_json(data: list[list[list[Any]]]) -> list[list[SearchHit]]:
    return [[SearchHit(c, s, "", list(src)) for c, s, src in hs] for hs in data]


class RetrievalCache:
    """Retrieval results per (text, system, retriever settings) in a JSONL file: learning and
    evaluation search each note's sentences once, and a killed run resumes without searching again."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.items: dict[str, Any] = {}
        if self.path and self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    row = json.loads(line)
                    self.items[row["key"]] = row["hits"]
                except (ValueError, KeyError):
                    continue

    @staticmethod
    def key(texts: Sequence[str], system: str, signature: str) -> str:
        return hashlib.sha256(json.dumps([list(texts), system, signature]).encode()).hexdigest()

    def get(self, key: str) -> list[list[SearchHit]] | None:
        data = self.items.get(key)
        return hits_from_json(data) if data is not None else None

    def put(self, key: str, hits: Sequence[Sequence[SearchHit]]) -> None:
        data = hits_to_json(hits)
        self.items[key] = data
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"key": key, "hits": data}) + "\n")


def retriever_signature(retriever: Any) -> str:
    return json.dumps([type(retriever).__name__, getattr(retriever, "rankers", None),
                       getattr(retriever, "rrf_k", None), getattr(retriever, "weights", None)], sort_keys=True)


def search_spans(retriever: Any, spans: Sequence[Span], system: str, cache: RetrievalCache | None = None
                 ) -> list[list[SearchHit]]:
    """Fused hits for every span (sentences: top 20, mentions: top 10), searched in one batch per kind."""
    out: list[list[SearchHit]] = [[] for _ in spans]
    for source, k in (("sentence", SENTENCE_K), ("mention", MENTION_K)):
        idx = [i for i, s in enumerate(spans) if s.source == source]
        if not idx:
            continue
        texts = [spans[i].text for i in idx]
        key = RetrievalCache.key(texts, system, retriever_signature(retriever) + f"#{k}")
        hits = cache.get(key) if cache else None
        if hits is None:
            hits = retriever.search_many(texts, system, k)
            if cache:
                cache.put(key, hits)
        for i, h in zip(idx, hits):
            out[i] = h
    return out


class RankedCoder:
    """A learned ranker with its memory, over a knowledge base and a retriever."""

    def __init__(self, ranker: RankerModel, memory: CodedNotesMemory | None, kb: Any, retriever: Any) -> None:
        self.ranker = ranker
        self.memory = memory
        self.system = ranker.system
        self.onto = kb.ontology(self.system)
        self.retriever = retriever

    @classmethod
    def from_folder(cls, folder: str | Path, kb: Any, retriever: Any) -> "RankedCoder":
        return cls(RankerModel.load(folder), load_memory(folder), kb, retriever)

    def candidates(self, text: str, entities: Sequence[dict[str, Any]] | None = None, *, sentences: bool = True,
                   memory_view: MemoryView | None = None, cache: RetrievalCache | None = None) -> NoteCandidates:
        """Every source's candidates for the note, as feature rows."""
        spans = sentence_spans(text) if sentences else []
        spans += mention_spans(entities or [], self.onto.entity_kind)
        hits = search_spans(self.retriever, spans, self.system, cache) if spans and self.retriever else []
        if memory_view is None and self.memory is not None:
            memory_view = self.memory.query([text])[0]
        return collect(self.onto, spans, hits, memory_view, self.memory.frequency if self.memory else None,
                       note=text)

    def rank(self, cands: NoteCandidates, verifier: dict[str, float] | None = None,
             verifier_sha256: str = "") -> list[RankedCode]:
        """Calibrated probabilities, best first; `accepted` marks those above the threshold."""
        if not cands.codes:
            return []
        probs = self.ranker.probabilities(cands.features)
        blend = self.ranker.blend
        out = []
        for code, row, p in zip(cands.codes, cands.features, probs):
            feats = dict(zip(FEATURES, row))
            final = float(p)
            if verifier and code in verifier:
                feats["verifier_log_odds"] = verifier[code]
                if blend and blend.model_sha256 == verifier_sha256:
                    final = blend.apply(final, verifier[code])
            out.append(RankedCode(code, final, cands.evidence.get(code, []), cands.sources.get(code, []), feats,
                                  ranker_probability=float(p)))
        out.sort(key=lambda r: (-r.probability, r.code))
        floor = self.ranker.meta.get("memory_similarity_floor")
        for r in out:
            r.accepted = r.probability >= self.ranker.threshold
            # a note unlike anything the memory holds: its codes must rest on the note's own words
            if (r.accepted and floor is not None and not ({"sentence", "mention"} & set(r.sources))
                    and r.features.get("note_top_sim", 1.0) < floor):
                r.accepted = False
        return out
