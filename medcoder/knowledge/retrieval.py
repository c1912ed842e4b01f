"""Candidate retrieval: the seam where search plugs into the coding workflow.

`Retriever.candidates(text, system, k)` returns codes worth offering as entry points. The
lexical retriever here ranks descriptions with BM25 and adds the Alphabetic Index walk; a
dense or hybrid retriever implements the same method.
"""

from __future__ import annotations

import logging
from typing import Protocol

from medcoder.knowledge import KnowledgeBase, default_kb
from medcoder.knowledge.lexical import SearchHit

logger = logging.getLogger(__name__)


class Retriever(Protocol):
    def candidates(self, text: str, system: str = "icd10cm", k: int = 10) -> list[SearchHit]: ...


class LexicalRetriever:
    """BM25 over labels and inclusion terms, plus the Alphabetic Index walk for ICD-10-CM."""

    def __init__(self, kb: KnowledgeBase | None = None) -> None:
        self.kb = kb or default_kb()

    def candidates(self, text: str, system: str = "icd10cm", k: int = 10) -> list[SearchHit]:
        onto = self.kb.ontology(system)
        hits = onto.search(text, k=k)
        if system == "icd10cm":
            walked = self.kb.alphabetic_index.lookup(text)
            linked = next((e.linked for e in reversed(walked) if e.linked), None)
            if linked:
                hits = [h for h in hits if h.code != linked]
                hits.insert(0, SearchHit(linked, hits[0].score if hits else 1.0, onto.label(linked), ["index"]))
        return hits[:k]
