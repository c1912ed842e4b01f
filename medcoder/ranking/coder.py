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
from typing import Any, Collection, Sequence

import numpy as np

from medcoder.jsonl import numbered_rows
from medcoder.knowledge import KnowledgeBase
from medcoder.knowledge.abbreviations import expand
from medcoder.knowledge.lexical import SearchHit
from medcoder.knowledge.retrieval import Retriever
from medcoder.ranking.candidates import FEATURES, NoteCandidates, collect
from medcoder.ranking.cards import auto_acceptable
from medcoder.ranking.decisions import FinalCalibration
from medcoder.ranking.memory import CodedNotesMemory, MemoryView
from medcoder.ranking.model import RankerModel, load_memory
from medcoder.records import Entity
from medcoder.visit.conventions import DEFAULT_CONVENTIONS
from medcoder.visit.rules import apply_guidelines, best_first
from medcoder.visit.spans import SearchSpan, Sighting, mention_spans, note_spans

logger = logging.getLogger(__name__)

SENTENCE_K = 20
MENTION_K = 10


@dataclass(slots=True)
class RankedCode:
    """One scored candidate: the calibrated probability and what it rests on."""

    code: str
    probability: float
    evidence: list[Sighting] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    accepted: bool = False
    ranker_probability: float = 0.0  # before the verifier's blend
    rule: str = ""  # the guideline rule that set it aside or changed it
    reason: str = ""  # what the rule found, in words
    specified_from: str = ""  # the code the ranker chose before the text's laterality / 7th character
    score: float = 0.0  # the trees' raw score: orders codes the calibrator's steps put at the same probability
    decision: str = "ranker"  # what decided the code last (`ranking.decisions.DECISIONS`): its calibration
    auto: bool = False  # the auto-accept policy lets it be accepted without a coder
    index_read: bool = False  # an assessment line's complete Alphabetic Index reading is this code

    @classmethod
    def proposed(cls, code: str, source: str) -> "RankedCode":
        """A code no source scored, that a visit rule adds (`source`: index | convention)."""
        return cls(code, 0.0, [], [source])

    def feature_dict(self) -> dict[str, Any]:
        """The features as JSON values (NaN, a signal that was not computed, becomes null)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.features.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "probability": round(self.probability, 4),
            "accepted": self.accepted,
            "ranker_probability": round(self.ranker_probability, 4),
            "sources": self.sources,
            "rule": self.rule,
            "reason": self.reason,
            "specified_from": self.specified_from,
            "decision": self.decision,
            "auto": self.auto,
            "evidence": [asdict(e) for e in self.evidence],
            "features": self.feature_dict(),
        }


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
            for _, row, _ in numbered_rows(self.path):
                if row is not None and "key" in row and "hits" in row:
                    self.items[row["key"]] = row["hits"]

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


def retriever_signature(retriever: Retriever) -> str:
    return json.dumps(
        [
            type(retriever).__name__,
            getattr(retriever, "rankers", None),
            getattr(retriever, "rrf_k", None),
            getattr(retriever, "weights", None),
        ],
        sort_keys=True,
    )


def search_spans(
    retriever: Retriever, spans: Sequence[SearchSpan], system: str, cache: RetrievalCache | None = None
) -> list[list[SearchHit]]:
    """Fused hits for every span (sentences: top 20, problems and mentions: top 10), one batch per kind."""
    out: list[list[SearchHit]] = [[] for _ in spans]
    for source, k in (("sentence", SENTENCE_K), ("problem", MENTION_K), ("mention", MENTION_K)):
        idx = [i for i, s in enumerate(spans) if s.source == source]
        if not idx:
            continue
        texts = [expand(spans[i].text) for i in idx]  # abbreviations spelled out: labels never use them
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

    def __init__(
        self, ranker: RankerModel, memory: CodedNotesMemory | None, kb: KnowledgeBase, retriever: Retriever | None
    ) -> None:
        self.ranker = ranker
        self.memory = memory
        self.system = ranker.system
        self.onto = kb.ontology(self.system)
        self.retriever = retriever
        self.conventions: Collection[str] = DEFAULT_CONVENTIONS  # the coding conventions applied

    @classmethod
    def from_folder(cls, folder: str | Path, kb: KnowledgeBase, retriever: Retriever | None) -> "RankedCoder":
        return cls(RankerModel.load(folder), load_memory(folder), kb, retriever)

    def candidates(
        self,
        text: str,
        entities: Sequence[Entity] | None = None,
        *,
        sentences: bool = True,
        memory_view: MemoryView | None = None,
        cache: RetrievalCache | None = None,
    ) -> NoteCandidates:
        """Every source's candidates for the note, as feature rows."""
        spans = note_spans(text) if sentences else []
        spans += mention_spans(entities or [], self.onto.entity_kind)
        hits = search_spans(self.retriever, spans, self.system, cache) if spans and self.retriever else []
        if memory_view is None and self.memory is not None:
            memory_view = self.memory.query([text])[0]
        return collect(self.onto, spans, hits, memory_view, self.memory.frequency if self.memory else None, note=text)

    def rank(
        self,
        cands: NoteCandidates,
        verifier: dict[str, float] | None = None,
        verifier_sha256: str = "",
        note: str | None = None,
        problems: Sequence[SearchSpan] = (),
    ) -> list[RankedCode]:
        """Calibrated probabilities, best first; `accepted` marks those above the threshold and, when the
        `note` is given, kept by the visit rules (`visit.rules.apply_guidelines`), which also read the `problems`
        a model listed like the assessment's problem lines."""
        if not cands.codes:
            return []
        kind = self.ranker.note_kind(cands.features)
        raw = self.ranker.raw(cands.features)
        probs = self.ranker.calibrate(raw, kind)
        blend = self.ranker.blend
        before = dict(zip(cands.codes, probs))
        if verifier and blend and blend.model_sha256 == verifier_sha256:
            probs = np.asarray([blend.apply(float(p), verifier[c]) if c in verifier else p for c, p in before.items()])
        out = ranked_codes(
            cands, probs, raw, self.ranker.threshold_for(kind), self.ranker.meta.get("memory_similarity_floor")
        )
        for r in out:
            r.ranker_probability = float(before[r.code])  # before the verifier's blend
            if verifier and r.code in verifier:
                r.features["verifier_log_odds"] = verifier[r.code]
        if note is not None:
            out = apply_guidelines(
                self.onto,
                out,
                note,
                self.ranker.threshold_for(kind),
                problems,
                self.conventions,
                make=RankedCode.proposed,
            )
        return finish(out, self.ranker, kind)


