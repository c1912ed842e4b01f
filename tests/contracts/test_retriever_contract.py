"""One contract for every retriever, over every code system it serves (the made-up one included)."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from medcoder import plugins
from medcoder.knowledge import register_system
from medcoder.knowledge.retrieval import HybridRetriever, LexicalRetriever, Retriever
from medcoder.testing import check_retriever
from tests.toy_system import ToyFindings

QUERIES = {"icd10cm": ["type 2 diabetes with hyperglycemia", "high blood pressure"],
           "atc": ["metformin", "lisinopril"], "toyfind": ["itchy rash", "wheezing"]}
CASES = [("lexical", "icd10cm"), ("lexical", "atc"), ("lexical", "toyfind"),
         pytest.param("hybrid", "icd10cm", marks=pytest.mark.slow),
         pytest.param("hybrid", "atc", marks=pytest.mark.slow)]


@pytest.fixture()
def toy() -> Iterator[None]:
    register_system(ToyFindings)
    yield
    plugins.code_systems.unregister(ToyFindings.system)


@pytest.mark.parametrize(("kind", "system"), CASES)
def test_retriever_contract(kind: str, system: str, kb: Any, toy: None) -> None:
    retriever: Retriever = LexicalRetriever(kb) if kind == "lexical" else HybridRetriever(kb)
    check_retriever(retriever, kb.ontology(system), QUERIES[system])
    retriever.close()


def test_the_contract_catches_a_broken_retriever(kb: Any) -> None:
    class Unsorted(LexicalRetriever):
        def search_many(self, texts, system="icd10cm", k=10, filt=None):
            return [list(reversed(hits)) for hits in super().search_many(texts, system, k, filt)]

    with pytest.raises(AssertionError, match="best first"):
        check_retriever(Unsorted(kb), kb.ontology("icd10cm"), QUERIES["icd10cm"])
