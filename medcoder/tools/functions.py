"""The knowledge functions that agents, the chat session and the CLI all call.

Each takes plain arguments and returns JSON-ready data, so the same call can be logged to
the audit trail, printed as a table, or handed to a model as a tool result.
"""

from __future__ import annotations

from typing import Any

from medcoder.errors import MedcoderError, UnknownCodeError
from medcoder.knowledge import KnowledgeBase, default_kb
from medcoder.knowledge.abbreviations import spell_out
from medcoder.knowledge.index import TermIndex, entries_with_trails
from medcoder.knowledge.retrieval import RANKERS, HybridRetriever, SearchFilter
from medcoder.knowledge.systems import DEFAULT_SYSTEM
from medcoder.visit.index_phrase import billable_for, read_phrase


def _kb(kb: KnowledgeBase | None) -> KnowledgeBase:
    return kb or default_kb()


def lookup_code(code: str, system: str = DEFAULT_SYSTEM, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """A code's record with the path from the top of its tree down to it."""
    onto = _kb(kb).ontology(system)
    node = onto.node(code)
    return {**node.to_dict(), "system": system, "path": [n.code for n in onto.path(node.code)]}


def children(code: str, system: str = DEFAULT_SYSTEM, kb: KnowledgeBase | None = None) -> list[dict[str, Any]]:
    onto = _kb(kb).ontology(system)
    return [{"code": n.code, "label": n.label, "kind": n.kind, "billable": n.billable} for n in onto.children(code)]


def path_to_root(code: str, system: str = DEFAULT_SYSTEM, kb: KnowledgeBase | None = None) -> list[dict[str, Any]]:
    onto = _kb(kb).ontology(system)
    return [{"code": n.code, "label": n.label, "kind": n.kind, "depth": n.depth} for n in onto.path(code)]


def code_notes(code: str, system: str = DEFAULT_SYSTEM, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """Every instructional note that applies to a code, including those inherited from above."""
    onto = _kb(kb).ontology(system)
    canon = onto.resolve(code)
    notes = onto.notes(canon)
    return {"code": canon, "label": onto.label(canon), "notes": notes}


def validate_code(code: str, system: str = DEFAULT_SYSTEM, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """Is this a code one may report: does it exist, is it billable, does it lack a 7th character?"""
    onto = _kb(kb).ontology(system)
    canon = onto.normalize(code)
    out: dict[str, Any] = {"input": code, "code": canon, "system": system}
    if canon not in onto:
        out.update(exists=False, billable=False, valid=False)
        fixed = onto.suggest(canon)
        if fixed:
            out.update(message=f"not a code: placeholder X missing; did you mean {fixed}?", suggestion=fixed)
            return out
        hint = onto.nearest(canon)
        out["message"] = f"not a {system} code" + (f"; nearest existing code above it: {hint}" if hint else "")
        if hint:
            out["nearest"] = hint
        return out
    node = onto.node(canon)
    out.update(exists=True, label=node.label, kind=node.kind, billable=node.billable, valid=node.billable)
    if node.billable:
        out["message"] = "valid, billable"
    elif node.attrs.get("needs_seventh"):
        kids = [c.code for c in onto.children(canon)]
        out.update(
            needs_seventh=True,
            placeholder_x=bool(node.attrs.get("placeholder_x")),
            seventh_characters=onto.seventh_characters(canon),
            suggestions=kids,
        )
        how = "placeholder X then a 7th character" if node.attrs.get("placeholder_x") else "a 7th character"
        out["message"] = f"not billable: needs {how} ({', '.join(kids)})"
    else:
        out["message"] = f"not billable: a {node.kind}; choose one of its {len(onto.children(canon))} children"
        out["suggestions"] = [c.code for c in onto.children(canon)]
    return out


def validate_codes(
    codes: list[str], system: str = DEFAULT_SYSTEM, kb: KnowledgeBase | None = None
) -> list[dict[str, Any]]:
    return [validate_code(c, system, kb) for c in codes]


def excludes1_conflicts(
    codes: list[str], kb: KnowledgeBase | None = None, system: str = DEFAULT_SYSTEM
) -> list[dict[str, str]]:
    """Pairs of codes in a set that an Excludes1 note forbids together (systems without the rule: none)."""
    return _kb(kb).ontology(system).excludes1_conflicts(codes)


def search_codes(
    text: str,
    system: str = DEFAULT_SYSTEM,
    k: int = 10,
    billable_only: bool = False,
    kb: KnowledgeBase | None = None,
    mode: str = "hybrid",
    chapter: str | None = None,
    kinds: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Codes for the words a clinician writes, best first: BM25, MiniLM vectors and the Alphabetic
    Index fused (`mode` hybrid), or one ranker alone (`lexical`, `dense`); filters by chapter and kind."""

    if not text.strip():
        raise MedcoderError("empty search text")
    if mode not in ("hybrid", *RANKERS):
        raise MedcoderError(f"unknown search mode {mode!r}; choose hybrid, {', '.join(RANKERS)}")
    retriever = _retrievers.get((id(_kb(kb)), mode))
    if retriever is None:
        retriever = HybridRetriever(_kb(kb), rankers=RANKERS if mode == "hybrid" else (mode,))
        _retrievers[(id(_kb(kb)), mode)] = retriever
    filt = SearchFilter(chapter, tuple(kinds or ()), billable_only)
    return [h.to_dict() for h in retriever.search(text, system, k, filt)]


_retrievers: dict[tuple[int, str], HybridRetriever] = {}


def _table_lookup(table: TermIndex, term: str, k: int) -> dict[str, Any]:
    if not term.strip():
        raise MedcoderError("empty index term")
    walked = table.lookup(term)
    return {
        "query": term,
        "source": table.source,
        "walk": entries_with_trails(table, walked),
        "code": next((e.code or e.linked for e in reversed(walked) if e.code or e.linked), None),
        "search": entries_with_trails(table, table.search(term, k)),
    }


def index_lookup(term: str, k: int = 5, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """Walk the Alphabetic Index by a comma-separated term ("diabetes, type 2"), plus a word search."""
    return _table_lookup(_kb(kb).alphabetic_index, term, k)


def drug_lookup(term: str, k: int = 5, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """The Table of Drugs and Chemicals row for a substance: poisoning, adverse effect, underdosing codes."""
    return _table_lookup(_kb(kb).drug_table, term, k)


def neoplasm_lookup(term: str, k: int = 5, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """The Neoplasm Table row for a site: malignant, in situ, benign, uncertain, unspecified codes."""
    return _table_lookup(_kb(kb).neoplasm_table, term, k)


def read_diagnosis(phrase: str, kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """A diagnosis phrase read through the Alphabetic Index as a coder reads it ("Right wrist Colles fracture"):
    the trail, the code it leads to, the billable code(s) for the side and 7th character it states, and the
    words the Index did not read (a reading with none left is complete, and is what visit notes are coded by)."""
    onto = _kb(kb).ontology(DEFAULT_SYSTEM)  # the Alphabetic Index is ICD-10-CM's
    reading = read_phrase(onto, spell_out(phrase))
    if reading is None:
        return {"phrase": phrase, "trail": [], "code": None, "billable": [], "complete": False, "unread": []}
    billable = billable_for(onto, reading.code, phrase)
    return {
        "phrase": phrase,
        "trail": list(reading.trail),
        "code": reading.code,
        "billable": [{"code": c, "label": onto.label(c)} for c in billable],
        "complete": reading.complete,
        "unread": sorted(reading.words - reading.covered),
    }


__all__ = [
    "UnknownCodeError",
    "children",
    "code_notes",
    "drug_lookup",
    "excludes1_conflicts",
    "index_lookup",
    "lookup_code",
    "neoplasm_lookup",
    "path_to_root",
    "read_diagnosis",
    "search_codes",
    "validate_code",
    "validate_codes",
]
