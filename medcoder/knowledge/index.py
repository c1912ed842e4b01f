"""The ICD-10-CM Alphabetic Index, Table of Drugs and Chemicals and Neoplasm Table as term trees.

Coders start from the index, not the tabular list: a main term, subterms by level, see /
see also cross-references and nonessential modifiers, each entry pointing at a code. Every
entry links to its tabular node where that code exists.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from medcoder.errors import DataFileError
from medcoder.knowledge.icdcodes import normalize_icd
from medcoder.knowledge.lexical import LexicalIndex, tokenize
from medcoder.knowledge.ontology import Ontology
from medcoder.paths import cached_pickle, file_digest

logger = logging.getLogger(__name__)

INDEX_FILE = "icd10cm_index_2025.csv.gz"
DRUG_FILE = "icd10cm_drug_2025.xml.gz"
NEOPLASM_FILE = "icd10cm_neoplasm_2025.xml.gz"
PROVENANCE = "CDC/NCHS ICD-10-CM FY2025 release files (US public domain); see knowledge/data/PROVENANCE.md"


@dataclass(slots=True)
class IndexEntry:
    """One term of an index: its place in the tree, cross-references and code(s)."""

    id: int
    term: str
    level: int
    parent: int | None
    nonessential: str = ""
    see: str = ""
    see_also: str = ""
    code: str = ""
    cells: dict[str, str] = field(default_factory=dict)  # table columns -> code (drug/neoplasm tables)
    linked: str | None = None  # the tabular node the code resolves to
    children: list[int] = field(default_factory=list)

    def to_dict(self, trail: list[str] | None = None) -> dict[str, object]:
        d: dict[str, object] = {"id": self.id, "term": self.term, "level": self.level}
        for key in ("nonessential", "see", "see_also", "code"):
            if getattr(self, key):
                d[key] = getattr(self, key)
        if self.cells:
            d["cells"] = self.cells
        if self.linked:
            d["linked"] = self.linked
        if trail is not None:
            d["path"] = trail
        return d


def data_path(name: str) -> Path:
    return Path(str(resources.files("medcoder.knowledge") / "data" / name))


def _open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise DataFileError(f"index file not found: {path}")
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else open(path, encoding="utf-8")


@lru_cache(maxsize=1 << 18)
def _words_of(text: str) -> frozenset[str]:
    """A term's or query part's words, computed once: a note's look-ups compare the same entries many times."""
    return frozenset(tokenize(text, keep_stopwords=True))


@lru_cache(maxsize=1 << 17)
def _heads_of(term: str) -> list[str]:
    """A main term's comma parts ("Fracture, traumatic" -> Fracture, traumatic), split once."""
    return [h.strip() for h in term.split(",")]


def _matches(part: str, term: str) -> float:
    """How well a query part names an index term (0: not at all, 1: exactly)."""
    q = _words_of(part)
    t = _words_of(term)
    if not q or not t:
        return 0.0
    if q == t:
        return 1.0
    overlap = len(q & t)
    return overlap / max(len(q), len(t)) if overlap == len(q) else 0.5 * overlap / len(q | t)


def tabular_code(raw: str, ontology: Ontology) -> str:
    """The tabular code an index entry or table cell names ("S52.53-" -> S52.53), "" when it names none here."""
    canon = normalize_icd(raw) if raw and raw not in ("-", "--") else ""
    return canon if canon and canon in ontology.graph else ""


