"""WHO ATC as a five-level tree, from the bundled WHOCC scrape or a user's own licensed file.

The file has the WHOCC columns `atc_code, atc_name, ddd, uom, adm_r, note`; a code may
repeat once per route of administration, each row adding a DDD. Combination products
(`atc_code, brand_name, dosage_form, ingredients, ddd_comb`) attach to their level-5 code.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

import networkx as nx

from medcoder.errors import DataFileError
from medcoder.knowledge.druglex import SALTS, rabbits_brands
from medcoder.knowledge.lexical import SearchHit
from medcoder.knowledge.ontology import COMBINATIONS, NOTES, ROOT, TERM_INDEX, CodeSystem, IndexDoc, Node
from medcoder.paths import file_digest

logger = logging.getLogger(__name__)

LEVEL_BY_LENGTH = {1: 1, 3: 2, 4: 3, 5: 4, 7: 5}
LEVEL_KIND = {
    1: "anatomical main group",
    2: "therapeutic subgroup",
    3: "pharmacological subgroup",
    4: "chemical subgroup",
    5: "chemical substance",
}
REQUIRED_COLUMNS = ("atc_code", "atc_name")
ATTRIBUTION = (
    "ATC/DDD (c) WHO Collaborating Centre for Drug Statistics Methodology, Oslo. "
    "Bundled scrape of 2026-04-25 under CC BY-NC-SA 4.0; no commercial redistribution."
)


RABBITS_FILE = Path(__file__).parent / "data" / "rabbits_generic_to_brand.csv"


def _data_file(name: str) -> Path:
    return Path(str(resources.files("medcoder.knowledge") / "data" / name))


def default_atc_file() -> Path:
    env = os.environ.get("MEDCODER_ATC_FILE")
    return Path(env) if env else _data_file("atc_ddd_2026-04-25.csv")


def default_combinations_file() -> Path | None:
    env = os.environ.get("MEDCODER_ATC_COMBINATIONS_FILE")
    if env:
        return Path(env)
    return None if os.environ.get("MEDCODER_ATC_FILE") else _data_file("atc_combinations_2026-04-25.csv")


def _clean(value: str | None) -> str:
    value = (value or "").strip()
    return "" if value.upper() == "NA" else value


def _read_rows(path: Path, required: Iterable[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise DataFileError(f"ATC file not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataFileError(f"{path}: missing column(s) {', '.join(missing)}; found {reader.fieldnames}")
        return list(reader)


class ATC(CodeSystem):
    """The Anatomical Therapeutic Chemical classification with DDDs and combination products."""

    system = "atc"
    title = "WHO ATC"
    entity_kind = "medication"
    prompt_name = "WHO ATC drug"
    fhir_uri = "http://www.whocc.no/atc"
    fhir_resource = "MedicationStatement"
    capabilities = frozenset({NOTES, COMBINATIONS, TERM_INDEX})
    code_pattern = r"[A-Z](\d\d[A-Z]([A-Z](\d\d)?)?)?"  # A, A10B, A10BA, A10BA02 (A10 reads as ICD-10-CM)
    default_workflow = "atc"
    builtin_ranker = "dpd-atc"  # the drug ranker shipped in medcoder/ranking/data
    tree_workflow = "atc-tree"  # the model walking the levels (the `tree` strategy of `medcoder eval`)
    guess_priority = 1  # A10BA02 also has the shape of an ICD-10-CM code

    def __init__(self, atc_file: Path | None = None, combinations_file: Path | None = None) -> None:
        atc_file = Path(atc_file) if atc_file else default_atc_file()
        if combinations_file is None and atc_file == default_atc_file():
            combinations_file = default_combinations_file()
        if not atc_file.is_file():
            raise DataFileError(f"ATC file not found: {atc_file}")
        self.source = str(atc_file)
        self.version = f"ATC {atc_file.stem}"
        self.cache_key = f"atc-1-{file_digest(atc_file)}"
        self.attribution = ATTRIBUTION
        self.graph = nx.DiGraph()
        self.graph.add_node(ROOT, n=Node(ROOT, "ATC", "root", False, None, 0))
        self._load(_read_rows(atc_file, REQUIRED_COLUMNS), atc_file)
        if combinations_file is not None:
            self._load_combinations(_read_rows(combinations_file, ("atc_code", "brand_name", "ingredients")))

    def normalize(self, code: str) -> str:
        return re.sub(r"[\s.]+", "", str(code)).upper()

    def _load(self, rows: list[dict[str, str]], path: Path) -> None:
        by_code: dict[str, Node] = {}
        for i, row in enumerate(rows, start=2):
            code = self.normalize(row.get("atc_code", ""))
            level = LEVEL_BY_LENGTH.get(len(code))
            if level is None:
                raise DataFileError(f"{path}:{i}: {code!r} is not an ATC code of 1, 3, 4, 5 or 7 characters")
            node = by_code.get(code)
            if node is None:
                parent = (
                    ROOT if level == 1 else next(code[:n] for n, lvl in LEVEL_BY_LENGTH.items() if lvl == level - 1)
                )
                node = Node(
                    code,
                    _clean(row.get("atc_name")),
                    LEVEL_KIND[level],
                    level == 5,
                    parent,
                    level,
                    {},
                    {"level": level},
                )
                by_code[code] = node
            ddd = _clean(row.get("ddd"))
            if ddd:
                route = _clean(row.get("adm_r"))
                ddds = node.attrs.setdefault("ddd", [])
                assert isinstance(ddds, list)
                ddds.append({"ddd": ddd, "unit": _clean(row.get("uom")), "route": route})
            note = _clean(row.get("note"))
            if note:
                node.notes["notes"] = (*node.notes.get("notes", ()), note)
        for code in sorted(by_code, key=len):
            node = by_code[code]
            if node.parent not in self.graph:
                raise DataFileError(f"{path}: {code} has no parent {node.parent} in the file")
            self.graph.add_node(code, n=node)
            self.graph.add_edge(node.parent, code)

    def _load_combinations(self, rows: list[dict[str, str]]) -> None:
        for row in rows:
            code = self.normalize(row["atc_code"])
            if code not in self.graph:
                logger.warning("combination product %s: unknown ATC code %s", row.get("brand_name"), code)
                continue
            node: Node = self.graph._node[code]["n"]
            text = f"{row['brand_name']} ({_clean(row.get('dosage_form'))}): {row['ingredients']}"
            node.notes["combination_products"] = (*node.notes.get("combination_products", ()), text)

    def _lexical_docs(self) -> Iterable[tuple[str, str, str]]:
        for n in self.iter_nodes():
            brands = " ".join(n.notes.get("combination_products", ()))
            yield n.code, n.label, f"{n.label} {brands}"

    @classmethod
    def load(cls) -> "ATC":
        return load_atc()

    def option_label(self, node: Node) -> str:
        return f"{node.label} ({node.code})"

    def index_kind(self, node: Node) -> str:
        return f"level{node.depth}"

    def index_docs(self) -> Iterator[IndexDoc]:
        """ATC names at every level, combination-product brands, and US brand names of each substance."""
        by_name: dict[str, list[str]] = {}
        for n in self.iter_nodes():
            meta = (self.index_kind(n), n.code[0], n.billable)
            yield IndexDoc(n.code, n.label, "label", *meta)
            for product in n.notes.get("combination_products", ()):
                yield IndexDoc(n.code, product, "combination", *meta)
            if n.depth == 5:
                by_name.setdefault(n.label.lower(), []).append(n.code)
        for generic, brands in _rabbits_brands():
            for code in by_name.get(generic, ()):
                for brand in brands:
                    yield IndexDoc(code, brand, "brand", "level5", code[0], True)

    def index_sources(self) -> list[Path]:
        return [RABBITS_FILE]

    def term_hits(self, text: str) -> list[SearchHit]:
        """Substance names matched whole, salts and hydrates set aside ("FLUTICASONE PROPIONATE" ->
        fluticasone); several ingredients -> their combination codes first."""
        names = self.__dict__.get("_substances")
        if names is None:
            names = {}
            for n in self.iter_nodes():
                if n.depth == 5:
                    names.setdefault(_substance(n.label), []).append(n.code)
            self.__dict__["_substances"] = names
        parts = [_substance(p) for p in re.split(r",|;|/|\||\+|\band\b|\bwith\b", text.lower()) if p.strip()]
        parts = [_US_NAMES.get(p, p) for p in parts if p]
        ordered: list[str] = []
        if len(parts) > 1:  # a combination: labels that name every ingredient, then "<ingredient>, combinations"
            ordered += [c for label, codes in names.items() if all(p in label for p in parts) for c in codes]
            ordered += [
                c
                for p in parts
                for label, codes in names.items()
                if label.startswith(p) and "combination" in label
                for c in codes
            ]
        for p in parts:
            ordered += names.get(p, [])
        hits: dict[str, SearchHit] = {}
        for i, c in enumerate(ordered):
            hits.setdefault(c, SearchHit(c, 1.0 / (i + 1), "", ["index"]))  # a code's first place counts
        return list(hits.values())


def _rabbits_brands() -> Iterator[tuple[str, list[str]]]:
    return rabbits_brands(RABBITS_FILE)


_US_NAMES = {  # US adopted names -> the INNs that ATC uses
    "acetaminophen": "paracetamol",
    "albuterol": "salbutamol",
    "glyburide": "glibenclamide",
    "meperidine": "pethidine",
    "levalbuterol": "levosalbutamol",
    "cyclosporine": "ciclosporin",
    "rifampin": "rifampicin",
    "furosemide": "furosemide",
    "hydrocodone": "hydrocodone",
    "acetylsalicylic acid": "acetylsalicylic acid",
    "aspirin": "acetylsalicylic acid",
}


def _substance(name: str) -> str:
    """A substance name without salt, hydrate and strength words, lower case."""
    words = [w for w in re.findall(r"[a-z][a-z\-]*", name.lower()) if w not in SALTS]
    return " ".join(words)


_LOADED: dict[str, ATC] = {}


def load_atc(path: str | Path | None = None, combinations: str | Path | None = None) -> ATC:
    """Load ATC from the bundled file, `MEDCODER_ATC_FILE`, or a user's own WHOCC file."""
    atc_path = Path(path) if path else default_atc_file()
    key = f"{atc_path}|{combinations}"
    if key not in _LOADED:
        _LOADED[key] = ATC(atc_path, Path(combinations) if combinations else None)
    return _LOADED[key]
