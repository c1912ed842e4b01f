"""A problem phrase read through the Alphabetic Index the way a coder reads it, and the billable code it leads to.

A coder looks a diagnosis up by its main term (the condition: "fracture", "pain", "adenoma"), then goes down
the subterms the phrase names ("chest", "non-cardiac"), follows a "see Neoplasm, benign, by site" to the
Neoplasm Table's site row, and only then turns to the Tabular List for the laterality and 7th character the
note states. `read_phrase` is that walk over free text; `billable_for` is the last step.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from medcoder.knowledge.index import IndexEntry, TermIndex, load_neoplasm_table, tabular_code
from medcoder.knowledge.ontology import CodeSystem
from medcoder.visit import guidelines as gl
from medcoder.words import tokenize

# words the Tabular List reads (laterality, the encounter), not the Index: a phrase is complete without them
_TABULAR_WORDS = frozenset(tokenize("right left bilateral both side sided initial subsequent encounter", True))
_SITE_WORDS = frozenset(w for site in gl.SITES for w in tokenize(site))
# how bad or how long: a phrase is complete without them where the Index's entry does not distinguish them
_ACUITY = frozenset(tokenize("acute chronic subacute mild moderate severe recent new", True))
_NEOPLASM_COLUMNS = (  # the words of a "see Neoplasm, ..., by site" reference -> the table's column
    ("secondary", "Malignant Secondary"),
    ("in situ", "Ca in situ"),
    ("malignant", "Malignant Primary"),
    ("benign", "Benign"),
    ("uncertain", "Uncertain Behavior"),
    ("unspecified", "Unspecified Behavior"),
)


@dataclass(frozen=True, slots=True)
class IndexReading:
    """Where a phrase leads in the Index: the code, the trail walked, and which of the phrase's words it used."""

    code: str
    trail: tuple[str, ...]
    covered: frozenset[str]
    words: frozenset[str]

    @property
    def complete(self) -> bool:
        """Every word of the phrase is a term of the trail, but laterality and encounter words (the Tabular
        List reads those) and body sites an entry implies ("Right wrist Colles fracture")."""
        return not {w for w in self.words - self.covered if w not in _SITE_WORDS and w not in _ACUITY}

    def path(self) -> str:
        return " › ".join(self.trail)


def _words(text: str) -> frozenset[str]:
    return frozenset(tokenize(text)) - _TABULAR_WORDS


def _term_words(term: str) -> frozenset[str]:
    return frozenset(tokenize(re.sub(r"\([^)]*\)", " ", term)))


def _named(term: str, left: frozenset[str]) -> frozenset[str]:
    """The words of a subterm the phrase names: all of them, or all of one alternative of a subterm written as
    alternatives ("atrial or auricular" is named by "atrial fibrillation"); empty when the phrase does not."""
    whole = _term_words(term)
    if whole and whole <= left:
        return whole
    for alternative in re.split(r"\s+or\s+", term) if " or " in term else ():
        w = _term_words(alternative)
        if w and w <= left:
            return w
    return frozenset()


def _heads(term: str) -> list[frozenset[str]]:
    """A main term's heads: its first part, and later parts that are forms of the same word ("Hemianopia,
    hemianopsia"), not its modifiers ("Erection, painful")."""
    first, *rest = [h.strip() for h in term.split(",")]
    return [_term_words(first)] + [_term_words(h) for h in rest if _synonym(first, h)]


def _synonym(first: str, part: str) -> bool:
    """Whether a later part of a main term is another form of its first word ("gout, gouty")."""
    return len(os.path.commonprefix([first.lower(), part.lower()])) >= min(4, len(first))


def _modifiers_missing(term: str, words: frozenset[str]) -> int:
    """How many of a main term's modifier parts the phrase does not name ("Gout, chronic" for "gout": 1)."""
    first, *rest = [h.strip() for h in term.split(",")]
    return sum(1 for h in rest if not _synonym(first, h) and not _term_words(h) <= words)


def _used(chain: list[tuple[IndexEntry, frozenset[str]]]) -> int:
    return sum(len(w) for _, w in chain)


