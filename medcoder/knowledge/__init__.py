"""The code systems as graphs (ICD-10-CM, ATC), the ICD-10-CM index tables, and search over them."""

from __future__ import annotations

from functools import cached_property, lru_cache

from medcoder.errors import MedcoderError
from medcoder.knowledge.atc import ATC, load_atc
from medcoder.knowledge.icd10cm import ICD10CM, load_icd10cm
from medcoder.knowledge.index import (
    AlphabeticIndex,
    DrugTable,
    IndexEntry,
    NeoplasmTable,
    load_alphabetic_index,
    load_drug_table,
    load_neoplasm_table,
)
from medcoder.knowledge.lexical import SearchHit
from medcoder.knowledge.ontology import Node, Ontology

SYSTEMS = ("icd10cm", "atc")

__all__ = [
    "ATC", "ICD10CM", "AlphabeticIndex", "DrugTable", "IndexEntry", "NeoplasmTable", "Node",
    "Ontology", "SearchHit", "SYSTEMS", "load_ontology", "load_atc", "load_icd10cm",
    "load_alphabetic_index", "load_drug_table", "load_neoplasm_table", "KnowledgeBase",
]


def load_ontology(system: str = "icd10cm") -> Ontology:
    """The ontology for a system name (`icd10cm` or `atc`)."""
    if system == "icd10cm":
        return load_icd10cm()
    if system == "atc":
        return load_atc()
    raise MedcoderError(f"unknown code system {system!r}; choose one of {', '.join(SYSTEMS)}")


class KnowledgeBase:
    """Everything the tools read: both ontologies and the index tables, each loaded once, on first use."""

    def __init__(self) -> None:
        self._ontologies: dict[str, Ontology] = {}

    def ontology(self, system: str = "icd10cm") -> Ontology:
        onto = self._ontologies.get(system)
        if onto is None:
            onto = self._ontologies[system] = load_ontology(system)
        return onto

    @property
    def icd10cm(self) -> ICD10CM:
        return self.ontology("icd10cm")  # type: ignore[return-value]

    @property
    def atc(self) -> ATC:
        return self.ontology("atc")  # type: ignore[return-value]

    @cached_property
    def alphabetic_index(self) -> AlphabeticIndex:
        return load_alphabetic_index(self.icd10cm)

    @cached_property
    def drug_table(self) -> DrugTable:
        return load_drug_table(self.icd10cm)

    @cached_property
    def neoplasm_table(self) -> NeoplasmTable:
        return load_neoplasm_table(self.icd10cm)


@lru_cache(maxsize=1)
def default_kb() -> KnowledgeBase:
    return KnowledgeBase()
