"""The visit rules over a visit note's accepted codes, in the order they run (`apply_guidelines`): the assessment's
problems coded (the Alphabetic Index's reading of each problem line, else the candidate the line names), the Index's
reading over a sibling, the words the Index gives a meaning (a site, high sugars), laterality and the 7th character,
the hard outpatient rules (`guidelines.OUTPATIENT_RULES`), then the coding conventions (`visit.conventions`).

They work on any `VisitCode` (the ranker's `RankedCode` is one) and make the codes they add with the caller's
`make` (code, source): the visit package knows nothing of the ranker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Collection, Protocol, Sequence, TypeVar

from medcoder.knowledge.abbreviations import expand, spell_out
from medcoder.knowledge.lexical import tokenize
from medcoder.knowledge.ontology import CodeSystem
from medcoder.visit import guidelines as gl
from medcoder.visit.conventions import DEFAULT_CONVENTIONS, Coded, NoteSentence, apply_conventions
from medcoder.visit.index_phrase import IndexReading, billable_for, read_phrase
from medcoder.visit.layout import VisitLayout, read_layout
from medcoder.visit.spans import SearchSpan, Sighting, problem_spans, sentence_spans


class VisitCode(Protocol):
    """A scored code as the visit rules read and change it."""

    code: str
    probability: float
    evidence: list[Sighting]
    sources: list[str]
    accepted: bool
    rule: str  # the rule that set it aside or changed it
    reason: str  # what the rule found, in words
    specified_from: str  # the code before a rule re-specified it
    score: float  # the raw score: orders codes at the same probability
    decision: str  # what decided the code last (`ranking.decisions.DECISIONS`)
    index_read: bool  # an assessment line's complete Alphabetic Index reading is this code


C = TypeVar("C", bound=VisitCode)
NewCode = Callable[[str, str], C]  # (code, source) -> a code no source scored, proposed by `source`


def best_first(r: VisitCode) -> tuple[float, float, str]:
    """Probability, then the raw score (isotonic calibration is a step function: ties are common), then code."""
    return -r.probability, -r.score, r.code


ASSESSED_SHARE = 0.5  # a problem the assessment names is coded when its best code reaches this share of the threshold
INDEXED_PROBABILITY = 0.8  # a problem line the Index reads whole: 66 of its 83 codes (0.795) are the reference code on
# the ACI-Bench training lines, after the rules that follow (combination codes, hyperglycemia)


def _names(onto: CodeSystem, code: str, line: str) -> bool:
    """Whether a problem line names the code by a word of its label (the Index's reading of the line is tried
    first, by `read_phrase`; a candidate only the Index search links to is not named: "Tick bite" is not
    spotted fever, "Painful swallowing" beside "Denies dysphagia" is not dysphagia)."""
    return bool(gl.sentence_words(onto.label(code)) & set(tokenize(expand(line))))


def _certain_part(line: str) -> str:
    """The words of a problem line before its first uncertainty cue: "Left shoulder pain, most likely due to
    rotator cuff tendinopathy" states the pain, not the tendinopathy (Section IV.H)."""
    cue = gl.UNCERTAIN_CUE.search(line)
    if not cue:
        return line
    return re.sub(r"\b(?:most|more|very|quite|is|are|was)\s*$", "", line[: cue.start()].strip(" ,;-")).strip(" ,;-")


@dataclass(frozen=True)
class _LineReading:
    """An assessment line read through the Index: its certain words, the reading, and the billable codes when the
    reading is complete and the line states the finding as present (else none)."""

    part: str
    reading: IndexReading | None
    codes: tuple[str, ...]


def _read_lines(onto: CodeSystem, problems: Sequence[SearchSpan]) -> dict[str, _LineReading]:
    """Each assessment line's Index reading, by its text: read once for every rule that asks."""
    out: dict[str, _LineReading] = {}
    for text in {s.read or s.text for s in problems if s.section == "plan"}:
        part = _certain_part(text)
        reading = read_phrase(onto, spell_out(part)) if part else None
        present = reading and reading.complete and gl.finding_status(text, reading.covered) == "present"
        codes = tuple(billable_for(onto, reading.code, text)) if reading and present else ()
        out[text] = _LineReading(part, reading, codes)
    return out