def _neoplasm_column(reference: str) -> str:
    low = reference.lower()
    if "neoplasm" not in low:
        return ""
    return next((col for word, col in _NEOPLASM_COLUMNS if word in low), "")


class _Walker:
    """One phrase's walks: from each main term the phrase names, down the subterms it names."""

    def __init__(self, onto: CodeSystem, index: TermIndex, neoplasms: TermIndex | None, words: frozenset[str]):
        self.onto, self.index, self.neoplasms, self.words = onto, index, neoplasms, words

    def children(self, entry: IndexEntry) -> list[IndexEntry]:
        """The subterms below an entry, looking through connectors ("with", "due to", "in") to theirs."""
        out = []
        for c in entry.children:
            child = self.index.entries[c]
            out.append(child)
            if not _term_words(child.term):
                out.extend(self.index.entries[g] for g in child.children)
        return out

    def descend(
        self, entry: IndexEntry, left: frozenset[str], depth: int = 0
    ) -> list[tuple[IndexEntry, frozenset[str]]]:
        """The chain of subterms below `entry` that uses most of the phrase's words left, each with the words it
        used; when no subterm is named, one level it does not name may be passed ("Pain › joint › knee")."""
        if depth >= 5:
            return []
        best: list[tuple[IndexEntry, frozenset[str]]] = []
        for child in self.children(entry):
            w = _named(child.term, left)
            if w:
                chain = [
                    (child, w | (frozenset(tokenize(child.nonessential)) & left)),
                    *self.descend(child, left - w, depth + 1),
                ]
                if _used(chain) > _used(best):
                    best = chain
        if best or depth:
            return best
        for child in self.children(entry):  # nothing named at this level: look one level further down
            for grand in self.children(child):
                w = _named(grand.term, left)
                if w:
                    chain = [(child, frozenset()), (grand, w), *self.descend(grand, left - w, depth + 2)]
                    if _used(chain) > _used(best):
                        best = chain
        return best

    def neoplasm(self, reference: str, left: frozenset[str]) -> tuple[str, tuple[str, ...], frozenset[str]] | None:
        """A "see Neoplasm, benign, by site" reference read on: the site row the phrase names, its column's code."""
        column = _neoplasm_column(reference)
        if not column or self.neoplasms is None or not self.neoplasms.main_terms:
            return None
        table = self.neoplasms
        top = table.entries[table.main_terms[0]]
        best: tuple[int, int, IndexEntry, frozenset[str]] | None = None
        for c in top.children:
            site = table.entries[c]
            for n, w in enumerate(frozenset(tokenize(h)) for h in site.term.split(",")):
                if w and w <= left and column in site.cells and (best is None or (len(w), -n) > best[:2]):
                    best = (len(w), -n, site, w)
        if best is None:  # no site the phrase names: the table's "unspecified site" row is not a reading
            return None
        entry, used = best[2], best[3]
        code = tabular_code(entry.cells.get(column, ""), self.onto)
        return (code, ("Neoplasm", column.lower(), entry.term), used) if code else None

    def walks(self) -> list[IndexReading]:
        out = []
        for i in self.index._main_candidates(" ".join(self.words)):
            main = self.index.entries[i]
            heads = [w for w in _heads(main.term) if w and w <= self.words]
            if not heads:
                continue
            used = max(heads, key=len)
            used |= frozenset(tokenize(main.nonessential)) & self.words
            chain = [(main, used), *self.descend(main, self.words - used)]
            for depth in range(len(chain), 0, -1):  # the deepest entry of the chain that leads to a code
                entry = chain[depth - 1][0]
                trail = tuple(e.term for e, _ in chain[:depth])
                covered = frozenset().union(*(w for _, w in chain[:depth]))  # the words of the trail read
                got = self.neoplasm(entry.see or entry.see_also, self.words - used)
                if got:
                    code, table_trail, site_words = got
                    out.append(IndexReading(code, trail + table_trail[1:], covered | site_words, self.words))
                    break
                code = self.index.follow(entry) or ""
                if code and code in self.onto:
                    out.append(IndexReading(code, trail, covered, self.words))
                    break
        return out