class TermIndex:
    """A tree of index entries with walking, lookup by comma-separated path, and search."""

    name = "index"

    def __init__(self, entries: list[IndexEntry], source: str) -> None:
        self.entries = entries
        self.source = source
        self.main_terms = [e.id for e in entries if e.level == 0]
        self._lexical: LexicalIndex | None = None
        self._heads: dict[frozenset[str], list[int]] | None = None
        self._main_by_token: dict[str, list[int]] | None = None
        self._follow: dict[str, str | None] = {}

    def __getstate__(self) -> dict[str, object]:
        return {
            **{k: getattr(self, k) for k in ("entries", "source", "main_terms")},
            "_lexical": None,
            "_heads": None,
            "_main_by_token": None,
            "_follow": {},
        }

    def __setstate__(self, state: dict[str, object]) -> None:
        for k, v in state.items():
            setattr(self, k, v)

    def link(self, ontology: Ontology) -> None:
        """Point each entry at the tabular node its code names, where one exists."""
        for e in self.entries:
            for code in [e.code, *e.cells.values()]:
                canon = tabular_code(code, ontology)
                if canon:
                    e.linked = canon
                    break

    def entry(self, entry_id: int) -> IndexEntry:
        try:
            return self.entries[entry_id]
        except IndexError as exc:
            raise DataFileError(f"no {self.name} entry {entry_id}") from exc

    def children(self, entry_id: int) -> list[IndexEntry]:
        return [self.entries[c] for c in self.entry(entry_id).children]

    def trail(self, entry_id: int) -> list[str]:
        out, cur = [], self.entries[entry_id]
        while True:
            out.append(cur.term)
            if cur.parent is None:
                return out[::-1]
            cur = self.entries[cur.parent]

    def lookup(self, query: str) -> list[IndexEntry]:
        """Walk a comma-separated path ("diabetes, type 2"): the main term, then subterms below it.

        Returns the entries walked, deepest last; subterms may sit below intermediate
        levels (such as "with"), as coders read them. A first part of several words
        ("heart failure") is also tried with each word as the main term ("failure, heart").
        """
        parts = [p.strip() for p in query.split(",") if p.strip()]
        if not parts:
            return []
        tries = [parts]
        words = parts[0].split()
        if len(words) > 1:
            tries += [[w, " ".join(words[:i] + words[i + 1 :]), *parts[1:]] for i, w in enumerate(words)]
        walks = [(self._walk(t), len(t)) for t in tries]
        best = max(walks, key=lambda w: (w[0][1] == w[1], w[0][1], bool(w[0][0] and w[0][0][-1].code)))
        return best[0][0]

    def _walk(self, parts: list[str]) -> tuple[list[IndexEntry], int]:
        """The entries walked for `parts` and how many parts they matched."""
        best = max(
            self._main_candidates(parts[0]),
            default=None,
            key=lambda i: (self._main_score(parts[0], i), len(self.entries[i].children), -i),
        )
        if best is None or self._main_score(parts[0], best) < 0.5:
            return [], 0
        walked = [self.entries[best]]
        heads = {h.strip().lower() for h in walked[0].term.split(",")}
        rest, matched = parts[1:], 1
        # a main term such as "Fracture, traumatic" may swallow the next query part
        while rest and rest[0].lower() in heads and not self._descend(walked[-1], rest[0]):
            rest, matched = rest[1:], matched + 1
        for part in rest:
            nxt = self._descend(walked[-1], part)
            if nxt is None:
                break
            walked.extend(nxt)
            matched += 1
        return walked, matched

    def _main_candidates(self, part: str) -> list[int]:
        """Main terms sharing a word with `part` (the others score 0), in document order."""
        if getattr(self, "_main_by_token", None) is None:
            by_token: dict[str, list[int]] = {}
            for i in self.main_terms:
                for tok in set(tokenize(self.entries[i].term, keep_stopwords=True)):
                    by_token.setdefault(tok, []).append(i)
            self._main_by_token = by_token
        assert self._main_by_token is not None
        found = {i for tok in set(tokenize(part, keep_stopwords=True)) for i in self._main_by_token.get(tok, ())}
        return sorted(found)

    def _main_score(self, part: str, entry_id: int) -> float:
        term = self.entries[entry_id].term
        first, *others = _heads_of(term)
        return max(
            _matches(part, term),
            _matches(part, first) - 0.01,
            max((_matches(part, h) for h in others), default=0.0) - 0.1,
        )

    def _descend(self, start: IndexEntry, part: str) -> list[IndexEntry] | None:
        """The entries from below `start` down to the shallowest subterm that best matches `part`."""
        best: tuple[float, int, list[IndexEntry]] | None = None
        stack = [(c, [self.entries[c]]) for c in reversed(start.children)]
        while stack:
            eid, chain = stack.pop()
            score = _matches(part, self.entries[eid].term)
            if score >= 0.5 and (best is None or (score, -len(chain)) > (best[0], -best[1])):
                best = (score, len(chain), chain)
            if len(chain) < 3:
                stack.extend((c, chain + [self.entries[c]]) for c in reversed(self.entries[eid].children))
        return best[2] if best else None

    def follow(self, entry: IndexEntry) -> str | None:
        """The tabular code an entry leads to: its own, else where its "see" (or "see also")
        reference leads, one hop, as a coder would turn the page ("Blood, pressure, high" -> I10)."""
        if entry.linked:
            return entry.linked
        target = (entry.see or entry.see_also).split(";")[0].strip()
        if not target:
            return None
        memo = self.__dict__.setdefault("_follow", {})
        if target not in memo:  # only a walk that reaches the reference's last part counts, not its main term alone
            walked = self.lookup(target)
            last = target.split(",")[-1]
            memo[target] = walked[-1].linked if walked and _matches(last, walked[-1].term) >= 0.5 else None
        return memo[target]

    @property
    def lexical(self) -> LexicalIndex:
        if self._lexical is None:
            docs = ((str(e.id), e.term, " ".join(self.trail(e.id)) + " " + e.nonessential) for e in self.entries)
            self._lexical = LexicalIndex(docs)
        return self._lexical

    def search(self, text: str, k: int = 10) -> list[IndexEntry]:
        """Entries whose path shares words with `text`; an entry named exactly so comes first."""
        main = self._main_heads().get(frozenset(tokenize(text, keep_stopwords=True)), [])
        hits = [self.entries[i] for i in main]
        hits += [e for h in self.lexical.search(text, k) if (e := self.entries[int(h.code)]).id not in main]
        return hits[:k]

    def _main_heads(self) -> dict[frozenset[str], list[int]]:
        """Main terms by the words of their head ("Hypertension" of "Hypertension, hypertensive")."""
        heads: dict[frozenset[str], list[int]] | None = getattr(self, "_heads", None)
        if heads is None:
            heads = {}
            for i in self.main_terms:
                heads.setdefault(frozenset(tokenize(self.entries[i].term.split(",")[0], True)), []).append(i)
            self._heads = heads
        return heads


