"""A made-up third code system, to show that adding one is one module plus its data.

`ToyFindings` codes "finding" entities against a seven-line CSV; it declares no optional
capabilities, so every default of the CodeSystem interface is exercised.
"""

from __future__ import annotations

import csv
from pathlib import Path

import networkx as nx

from medcoder.knowledge.ontology import ROOT, CodeSystem, Node

DATA = Path(__file__).parent / "data" / "toy_findings.csv"


class ToyFindings(CodeSystem):
    system = "toyfind"
    title = "Toy findings"
    entity_kind = "finding"
    prompt_name = "toy clinic finding"
    fhir_uri = "urn:example:toy-findings"
    code_pattern = r"F\d(\.\d)?"

    def __init__(self, path: Path = DATA) -> None:
        self.version = "toy 1"
        self.cache_key = f"toy-{path.stat().st_mtime_ns}"
        self.graph = nx.DiGraph()
        self.graph.add_node(ROOT, n=Node(ROOT, "Toy", "root", False, None, 0))
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                parent = row["parent"] or ROOT
                depth = 1 if parent == ROOT else self.graph.nodes[parent]["n"].depth + 1
                node = Node(row["code"], row["label"], "code" if row["billable"] == "true" else "group",
                            row["billable"] == "true", parent, depth)
                self.graph.add_node(node.code, n=node)
                self.graph.add_edge(parent, node.code)

    @classmethod
    def load(cls) -> "ToyFindings":
        return cls()

    def normalize(self, code: str) -> str:
        return code.strip().upper()