def read_phrase(onto: CodeSystem, text: str) -> IndexReading | None:
    """The Index's reading of a diagnosis phrase ("Right wrist Colles fracture" -> S52.53, "Pituitary adenoma"
    -> Adenoma › see Neoplasm, benign › pituitary -> D35.2): the walk that uses most of its words, then the
    longer main term, then the deeper trail; None when no main term of the Index is in the phrase."""
    index = getattr(onto, "alphabetic_index", None)
    words = _words(text)
    if index is None or not words:
        return None
    walks = _Walker(onto, index, _neoplasm_table(onto), words).walks()
    best = max(
        walks,
        key=lambda r: (len(r.covered), -_modifiers_missing(r.trail[0], words), len(r.trail[0]), len(r.trail)),
        default=None,
    )
    return _unlisted_site(onto, index, best) if best is not None and not best.complete else best


_NEC = re.compile(r"^(?:other )?specified(?: (?:site|part|type|region))? NEC$|^site NEC$", re.IGNORECASE)


def _unlisted_site(onto: CodeSystem, index: Any, reading: IndexReading) -> IndexReading:
    """Where the phrase names a part the Index does not list below the last term but one ("medial meniscus" under
    Sprain › knee, which lists ligaments), the coder takes that term's "specified site NEC" subterm (S83.8X-)."""
    missing = reading.words - reading.covered - _SITE_WORDS - _ACUITY
    if not missing or len(reading.trail) < 2:
        return reading
    try:
        parent = index.lookup(", ".join(reading.trail[:-1]))[-1]
    except Exception:  # noqa: BLE001 - a trail through a cross-reference is not a plain path: keep the reading
        return reading
    if parent.term.lower() != reading.trail[-2].lower():
        return reading
    kids = index.children(parent.id)
    nec = next((k for k in kids if _NEC.match(k.term.strip()) and k.code), None)
    listed = {w for k in kids for w in _term_words(f"{k.term} {k.nonessential}")}
    if nec is None or missing & listed:
        return reading
    code = tabular_code(nec.code, onto)
    if not code:
        return reading
    return IndexReading(code, (*reading.trail[:-1], nec.term), reading.words, reading.words)


def _neoplasm_table(onto: Any) -> TermIndex | None:
    try:
        return load_neoplasm_table(onto)
    except Exception:  # a code system without the table (a user's own) reads the Index alone
        return None


def billable_for(onto: CodeSystem, code: str, text: str) -> list[str]:
    """The billable code(s) under `code` that `text` supports: its laterality ("" or unspecified when it states
    none; right and left both where a bilateral condition has no bilateral code, Section I.B.13), its 7th
    character (A, D or S by `guidelines.encounter_character`), else the unspecified one."""
    if code not in onto:
        return [code]
    if onto.node(code).billable:
        return [gl.specify(onto, code, text)[0]]
    options = [n for n in onto.descendants(code) if n.billable]
    if not options:
        return [code]
    side = gl.side_of(text)
    if side == "bilateral" and not any(gl.label_side(n.label) == "bilateral" for n in options):
        both = [_one(options, one, text) for one in ("right", "left")]
        if all(gl.label_side(n.label) == one for n, one in zip(both, ("right", "left"))):
            return [n.code for n in both]
    return [_one(options, side, text).code]


def _one(options: list[Any], side: str, text: str) -> Any:
    """The billable node among `options` for the side and the encounter the text states."""
    sided = [n for n in options if gl.label_side(n.label) == side] if side else []
    options = sided or [n for n in options if gl.label_side(n.label) in ("", "unspecified")] or options
    if any(n.kind == "extension" for n in options):
        seventh = gl.encounter_character(text)
        options = [n for n in options if n.code.endswith(seventh)] or options
    words = set(tokenize(text))
    return min(
        options,
        key=lambda n: (-len(words & set(tokenize(n.label))), not gl.is_unspecified(n.label), len(n.code), n.code),
    )


__all__ = ["IndexReading", "billable_for", "read_phrase"]
