"""What an outpatient coder would fix in a note's predicted diagnosis codes, counted by kind.

Computed from the codes and the note's text alone, so every strategy (with or without evidence of its
own) is judged the same way: codes from normal or negated findings, symptoms beside their diagnosis,
unspecified codes beside a specific sibling, and the right code with the wrong side or 7th character.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable

from medcoder.knowledge.ontology import CodeSystem
from medcoder.ranking.candidates import sentence_spans
from medcoder.visit import guidelines as gl

FIX_KINDS = (
    "normal_or_negated",
    "symptom_beside_diagnosis",
    "unspecified_beside_specific",
    "wrong_side_or_7th_character",
)


def _statuses(onto: CodeSystem, code: str, readers: list[tuple[set[str], gl.SentenceReader]]) -> list[str]:
    """The statuses of the note's sentences that name most of the code's label words."""
    words = gl.sentence_words(onto.label(code))
    if not words:
        return []
    need = max(1, len(words) // 2)
    return [r.status(words) for sw, r in readers if len(words & sw) >= need]


def coder_fixes(onto: CodeSystem, note: str, predicted: Iterable[str], gold: Iterable[str]) -> Counter[str]:
    """Counts of the FIX_KINDS among the predicted codes (a code counts once, under its first kind)."""
    pred = [c for c in predicted if c in onto]
    gold_set = set(gold)
    readers = []
    for span in sentence_spans(note):
        reader = gl.SentenceReader(span.text)
        readers.append(({w for w, _ in reader.words}, reader))
    found = [gl.CodedFinding(c, 1.0, onto.label(c)) for c in pred]
    out: Counter[str] = Counter()
    gold_stems = {(g[:3], gl.stem_label(onto.label(g))): g for g in gold_set if g in onto}
    for f in found:
        if f.code in gold_set:
            continue
        statuses = _statuses(onto, f.code, readers)
        if statuses and all(s in ("negated", "normal") for s in statuses):
            out["normal_or_negated"] += 1
        elif gl.symptom_of_diagnosis(f, found):
            out["symptom_beside_diagnosis"] += 1
        elif gl.unspecified_beside_specific(f, [o for o in found if not gl.is_unspecified(o.label)]):
            out["unspecified_beside_specific"] += 1
        elif (f.code[:3], gl.stem_label(f.label)) in gold_stems:
            out["wrong_side_or_7th_character"] += 1
    return out


__all__ = ["FIX_KINDS", "coder_fixes"]