def ranked_codes(
    cands: NoteCandidates,
    probs: Sequence[float] | np.ndarray,
    raw: Sequence[float] | np.ndarray,
    threshold: float,
    floor: float | None = None,
) -> list[RankedCode]:
    """The candidates as ranked codes, best first, `accepted` at or above the `threshold`; a note unlike anything
    the memory holds (below the `floor` of similarity) accepts no code that rests on the memory alone."""
    out = [
        RankedCode(code, float(p), cands.evidence.get(code, []), cands.sources.get(code, []), dict(zip(FEATURES, row)))
        for code, row, p in zip(cands.codes, cands.features, probs)
    ]
    for r, p, score in zip(out, probs, raw):
        r.ranker_probability, r.score = float(p), float(score)
        r.accepted = r.probability >= threshold
        if (
            r.accepted
            and floor is not None
            and not ({"sentence", "problem", "mention"} & set(r.sources))
            and r.features.get("note_top_sim", 1.0) < floor
        ):
            r.accepted = False
    return sorted(out, key=best_first)


def finish(ranked: list[RankedCode], ranker: RankerModel, kind: str) -> list[RankedCode]:
    """The probability each code is shown with and the auto-accept policy: a visit note's final codes through the
    calibration of their decisions (`decisions.FinalCalibration`, learned with the rules in the loop); a case
    report's as the ranker gave them, auto-accepted above its threshold when found directly twice."""
    final = FinalCalibration.of(ranker) if kind == "visit" else None
    if final is not None:
        return final.apply(ranked)
    auto = (ranker.meta.get("cv") or {}).get("auto_accept_threshold")
    for r in ranked:
        r.auto = r.accepted and auto_acceptable(r.probability, r.features, auto)
    return ranked
