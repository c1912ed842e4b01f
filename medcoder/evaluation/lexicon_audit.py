"""The drug lexicon audited against coded notes: every drug it finds that the note's reference does not code.

A lexicon entry that is an everyday or instruction word ("bedtime", "topicals", "in tact") shows up here as a
drug no reference codes; a dataset coded in another system (CodiEsp's ICD-10 diagnoses) has no drug reference,
so each of its hits is listed and a reviewer tells the real drugs from the words.
"""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from medcoder.knowledge.atc import ATC
from medcoder.knowledge.druglex import DrugLexicon, DrugMention
from medcoder.notetext import sentences
from medcoder.ranking.datasets import Dataset, Example, load_dataset
from medcoder.ranking.drugs import candidates_of

logger = logging.getLogger(__name__)

# the coded visit notes (reference ATC codes) and the CodiEsp case reports (ICD-10 only: no drug reference)
ACI_FILES = ("train", "train2", "valid", "train-dialogue", "train2-dialogue", "valid-dialogue")
CODIESP_SPLITS = ("train", "dev")
# what a reviewer may say of a listed hit: a drug the reference did not code; an ATC substance named in another
# role (a lab value, a stain, a marker); a reading the lexicon gets wrong, listed until it is fixed
VERDICTS = ("drug", "substance", "wrong")
WINDOW = 60  # characters either side of a hit when its sentence is longer than CONTEXT_MAX
CONTEXT_MAX = 2 * WINDOW + 40


@dataclass(frozen=True, slots=True)
class AuditHit:
    """One drug the lexicon found in a note whose reference does not code it."""

    dataset: str
    note_id: str
    text: str
    via: str
    substances: tuple[str, ...]
    context: str

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        """What the hits are grouped by: the same words read the same way as the same substances."""
        return (self.text.lower(), self.via, self.substances)


@dataclass(frozen=True, slots=True)
class Review:
    """A reviewer's verdict on one (text, via, substances) the audit lists, with the reason."""

    text: str
    via: str
    substances: tuple[str, ...]
    verdict: str
    why: str

    @property
    def key(self) -> tuple[str, str, tuple[str, ...]]:
        return (self.text, self.via, self.substances)


@dataclass
class AuditGroup:
    """The hits of one (text, via, substances), most frequent first in a report."""

    text: str
    via: str
    substances: tuple[str, ...]
    count: int = 0
    notes: set[tuple[str, str]] = field(default_factory=set)
    examples: list[AuditHit] = field(default_factory=list)


class _Candidates:
    """A mention's candidate codes, worked out once per (substances, code): notes repeat the same drugs."""

    def __init__(self, lex: DrugLexicon) -> None:
        self.lex = lex
        self._seen: dict[tuple[tuple[str, ...], str | None], frozenset[str]] = {}

    def __call__(self, mention: DrugMention) -> frozenset[str]:
        key = (mention.substances, mention.code)
        if key not in self._seen:
            self._seen[key] = frozenset(c.code for c in candidates_of(self.lex, mention))
        return self._seen[key]


def _context(sentence: str, start: int, end: int) -> str:
    """The sentence itself, or a window around the hit when the sentence is a long run-on line."""
    if len(sentence) <= CONTEXT_MAX:
        return sentence
    lo, hi = max(0, start - WINDOW), min(len(sentence), end + WINDOW)
    return ("…" if lo else "") + sentence[lo:hi] + ("…" if hi < len(sentence) else "")


def audit_note(
    lex: DrugLexicon, ex: Example, dataset: str, coded: bool, candidates: _Candidates | None = None
) -> list[AuditHit]:
    """The note's hits outside its reference: each mention whose candidate codes meet none of the note's codes
    (every mention when `coded` is false: the dataset codes no drugs)."""
    cands = candidates or _Candidates(lex)
    reference = {c.upper() for c in ex.codes} if coded else set()
    hits: list[AuditHit] = []
    for _, _, sentence in sentences(ex.text):
        for m in lex.find(sentence):
            if coded and cands(m) & reference:
                continue
            hits.append(AuditHit(dataset, ex.id, m.text, m.via, m.substances, _context(sentence, m.start, m.end)))
    return hits


def audit_datasets(lex: DrugLexicon, datasets: Iterable[tuple[str, Dataset]]) -> list[AuditHit]:
    """Every hit outside the reference over the named datasets; a dataset not coded in ATC has no drug
    reference, so all its hits are listed."""
    cands = _Candidates(lex)
    hits: list[AuditHit] = []
    for name, ds in datasets:
        coded = ds.system == ATC.system
        before = len(hits)
        for ex in ds.examples:
            hits += audit_note(lex, ex, name, coded, cands)
        logger.info("lexicon audit: %s, %d notes, %d hits outside the reference", name, len(ds), len(hits) - before)
    return hits


def group_hits(hits: Sequence[AuditHit], examples: int = 3) -> list[AuditGroup]:
    """Hits grouped by (text lower-cased, via, substances), most frequent first, with a few examples each."""
    groups: dict[tuple[str, str, tuple[str, ...]], AuditGroup] = {}
    for h in hits:
        g = groups.setdefault(h.key, AuditGroup(*h.key))
        g.count += 1
        g.notes.add((h.dataset, h.note_id))
        if len(g.examples) < examples:
            g.examples.append(h)
    return sorted(groups.values(), key=lambda g: (-g.count, g.via, g.text))


def counts_by_via(hits: Sequence[AuditHit]) -> dict[str, dict[str, int]]:
    """How many hits and distinct (text, substances) each way of recognising a drug gave."""
    n = Counter(h.via for h in hits)
    distinct = Counter(via for _, via, _ in {h.key for h in hits})
    return {via: {"hits": n[via], "distinct": distinct[via]} for via in sorted(n, key=lambda v: -n[v])}


def audit_datasets_at(shared: Path) -> list[tuple[str, Dataset]]:
    """Every dataset the audit reads under a shared data folder, named as in reports: the coded ACI-Bench
    notes (ATC lines) and the CodiEsp splits; a missing file is skipped with a warning."""
    out: list[tuple[str, Dataset]] = []
    for name in ACI_FILES:
        path = shared / "aci-bench-coded" / f"{name}.jsonl"
        if path.is_file():
            out.append((f"aci-bench-coded/{name}", load_dataset(path, system=ATC.system)))
        else:
            logger.warning("lexicon audit: %s is missing", path)
    for split in CODIESP_SPLITS:
        path = shared / "codiesp" / split
        if path.is_dir():
            out.append((f"codiesp/{split}", load_dataset(path)))
        else:
            logger.warning("lexicon audit: %s is missing", path)
    return out


def substances_field(substances: Sequence[str]) -> str:
    """Substance keys as one TSV field ("oxicodon+paracetamol")."""
    return "+".join(substances)


def load_reviewed(path: Path) -> dict[tuple[str, str, tuple[str, ...]], Review]:
    """The reviewed hits (TSV: text, via, substances, verdict, why; lines starting with # are comments)."""
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    out: dict[tuple[str, str, tuple[str, ...]], Review] = {}
    for row in csv.DictReader(lines, delimiter="\t", quoting=csv.QUOTE_NONE):
        subs = tuple(s for s in row["substances"].split("+") if s)
        review = Review(row["text"].lower(), row["via"], subs, row["verdict"], row["why"])
        if review.verdict not in VERDICTS:
            raise ValueError(f"{path}: verdict {review.verdict!r} for {review.text!r} is not one of {VERDICTS}")
        out[review.key] = review
    return out