def _code_assessed_problems(
    onto: CodeSystem,
    ranked: list[C],
    threshold: float,
    problems: Sequence[SearchSpan],
    readings: dict[str, _LineReading],
    make: NewCode[C],
) -> list[C]:
    """Every problem the assessment names is coded (Section IV: code what was assessed or treated at the visit).
    A problem line of the assessment/plan that no accepted code rests on gets, in order:
    - the code the Alphabetic Index reads from the whole line's certain words (`index_phrase.read_phrase`,
      then the laterality and 7th character the line states), at its measured precision `INDEXED_PROBABILITY`;
    - else its likeliest present candidate that the line names (`_names`), when that one is at least
      `ASSESSED_SHARE` of the threshold.
    Returns the codes the Index added that were not candidates."""
    covered = {(e.start, e.end) for r in ranked if r.accepted for e in r.evidence if e.source == "problem"}
    coded_categories = {r.code[:3] for r in ranked if r.accepted}
    lines = {(s.start, s.end): s for s in problems if s.section == "plan" and (s.start, s.end) not in covered}
    certain = {key: part for key, s in lines.items() if (part := readings[s.read or s.text].part)}
    named: dict[tuple[int, int], C] = {}  # the likeliest candidate each line names
    for r in ranked:  # best first
        if r.probability < ASSESSED_SHARE * threshold:
            break
        for e in r.evidence:
            key = (e.start, e.end)
            if (
                e.source == "problem"
                and e.status == "present"
                and key in certain
                and key not in named
                and r.code in onto
                and _names(onto, r.code, certain[key])
            ):
                named[key] = r
    by_code = {r.code: r for r in ranked}
    added: list[C] = []
    for key, part in certain.items():
        span = lines[key]
        reading, codes = readings[span.read or span.text].reading, readings[span.read or span.text].codes
        indexed = max((by_code[c].probability for c in codes if c in by_code), default=-1.0)
        if (
            key in named
            and (  # the Index names the category; within it the ranker, which reads the whole note
                not codes or (named[key].code[:3] in {c[:3] for c in codes} and named[key].probability >= indexed)
            )
        ):
            r = named[key]
            if not r.accepted and r.code[:3] not in coded_categories:  # a sibling already codes the problem
                r.accepted, r.rule, r.reason = True, "assessed-problem", f'the assessment names it ("{part[:80]}")'
                r.decision = "named"
            continue
        for code in [c for c in codes if c[:3] not in coded_categories or (c in by_code and by_code[c].accepted)]:
            line = Sighting("problem", span.text, span.start, span.end, 1, 1.0, section="plan", status="present")
            r = by_code.get(code) or make(code, "index")
            if code not in by_code:
                by_code[code] = r
                added.append(r)
            if not r.accepted:  # the line it was coded from is its first evidence
                r.evidence = [line] + [e for e in r.evidence if (e.source, e.start, e.end) != ("problem", *key)]
                r.accepted, r.rule, r.decision, r.index_read = True, "assessed-problem", "index", True
                r.probability = max(r.probability, INDEXED_PROBABILITY)
                r.reason = f'the assessment names it ("{span.text[:80]}"; Index: {reading.path() if reading else ""})'
        coded_categories |= {c[:3] for c in codes if c in by_code and by_code[c].accepted}
    return added


def _refines(onto: CodeSystem, code: str, read: str) -> bool:
    """Whether `code` says more than the Index's reading `read` of the same category: the reading is unspecified
    or without complications, and the code is not an "other" code the line does not name."""
    general = onto.label(read).lower()
    return ("unspecified" in general or "without" in general) and not onto.label(code).lower().startswith("other")


def _index_over_sibling(
    onto: CodeSystem, ranked: list[C], problems: Sequence[SearchSpan], readings: dict[str, _LineReading]
) -> None:
    """Within a category, the Alphabetic Index's complete reading of an assessment line wins over the ranker's
    sibling ("Constipation" is K59.00, not K59.09 "Other constipation"; "Abnormal weight gain" is R63.5, not R63.4),
    unless the sibling refines it (E11.65 beside a line the Index reads as E11.9)."""
    by_code = {r.code: r for r in ranked}
    for span in [s for s in problems if s.section == "plan"]:
        reading, codes = readings[span.read or span.text].reading, readings[span.read or span.text].codes
        if reading is None or not codes:
            continue
        for c in codes:
            if c in by_code:
                by_code[c].index_read = True
        if any(by_code[c].accepted for c in codes if c in by_code) or len(codes) != 1:
            continue
        read = codes[0]
        for r in [r for r in by_code.values() if r.accepted and r.code[:3] == read[:3] and r.code in onto]:
            if not _refines(onto, r.code, read):
                why = f'the Index reads the assessment\'s "{span.text[:60]}" as {read} ({reading.path()})'
                _recode(by_code, r, read, "index-reading", why)
                r.decision, r.index_read = "index", True
                break
    ranked[:] = list(by_code.values())


