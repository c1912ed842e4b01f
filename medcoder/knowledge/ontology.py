"""The one interface every code system implements (`CodeSystem`), and the records it hands out.

Agents, tools, retrieval, exports and the CLI only ever talk to a `CodeSystem`; everything
particular to one system (its name in prompts, FHIR URI, code syntax, retrieval texts, term
matcher, instructional notes) lives in that system's module. ICD-10-CM and ATC are two
implementations built on a networkx tree with a virtual root; a third is one more module,
registered under the `medcoder.code_systems` entry-point group.
"""

from __future__ import annotations

import abc
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Iterable, Iterator

import networkx as nx

from medcoder.errors import UnknownCodeError
from medcoder.knowledge.lexical import LexicalIndex, SearchHit
from medcoder.paths import cached_pickle

logger = logging.getLogger(__name__)

ROOT = "ROOT"

# optional capabilities a code system may declare (and then implements the matching method)
NOTES = "instructional_notes"  # notes(): includes, code first, use additional code ...
EXCLUDES1 = "excludes1"  # excludes1_conflicts()
SEVENTH_CHARACTER = "seventh_character"  # seventh_characters(), placeholder X
COMBINATIONS = "combination_products"  # several ingredients coded as one product
TERM_INDEX = "term_index"  # term_hits() is more than a label search
INDEX_TABLES = "index_tables"  # alphabetic_index, and the Table of Drugs and Neoplasm Table it holds


@dataclass(slots=True)
class IndexDoc:
    """One searchable text of a code for the dense index, with what Chroma can filter on."""

    code: str
    text: str
    source: str  # label | inclusion | index | brand | combination ...
    kind: str
    chapter: str
    billable: bool


@dataclass(slots=True)
class Node:
    """One node of a code system: a chapter, block, category, code or ATC level."""

    code: str
    label: str
    kind: str
    billable: bool
    parent: str | None
    depth: int
    notes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    attrs: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "label": self.label,
            "kind": self.kind,
            "billable": self.billable,
            "parent": self.parent,
            "depth": self.depth,
            "notes": {k: list(v) for k, v in self.notes.items()},
            **({"attrs": self.attrs} if self.attrs else {}),
        }