def _csv_entries(path: Path) -> list[IndexEntry]:
    entries: list[IndexEntry] = []
    stack: list[int] = []
    with _open_text(path) as fh:
        for row in csv.DictReader(fh):
            level = int(row["Level"])
            del stack[level:]
            parent = stack[-1] if stack else None
            e = IndexEntry(
                len(entries),
                row["Term"].strip(),
                level,
                parent,
                (row.get("NonEssModif") or "").strip(),
                (row.get("See") or "").strip(),
                (row.get("SeeAlso") or "").strip(),
                (row.get("Code") or "").strip(),
            )
            entries.append(e)
            if parent is not None:
                entries[parent].children.append(e.id)
            stack.append(e.id)
    return entries


def _text_of(elem: ET.Element | None) -> str:
    return re.sub(r"\s+", " ", "".join(elem.itertext())).strip() if elem is not None else ""


def _xml_entries(path: Path) -> list[IndexEntry]:
    with _open_text(path) as fh:
        root = ET.parse(fh).getroot()
    heads = {h.get("col"): (h.text or "").strip() for h in root.iter("head")}
    entries: list[IndexEntry] = []

    def visit(elem: ET.Element, level: int, parent: int | None) -> None:
        title = elem.find("title")
        nemod = title.find("nemod") if title is not None else None
        term = ((title.text or "") if title is not None else "").strip().rstrip(",")
        cells = {heads.get(c.get("col"), c.get("col") or ""): (c.text or "").strip() for c in elem.findall("cell")}
        e = IndexEntry(
            len(entries),
            term,
            level,
            parent,
            _text_of(nemod),
            _text_of(elem.find("see")),
            _text_of(elem.find("seeAlso")),
            _text_of(elem.find("code")),
            {k: v for k, v in cells.items() if v and v not in ("-", "--")},
        )
        entries.append(e)
        if parent is not None:
            entries[parent].children.append(e.id)
        for sub in elem.findall("term"):
            visit(sub, level + 1, e.id)

    for letter in root.findall("letter"):
        for main in letter.findall("mainTerm"):
            visit(main, 0, None)
    return entries


class AlphabeticIndex(TermIndex):
    name = "alphabetic index"


class DrugTable(TermIndex):
    name = "table of drugs and chemicals"


class NeoplasmTable(TermIndex):
    name = "neoplasm table"


_LOADED: dict[tuple[str, str, str], TermIndex] = {}


def _load(cls: type[TermIndex], path: Path, parse: Any, ontology: Ontology | None) -> TermIndex:
    memo = (cls.__name__, str(path.resolve()), ontology.cache_key if ontology else "")
    if memo in _LOADED:  # once per process: agents look the index up for every mention
        return _LOADED[memo]
    key = f"{cls.__name__}-2-{file_digest(path)}-{ontology.cache_key if ontology else ''}"

    def build() -> TermIndex:
        idx = cls(parse(path), f"{path.name}: {PROVENANCE}")
        if ontology is not None:
            idx.link(ontology)
        return idx

    _LOADED[memo] = cached_pickle(cls.__name__.lower(), key, build)
    return _LOADED[memo]


def load_alphabetic_index(ontology: Ontology | None = None, path: Path | None = None) -> AlphabeticIndex:
    return _load(AlphabeticIndex, path or data_path(INDEX_FILE), _csv_entries, ontology)  # type: ignore[return-value]


def load_drug_table(ontology: Ontology | None = None, path: Path | None = None) -> DrugTable:
    return _load(DrugTable, path or data_path(DRUG_FILE), _xml_entries, ontology)  # type: ignore[return-value]


def load_neoplasm_table(ontology: Ontology | None = None, path: Path | None = None) -> NeoplasmTable:
    return _load(NeoplasmTable, path or data_path(NEOPLASM_FILE), _xml_entries, ontology)  # type: ignore[return-value]


def entries_with_trails(index: TermIndex, entries: Iterable[IndexEntry]) -> list[dict[str, object]]:
    return [e.to_dict(index.trail(e.id)) for e in entries]
