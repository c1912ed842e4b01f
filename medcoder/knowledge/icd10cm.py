"""ICD-10-CM 2026 as a tree, built from the CDC tabular XML that `simple-icd-10-cm` ships.

Every node carries its label, kind, billable flag and notes; the 7th-character codes are
generated from their `sevenChrDef` the way the CDC code list spells them. Blocks whose id
equals their only category (B10, C50, ...) get the range form `B10-B10`, so the graph is
a tree with no self-loops.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import time
import xml.etree.ElementTree as ET
from functools import cached_property
from pathlib import Path
from typing import Iterator

import networkx as nx

from medcoder.errors import DataFileError
from medcoder.knowledge.icdcodes import dotted, normalize_icd, raw
from medcoder.knowledge.index import INDEX_FILE, AlphabeticIndex, data_path, load_alphabetic_index
from medcoder.knowledge.lexical import SearchHit
from medcoder.knowledge.ontology import (
    EXCLUDES1,
    INDEX_TABLES,
    NOTES,
    ROOT,
    SEVENTH_CHARACTER,
    TERM_INDEX,
    CodeSystem,
    IndexDoc,
    Node,
)
from medcoder.paths import cached_pickle, file_digest

logger = logging.getLogger(__name__)

BUILD_VERSION = "icd10cm-graph-3"

# XML note elements -> the key under which a node carries them
NOTE_TAGS = {
    "inclusionTerm": "inclusion_terms",
    "includes": "includes",
    "excludes1": "excludes1",
    "excludes2": "excludes2",
    "codeFirst": "code_first",
    "useAdditionalCode": "use_additional_code",
    "codeAlso": "code_also",
    "notes": "notes",
    "sevenChrNote": "seventh_character_note",
}
# notes that bind every code below the node that carries them
INHERITED_NOTES = ("excludes1", "excludes2", "code_first", "use_additional_code", "code_also", "includes")

_CODE_REF = re.compile(r"\b([A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{0,4})?)(?:\s*-\s*([A-Z]\d[0-9A-Z](?:\.[0-9A-Z]{0,4})?)|-)?")


@functools.lru_cache(maxsize=1)
def tabular_xml_path() -> Path:
    spec = importlib.util.find_spec("simple_icd_10_cm")
    if spec is None or not spec.submodule_search_locations:
        raise DataFileError("the package simple-icd-10-cm is not installed; it ships the ICD-10-CM tabular XML")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    found = sorted(data.glob("icd10c*-tabular-*.xml"))
    if not found:
        raise DataFileError(f"no ICD-10-CM tabular XML in {data}")
    return found[-1]


def parse_code_refs(text: str) -> list[tuple[str, str]]:
    """Code references in a note: `(S22.5-)` -> [("S225","S225")], `(P35-P39)` -> [("P35","P39")]."""
    out = []
    for m in _CODE_REF.finditer(text):
        start = raw(m.group(1)).rstrip(".")
        end = raw(m.group(2)).rstrip(".") if m.group(2) else start
        out.append((start, end))
    return out


def ref_covers(ref: tuple[str, str], raw_code: str) -> bool:
    start, end = ref
    if start == end:
        return raw_code.startswith(start)
    n = min(len(start), len(end))
    return start[:n] <= raw_code[:n] <= end[:n]


def _notes_of(elem: ET.Element) -> dict[str, tuple[str, ...]]:
    notes: dict[str, tuple[str, ...]] = {}
    for tag, key in NOTE_TAGS.items():
        texts = [(n.text or "").strip() for child in elem.findall(tag) for n in child.findall("note")]
        if texts:
            notes[key] = tuple(t for t in texts if t)
    return notes


def _seven_chr_def(elem: ET.Element) -> dict[str, str] | None:
    d = elem.find("sevenChrDef")
    if d is None:
        return None
    return {e.get("char", ""): (e.text or "").strip() for e in d.findall("extension")}


class _Builder:
    """Walks the XML once and fills the graph."""

    def __init__(self, valid_codes: set[str] | None) -> None:
        self.valid = valid_codes  # the CDC list drops some 7th characters (S06.xx7D: death)
        self.g = nx.DiGraph()
        self.g.add_node(ROOT, n=Node(ROOT, "ICD-10-CM", "root", False, None, 0))

    def add(self, node: Node) -> None:
        if node.code in self.g:
            raise DataFileError(f"duplicate ICD-10-CM node {node.code}")
        self.g.add_node(node.code, n=node)
        self.g.add_edge(node.parent, node.code)

    def build(self, xml_path: Path) -> nx.DiGraph:
        root = ET.parse(xml_path).getroot()
        for chapter in root.findall("chapter"):
            num = int((chapter.findtext("name") or "0").strip())
            cid = f"CH{num}"
            self.add(
                Node(
                    cid,
                    (chapter.findtext("desc") or "").strip(),
                    "chapter",
                    False,
                    ROOT,
                    1,
                    _notes_of(chapter),
                    {"chapter": num},
                )
            )
            for section in chapter.findall("section"):
                sid = section.get("id", "")
                bid = sid if "-" in sid else f"{sid}-{sid}"
                self.add(
                    Node(bid, (section.findtext("desc") or "").strip(), "block", False, cid, 2, _notes_of(section))
                )
                for diag in section.findall("diag"):
                    self._diag(diag, bid, 3, None)
        return self.g

    def _diag(self, elem: ET.Element, parent: str, depth: int, seventh: dict[str, str] | None) -> None:
        code = (elem.findtext("name") or "").strip()
        label = (elem.findtext("desc") or "").strip()
        notes = _notes_of(elem)
        own = _seven_chr_def(elem)
        if own is not None:
            notes["seventh_characters"] = tuple(f"{c}: {t}" for c, t in own.items())
            seventh = own
        subs = elem.findall("diag")
        exts: dict[str, str] = {}
        if not subs and seventh is not None:
            base = raw(code).ljust(6, "X")
            exts = {c: t for c, t in seventh.items() if self.valid is None or base + c in self.valid}
        kind = "category" if len(raw(code)) == 3 else ("subcategory" if subs or exts else "code")
        attrs: dict[str, object] = {}
        if exts:
            attrs["needs_seventh"] = True
            if len(raw(code)) < 6:
                attrs["placeholder_x"] = True
                example = dotted(raw(code).ljust(6, "X") + next(iter(exts)))
                notes["placeholder_x"] = (
                    f"{code} has fewer than 6 characters: fill with placeholder X up to the 6th "
                    f"character before the 7th (e.g. {example})",
                )
        self.add(Node(code, label, kind, not subs and not exts, parent, depth, notes, attrs))
        for sub in subs:
            self._diag(sub, code, depth + 1, seventh)
        for char, text in exts.items():
            ext = dotted(raw(code).ljust(6, "X") + char)
            self.add(Node(ext, f"{label}, {text}", "extension", True, code, depth + 1, {}, {"seventh": char}))


class ICD10CM(CodeSystem):
    """ICD-10-CM tabular list with notes, Excludes1 references, 7th characters and the Alphabetic Index."""

    system = "icd10cm"
    title = "ICD-10-CM"
    entity_kind = "diagnosis"
    prompt_name = "ICD-10-CM diagnosis"
    fhir_uri = "http://hl7.org/fhir/sid/icd-10-cm"
    fhir_resource = "Condition"
    capabilities = frozenset({NOTES, EXCLUDES1, SEVENTH_CHARACTER, TERM_INDEX, INDEX_TABLES})
    builtin_ranker = "codiesp-icd10cm"
    default_workflow = "icd10cm"
    tree_workflow = "icd10cm-tree"  # the model walking the chapters (the `tree` strategy of `medcoder eval`)
    code_pattern = r"[A-Z]\d[0-9A-Z](\.?[0-9A-Z]{1,4})?\.?"

    def __init__(self, graph: nx.DiGraph, version: str, cache_key: str) -> None:
        self.graph = graph
        self.version = version
        self.cache_key = cache_key

    @classmethod
    def load(cls) -> "ICD10CM":
        return load_icd10cm()

    def normalize(self, code: str) -> str:
        return normalize_icd(code)

    # -- finding and naming ------------------------------------------------------------
    def find_top_level(self, text: str) -> str | None:
        """A chapter as a user writes it: `CH4`, `4`, or its range `E00-E89`."""
        raw_text = text.strip().upper()
        for node in self.roots():
            span = re.search(r"\(([A-Z0-9]{3}-[A-Z0-9]{3})\)\s*$", node.label)
            if node.code.upper() in (raw_text, f"CH{raw_text}") or (span and raw_text == span.group(1)):
                return node.code
        return None

    def nearest(self, code: str) -> str | None:
        r = raw(self.normalize(code))
        for n in range(len(r) - 1, 2, -1):
            cand = self.normalize(r[:n])
            if cand in self:
                return cand
        return None

    def suggest(self, code: str) -> str | None:
        """The code with its missing placeholder X (`S02.5B` -> `S02.XXXB`-style), when that exists."""
        r = raw(self.normalize(code))
        if 4 <= len(r) <= 6:
            cand = dotted(r[:-1].ljust(6, "X") + r[-1])
            if cand in self:
                return cand
        return None

    def reminders(self, code: str) -> list[str]:
        notes = self.notes(code)
        return [
            f"{key.replace('_', ' ')}: {n['text']}"
            for key in ("code_first", "use_additional_code", "code_also")
            for n in notes.get(key, [])
        ]

    # -- retrieval ---------------------------------------------------------------------
    @cached_property
    def _alphabetic_index(self) -> "AlphabeticIndex":

        return load_alphabetic_index(self)

    @property
    def alphabetic_index(self) -> "AlphabeticIndex":
        return self._alphabetic_index

    def index_docs(self) -> Iterator[IndexDoc]:
        """Labels, inclusion terms and Alphabetic Index paths of every node but 7th-character codes."""
        for n in self.iter_nodes():
            if n.kind == "extension":  # repeats its parent's words plus the encounter
                continue
            meta = (n.kind, self.top_level(n.code), n.billable)
            yield IndexDoc(n.code, n.label, "label", *meta)
            for term in n.notes.get("inclusion_terms", ()):
                yield IndexDoc(n.code, term, "inclusion", *meta)
        index = self.alphabetic_index
        for e in index.entries:
            code = index.follow(e)  # an entry's own code, else where its "see" reference leads
            if code and code in self:
                node = self.node(code)
                text = " ".join(index.trail(e.id))
                if e.nonessential:
                    text += f" ({e.nonessential})"
                source = "index" if e.linked else "index-see"
                yield IndexDoc(node.code, text, source, node.kind, self.top_level(node.code), node.billable)

    def index_sources(self) -> list[Path]:
        return [data_path(INDEX_FILE)]

    def term_hits(self, text: str) -> list[SearchHit]:
        """The Alphabetic Index: the deepest entry of the walk first, then entries found by words."""
        index = self.alphabetic_index
        walked = index.lookup(text)
        entries = [e for e in reversed(walked) if index.follow(e)][:1] + index.search(text, k=15)
        hits: list[SearchHit] = []
        seen: set[str] = set()
        for e in entries:
            code = index.follow(e)
            if code and code not in seen:
                seen.add(code)
                hits.append(SearchHit(code, 1.0 / (len(hits) + 1), "", ["index"]))
        return hits

    def _lexical_docs(self) -> Iterator[tuple[str, str, str]]:
        for n in self.iter_nodes():
            if n.kind == "extension":  # 7th-character codes repeat their parent's words
                continue
            extra = " ".join(n.notes.get("inclusion_terms", ()))
            yield n.code, n.label, f"{n.label} {extra}"

    # -- notes ---------------------------------------------------------------------
    def notes(self, code: str, inherited: bool = True) -> dict[str, list[dict[str, str]]]:
        """Every note that applies to `code`, each with the node that carries it."""
        out: dict[str, list[dict[str, str]]] = {}
        target = self.resolve(code)
        for n in self.path(target)[::-1]:
            for kind, texts in n.notes.items():
                if n.code != target and (not inherited or kind not in INHERITED_NOTES):
                    continue
                out.setdefault(kind, []).extend({"text": t, "from": n.code} for t in texts)
        return out

    def seventh_characters(self, code: str) -> dict[str, str]:
        """The 7th characters that apply to a code that needs one ({} when none)."""
        for n in reversed(self.path(code)):
            if "seventh_characters" in n.notes:
                return dict(s.split(": ", 1) for s in n.notes["seventh_characters"])
        return {}

    def excludes1_conflicts(self, codes: list[str]) -> list[dict[str, str]]:
        """Pairs in `codes` that an Excludes1 note says may not be coded together."""
        canon = [self.resolve(c) for c in codes]
        found: list[dict[str, str]] = []
        seen: set[tuple[str, str]] = set()
        for a in canon:
            for anc in self.path(a):
                for note in anc.notes.get("excludes1", ()):
                    for ref in parse_code_refs(note):
                        for b in canon:
                            if b == a or self.is_ancestor(a, b) or self.is_ancestor(b, a):
                                continue
                            if ref_covers(ref, raw(b)) and not ref_covers(ref, raw(a)):
                                pair = tuple(sorted((a, b)))
                                if pair not in seen:
                                    seen.add(pair)  # type: ignore[arg-type]
                                    found.append({"code": a, "excludes": b, "note": note, "from": anc.code})
        return found


def _build(xml_path: Path, version: str, key: str) -> ICD10CM:
    start = time.perf_counter()
    code_list = next(iter(sorted(xml_path.parent.glob("code-list-*.txt"))), None)
    valid = {line.strip() for line in code_list.open()} if code_list else None
    graph = _Builder(valid).build(xml_path)
    onto = ICD10CM(graph, version, key)
    logger.info("built ICD-10-CM graph: %d nodes in %.1fs", len(onto), time.perf_counter() - start)
    return onto


_LOADED: dict[str, ICD10CM] = {}


def load_icd10cm(xml_path: Path | None = None, use_cache: bool = True) -> ICD10CM:
    """Load ICD-10-CM, from the on-disk cache when the XML and builder are unchanged."""
    xml_path = Path(xml_path) if xml_path else tabular_xml_path()
    if not xml_path.is_file():
        raise DataFileError(f"ICD-10-CM tabular XML not found: {xml_path}")
    st = xml_path.stat()
    fast_key = f"{xml_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{use_cache}"
    if fast_key in _LOADED:  # already loaded in this process: no hashing, no unpickling
        return _LOADED[fast_key]
    key = f"{BUILD_VERSION}-{file_digest(xml_path)}"
    m = re.search(r"(\w+-\d+-\d{4})", xml_path.stem)
    version = f"ICD-10-CM {m.group(1) if m else xml_path.stem}"
    build = lambda: _build(xml_path, version, key)  # noqa: E731
    onto = cached_pickle("icd10cm", key, build) if use_cache else build()
    _LOADED[fast_key] = onto
    return onto
