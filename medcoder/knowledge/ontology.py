"""The one interface every code system implements, and the node record it hands out.

The navigator, the tools and the CLI only ever talk to an `Ontology`; ICD-10-CM and ATC
are two implementations built on a networkx tree with a virtual root.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from typing import Iterable

import networkx as nx

from medcoder.errors import UnknownCodeError
from medcoder.knowledge.lexical import LexicalIndex, SearchHit
from medcoder.paths import cached_pickle

logger = logging.getLogger(__name__)

ROOT = "ROOT"


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


class Ontology(abc.ABC):
    """A code system as a tree: the shape shared by ICD-10-CM and ATC.

    Subclasses fill `self.graph` (a DiGraph whose nodes carry a `Node` under "n", rooted
    at `ROOT`) and `self.lexical`; everything else is implemented here once.
    """

    system: str = ""
    version: str = ""
    cache_key: str = ""
    graph: nx.DiGraph
    _lexical: LexicalIndex | None = None

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_lexical", None)  # cached on its own, loaded on first search
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
        return self.graph.number_of_nodes() - 1

    # -- the tree ------------------------------------------------------------------
    def node(self, code: str) -> Node:
        return self.graph._node[self.resolve(code)]["n"]

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
        nodes = self.graph._node
        for c in nx.descendants(self.graph, self.resolve(code)):
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