class CodeSystem(abc.ABC):
    """A code system as a tree, plus what the rest of medcoder needs to know about it.

    Subclasses fill `self.graph` (a DiGraph whose nodes carry a `Node` under "n", rooted
    at `ROOT`), set the class attributes below and implement `load` and `normalize`; the
    tree walk, lexical search and the optional capabilities' neutral defaults live here once.
    """

    # -- what callers read without loading the data (class attributes) ---------------
    system: ClassVar[str] = ""  # registry name, as workflows and results spell it
    title: ClassVar[str] = ""  # human name: "ICD-10-CM"
    entity_kind: ClassVar[str] = ""  # the extractor's entity kind this system codes
    prompt_name: ClassVar[str] = ""  # how prompts name a code of it: "ICD-10-CM diagnosis"
    fhir_uri: ClassVar[str] = ""  # FHIR `Coding.system`
    fhir_resource: ClassVar[str] = "Observation"  # the FHIR resource a coded item becomes
    capabilities: ClassVar[frozenset[str]] = frozenset()
    builtin_ranker: ClassVar[str | None] = None  # folder name of the shipped ranker, if any
    default_workflow: ClassVar[str | None] = None  # the built-in workflow `eval` uses for this system's data
    tree_workflow: ClassVar[str | None] = None  # the built-in workflow that walks the tree (eval's term strategies)
    code_pattern: ClassVar[str] = r".+"  # what a typed code of this system looks like (for guessing)
    guess_priority: ClassVar[int] = 0  # when several patterns match a typed code, the highest wins

    version: str = ""
    cache_key: str = ""
    graph: nx.DiGraph
    _lexical: LexicalIndex | None = None

    @classmethod
    @abc.abstractmethod
    def load(cls) -> "CodeSystem":
        """The system's data as installed (cached per process)."""

    @classmethod
    def looks_like(cls, code: str) -> bool:
        """Whether a code a person typed has this system's shape (no data loaded)."""
        return re.fullmatch(cls.code_pattern, code.strip().upper()) is not None

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        for key in [k for k in state if k.startswith("_")]:  # caches: rebuilt or loaded on first use
            state.pop(key)
        return state

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None:
            self._lexical = cached_pickle(
                f"{self.system}-lexical", self.cache_key, lambda: LexicalIndex(self._lexical_docs())
            )
        return self._lexical

    def _lexical_docs(self) -> Iterable[tuple[str, str, str]]:
        """(code, label, searchable text) for every node worth finding by words."""
        for n in self.iter_nodes():
            yield n.code, n.label, n.label

    # -- codes ---------------------------------------------------------------------
    @abc.abstractmethod
    def normalize(self, code: str) -> str:
        """Turn what a person types (`e1165`, ` E11.65 `) into the canonical node id."""

    def resolve(self, code: str) -> str:
        """Canonical id of an existing node, or `UnknownCodeError`."""
        if code in self.graph and code != ROOT:  # already a node id (also odd ones such as block `QA0-QA0`)
            return code
        canon = self.normalize(code)
        if canon in self.graph and canon != ROOT:
            return canon
        raise UnknownCodeError(code, self.system)

    def __contains__(self, code: object) -> bool:
        if not isinstance(code, str):
            return False
        try:
            self.resolve(code)
        except UnknownCodeError:
            return False
        return True

    def __len__(self) -> int:
        return int(self.graph.number_of_nodes()) - 1

    # -- the tree ------------------------------------------------------------------
    def node(self, code: str) -> Node:
        node: Node = self.graph._node[self.resolve(code)]["n"]
        return node

    def roots(self) -> list[Node]:
        nodes = self.graph._node
        return [nodes[c]["n"] for c in self.graph._succ[ROOT]]

    def children(self, code: str) -> list[Node]:
        nodes = self.graph._node
        succ = self.graph._succ.get(code)
        if succ is None:
            succ = self.graph._succ[self.resolve(code)]
        return [nodes[c]["n"] for c in succ]

    def parent(self, code: str) -> Node | None:
        parent = self.node(code).parent
        return None if parent in (None, ROOT) else self.graph._node[parent]["n"]

    def path(self, code: str) -> list[Node]:
        """Nodes from the top level down to `code`, both included."""
        nodes = self.graph._node
        out: list[Node] = []
        cur: str | None = self.resolve(code)
        while cur is not None and cur != ROOT:
            n = nodes[cur]["n"]
            out.append(n)
            cur = n.parent
        out.reverse()
        return out

    def descendants(self, code: str) -> Iterable[Node]:
        """Every node below `code`, in code order (networkx gives a set, whose order changes per process)."""
        nodes = self.graph._node
        for c in sorted(nx.descendants(self.graph, self.resolve(code))):
            yield nodes[c]["n"]

    def iter_nodes(self) -> Iterable[Node]:
        for c, data in self.graph._node.items():
            if c != ROOT:
                yield data["n"]

    def is_ancestor(self, ancestor: str, code: str) -> bool:
        """True when `ancestor` lies on the path of `code` (a node is its own ancestor)."""
        nodes = self.graph._node
        cur: str | None = code
        while cur is not None and cur != ROOT:
            if cur == ancestor:
                return True
            cur = nodes[cur]["n"].parent
        return False

    # -- search --------------------------------------------------------------------
    def search(self, text: str, k: int = 10, kinds: Iterable[str] | None = None) -> list[SearchHit]:
        """Lexical (BM25) search over labels and inclusion terms."""
        wanted = set(kinds) if kinds else None
        hits = self.lexical.search(text, k=k if wanted is None else k * 20)
        if wanted is not None:
            nodes = self.graph._node
            hits = [h for h in hits if nodes[h.code]["n"].kind in wanted][:k]
        return hits

    def label(self, code: str) -> str:
        return self.node(code).label

    def top_level(self, code: str) -> str:
        """The code's top-level ancestor (ICD chapter, ATC anatomical group)."""
        return self.path(code)[0].code

    def find_top_level(self, text: str) -> str | None:
        """A top-level node as a user writes it (its code, any case), or None."""
        tops = {r.code.upper(): r.code for r in self.roots()}
        return tops.get(text.strip().upper())

    # -- presentation -------------------------------------------------------------------
    def option_label(self, node: Node) -> str:
        """How a node is offered to the model among its siblings."""
        return node.label

    def index_kind(self, node: Node) -> str:
        """The level a code's texts are filed under in the dense index (what `--kind` filters)."""
        return node.kind

    # -- retrieval ---------------------------------------------------------------------
    def index_docs(self) -> Iterator[IndexDoc]:
        """The texts the dense index embeds for this system: by default each node's label."""
        for n in self.iter_nodes():
            yield IndexDoc(n.code, n.label, "label", self.index_kind(n), self.top_level(n.code), n.billable)

    def index_sources(self) -> list[Path]:
        """Files besides the code system itself whose content the index texts depend on."""
        return []

    def term_hits(self, text: str) -> list[SearchHit]:
        """The system's own term matcher (ICD's Alphabetic Index, ATC's substance names); by default BM25."""
        return self.search(text, k=15)

    # -- optional capabilities (neutral defaults) ----------------------------------------
    def notes(self, code: str, inherited: bool = True) -> dict[str, list[dict[str, str]]]:
        """Instructional notes that apply to a code, each with the node that carries it."""
        n = self.node(code)
        return {k: [{"text": t, "from": n.code} for t in v] for k, v in n.notes.items()}

    def seventh_characters(self, code: str) -> dict[str, str]:
        """7th characters a code needs ({} for systems without them)."""
        return {}

    def excludes1_conflicts(self, codes: list[str]) -> list[dict[str, str]]:
        """Pairs that may not be coded together ([] for systems without such rules)."""
        return []

    def reminders(self, code: str) -> list[str]:
        """What a coder must remember when reporting the code (code first, use additional code ...)."""
        return []

    def nearest(self, code: str) -> str | None:
        """The nearest existing code above a mistyped one, by dropping characters from the end."""
        canon = self.normalize(code)
        for n in range(len(canon) - 1, 0, -1):
            try:
                return self.resolve(canon[:n])
            except UnknownCodeError:
                continue
        return None

    def suggest(self, code: str) -> str | None:
        """A corrected spelling of a code that does not exist (ICD: the missing placeholder X)."""
        return None


Ontology = CodeSystem  # the name this interface had before code systems carried their own metadata