def apply_guidelines(
    onto: CodeSystem,
    ranked: list[C],
    note: str,
    threshold: float = 0.5,
    problems: Sequence[SearchSpan] = (),
    conventions: Collection[str] = DEFAULT_CONVENTIONS,
    *,
    make: NewCode[C],
) -> list[C]:
    """The outpatient coding guidelines over a visit note's accepted codes: the assessment's problems (and any
    `problems` a model listed) are coded,
    each code is specified to the laterality and 7th character its evidence states, then the hard rules of
    `guidelines.OUTPATIENT_RULES` set codes aside or combine them, each with its rule and reason; last the coding
    conventions. The codes a rule adds are made by `make` (code, source)."""
    layout = read_layout(note)
    if not layout.is_visit:  # the outpatient guidelines are for visit notes (measured: on CodiEsp's case
        return ranked  # reports they cost dev micro-F1 0.473 -> 0.418, see docs/visit-notes.md)
    parts = layout.parts()
    lines = problem_spans(note, layout) + list(problems)
    readings = _read_lines(onto, lines)
    ranked = ranked + _code_assessed_problems(onto, ranked, threshold, lines, readings, make)
    _index_over_sibling(onto, ranked, lines, readings)
    context = " ".join(note[a:b] for a, b, p in parts if p in ("cc", "hpi"))[:2000]
    cc = " ".join(note[a:b] for a, b, p in parts if p == "cc")
    by_code = {r.code: r for r in ranked}
    # what the note states (not a conversation's questions) says whether the sugars are high
    _specify_by_words(onto, by_code, ranked, [s.text for s in sentence_spans(note, layout) if not s.read])
    accepted = [r for r in by_code.values() if r.accepted]
    for r in accepted:
        texts = " ".join(e.text for e in r.evidence if e.status in ("", "present"))
        side_text = texts if gl.side_of(texts) else texts + " " + cc
        new, why = gl.specify(
            onto, r.code, side_text + " " + context if onto.node(r.code).kind == "extension" else side_text
        )
        if new != r.code:  # already coded, this one adds nothing and is set aside
            _respecify(by_code, r, new, why, f"the text supports {new} ({why})")
    accepted = [r for r in by_code.values() if r.accepted]
    findings = [
        gl.CodedFinding(
            r.code,
            r.probability,
            onto.label(r.code),
            [e.text for e in r.evidence if e.source in ("sentence", "problem")],
            [e.status for e in r.evidence if e.source in ("sentence", "problem") and e.status],
            any(e.section == "plan" for e in r.evidence),
            [e.section for e in r.evidence if e.source in ("sentence", "problem") and e.status],
        )
        for r in accepted
    ]
    for r, outcome in zip(accepted, gl.apply_outpatient_rules(findings)):
        if outcome.action == "drop":
            r.accepted, r.rule, r.reason, r.decision = False, outcome.rule, outcome.reason, "set-aside"
        elif outcome.action == "replace" and outcome.new_code in onto:
            _recode(by_code, r, outcome.new_code, outcome.rule, outcome.reason)
    _apply_conventions(onto, by_code, layout, threshold, conventions, make)
    return sorted(by_code.values(), key=best_first)


