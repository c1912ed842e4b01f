"""One contract for every retriever, over every code system it serves (the made-up one included)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from medcoder import plugins
from medcoder.errors import MedcoderError
from medcoder.knowledge import register_system
from medcoder.knowledge.retrieval import HybridRetriever, LexicalRetriever, Retriever, SearchFilter
from tests.toy_system import ToyFindings

QUERIES = {"icd10cm": ["type 2 diabetes with hyperglycemia", "high blood pressure"],
           "atc": ["metformin", "lisinopril"], "toyfind": ["itchy rash", "wheezing"]}
CASES = [("lexical", "icd10cm"), ("lexical", "atc"), ("lexical", "toyfind"),
         pytest.param("hybrid", "icd10cm", marks=pytest.mark.slow), pytest.param("hybrid", "atc", marks=pytest.mark.slow)]


@pytest.fixture()
def toy() -> Iterator[None]:
    register_system(ToyFindings)
    yield
    plugins.code_systems.unregister(ToyFindings.system)


@pytest.mark.parametrize(("kind", "system"), CASES)
def test_retriever_contract(kind: str, system: str, kb: Any, toy: None) -> None:
    retriever: Retriever = LexicalRetriever(kb) if kind == "lexical" else HybridRetriever(kb)
    onto = kb.ontology(system)
    texts = QUERIES[system]
    lists = retriever.search_many(texts, system, k=5)
    assert len(lists) == len(texts) and all(0 < len(hits) <= 5 for hits in lists)
    for hits in lists:
        assert all(h.code in onto and h.label == onto.label(h.code) and h.sources for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert [h.code for h in retriever.search(texts[0], system, k=5)] == [h.code for h in lists[0]]
    assert [h.code for h in retriever.candidates(texts[0], system, k=5)] == [h.code for h in lists[0]]
    billable = retriever.search(texts[0], system, k=5, filt=SearchFilter(billable_only=True))
    assert all(onto.node(h.code).billable for h in billable)
    with pytest.raises(MedcoderError, match="empty search text"):
        retriever.search_many(["  "], system)
    retriever.close()
