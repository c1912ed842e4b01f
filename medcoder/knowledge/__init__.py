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
from medcoder.knowledge.ontology import INDEX_TABLES, CodeSystem, Node, Ontology
from medcoder.knowledge.systems import (
    DEFAULT_SYSTEM,
    guess_system,
    load_system,
    register_system,
    system_class,
    system_names,
)

__all__ = [
    "ATC",
    "ICD10CM",
    "AlphabeticIndex",
    "CodeSystem",
    "DEFAULT_SYSTEM",
    "DrugTable",
    "IndexEntry",
    "NeoplasmTable",
    "Node",
    "Ontology",
    "SearchHit",
    "guess_system",
    "load_ontology",
    "load_atc",
    "load_icd10cm",
    "load_system",
    "load_alphabetic_index",
    "load_drug_table",
    "load_neoplasm_table",
    "KnowledgeBase",
    "register_system",
    "system_class",
    "system_names",
]

load_ontology = load_system  # the older name


class KnowledgeBase:
    """Everything the tools read: the code systems and ICD-10-CM's index tables, each loaded once, on first use."""

    def __init__(self) -> None:
        self._ontologies: dict[str, CodeSystem] = {}

    def ontology(self, system: str = DEFAULT_SYSTEM) -> CodeSystem:
        onto = self._ontologies.get(system)
        if onto is None:
            onto = self._ontologies[system] = load_system(system)
        return onto

    def with_capability(self, capability: str) -> CodeSystem:
        """The first installed code system that declares `capability` (the registry decides, not a name)."""
        for name in system_names():
            if capability in system_class(name).capabilities:
                return self.ontology(name)
        raise MedcoderError(f"no installed code system has {capability!r}")

    @property
    def alphabetic_index(self) -> AlphabeticIndex:
        """The Alphabetic Index of the system that has index tables (ICD-10-CM's)."""
        return self.with_capability(INDEX_TABLES).alphabetic_index  # type: ignore[attr-defined]

    @cached_property
    def drug_table(self) -> DrugTable:
        return load_drug_table(self.with_capability(INDEX_TABLES))

    @cached_property
    def neoplasm_table(self) -> NeoplasmTable:
        return load_neoplasm_table(self.with_capability(INDEX_TABLES))


@lru_cache(maxsize=1)
def default_kb() -> KnowledgeBase:
    return KnowledgeBase()