def _apply_conventions(
    onto: CodeSystem,
    by_code: dict[str, C],
    layout: VisitLayout,
    threshold: float,
    use: Collection[str],
    make: NewCode[C],
) -> None:
    """The coding conventions (`visit.conventions`) over the accepted codes: a code re-specified or added by one
    is decided by it ("convention"), resting on the sentence that supports it."""
    if not use:
        return
    coded = [
        Coded(r.code, onto.label(r.code), tuple(e.text for e in r.evidence if e.status in ("", "present")))
        for r in by_code.values()
        if r.accepted and r.code in onto
    ]
    sentences = [NoteSentence(s.start, s.end, s.read or s.text, s.part) for s in layout.sentences if not s.header_line]
    for ch in apply_conventions(coded, sentences, onto, use):
        if ch.action == "replace" and ch.code in by_code:
            r = by_code[ch.code]
            if ch.new in by_code and by_code[ch.new].accepted:
                r.accepted, r.rule, r.reason, r.decision = (
                    False,
                    ch.rule,
                    f"{ch.new} is coded ({ch.reason})",
                    "set-aside",
                )
            else:
                _recode(by_code, r, ch.new, ch.rule, ch.reason)
                r.decision = "convention"
        elif ch.action == "drop" and ch.code in by_code:
            r = by_code[ch.code]
            r.accepted, r.rule, r.reason, r.decision = False, ch.rule, ch.reason, "set-aside"
        elif ch.action == "add":
            r = by_code.get(ch.new) or make(ch.new, "convention")
            by_code[ch.new] = r
            if ch.sentence is not None:
                s = ch.sentence
                line = Sighting("sentence", s.text, s.start, s.end, 1, 1.0, section=s.part, status="present")
                r.evidence = [line] + [e for e in r.evidence if (e.start, e.end) != (s.start, s.end)]
            r.accepted, r.rule, r.reason, r.decision = True, ch.rule, ch.reason, "convention"
            r.probability = max(r.probability, threshold)


def _specify_by_words(onto: CodeSystem, by_code: dict[str, C], ranked: list[C], sentences: list[str]) -> None:
    """What the Index says a word means: a code of "unspecified site" becomes the note's candidate for the site
    its evidence names (M19.90 with "his knee" -> M17.9); diabetes without complications becomes diabetes with
    hyperglycemia when one of the note's `sentences` says the sugars are high ("uncontrolled" means hyperglycemia)."""
    labelled = [(r.code, onto.label(r.code)) for r in ranked if r.code in onto]
    for r in [r for r in ranked if r.accepted]:
        if r.code not in onto:
            continue
        evidence = " ".join(e.text for e in r.evidence if e.status in ("", "present"))
        site = gl.specify_site(onto.label(r.code), evidence, [c for c in labelled if c[0] != r.code])
        if site:
            _respecify(
                by_code,
                r,
                site,
                f"the evidence names the site ({onto.label(site)})",
                f"the text supports {site}, coded instead",
            )
        plain = gl.without_hyperglycemia(r.code, sentences)
        if plain != r.code and plain in onto:
            _respecify(
                by_code,
                r,
                plain,
                "no sentence says the sugars are high (hyperglycemia needs it)",
                f"{plain} is coded: no sentence says the sugars are high",
            )
        new, sentence = gl.with_hyperglycemia(r.code, sentences)
        if new != r.code and new in onto:
            _respecify(
                by_code,
                r,
                new,
                f'"uncontrolled" / high sugars mean hyperglycemia ("{sentence[:80]}")',
                f'{new} says more ("{sentence[:80]}")',
            )


def _respecify(by_code: dict[str, C], r: C, new: str, why: str, set_aside: str) -> None:
    """`r` becomes `new` for `why`; when another accepted code already is `new`, `r` is set aside instead, for
    `set_aside`: the one outcome of every word the Index gives a meaning (a site, high or no high sugars)."""
    if new in by_code and by_code[new].accepted and by_code[new] is not r:
        r.accepted, r.rule, r.reason, r.decision = False, "specified", set_aside, "set-aside"
    else:
        _recode(by_code, r, new, "specified", why)


def _recode(by_code: dict[str, C], r: C, new: str, rule: str, reason: str) -> None:
    """`r` becomes `new` (keeping where it came from and why); a candidate already holding `new` is folded
    into it, its probability kept when higher."""
    taken = by_code.pop(new, None)
    by_code.pop(r.code, None)
    r.specified_from, r.code, r.rule, r.reason = r.code, new, rule, reason
    if r.decision in ("ranker", "named"):  # an Index reading stays one: the Index gave its specificity
        r.decision = "specified"
    r.probability = max(r.probability, taken.probability if taken else 0.0)
    by_code[new] = r
