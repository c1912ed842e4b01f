"""What the ranker searches in a note: its sentences, the problems it names and the extracted mentions, each with
its offsets into the note and the visit part it sits in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from medcoder.knowledge.abbreviations import abbreviations
from medcoder.notetext import same_length_text
from medcoder.records import Entity, Span
from medcoder.visit.layout import VisitLayout, read_layout
from medcoder.visit.parts import coarse
from medcoder.visit.sections import header_end


@dataclass(slots=True)
class SearchSpan:
    """A piece of the note that was searched: a sentence or a mention, with offsets into the note."""

    text: str
    start: int
    end: int
    source: str = "sentence"
    assertion: str = "present"
    section: str = ""
    read: str = ""  # the text to read when it is not the quoted text (a question the patient answered "no")


@dataclass(slots=True)
class Sighting:
    """Where a candidate was found: a sentence, a problem line or a mention, its character span and the hit's rank
    (kept as a dataclass: a note makes thousands; `span()` is the evidence a proposal carries)."""

    source: str  # sentence | problem | mention
    text: str
    start: int
    end: int
    rank: int
    score: float
    via: str = ""  # the non-billable hit this billable code descends from, if any
    assertion: str = "present"
    section: str = ""  # the visit part it sits in (cc, hpi, exam, plan ...)
    status: str = ""  # how its sentence states the code's finding (guidelines.finding_status)

    def span(self) -> Span:
        return Span(start=self.start, end=self.end, text=self.text)


def sentence_spans(text: str, layout: VisitLayout | None = None) -> list[SearchSpan]:
    """The note's sentences with their offsets and the visit part each sits in (`visit.read_layout`); of a
    conversation, what was said that is not small talk or an instruction to the recording assistant."""
    layout = read_layout(text) if layout is None else layout
    spoken = layout.kind == "conversation"
    return [
        SearchSpan(s.text, s.start, s.end, section=coarse(s.part), read=s.read)
        for s in layout.sentences
        if len(s.text) > 3
        and re.search(r"[A-Za-z]{3}", s.text)
        and not (spoken and (s.part == "other" or len(s.text.split()) < 3))
    ]


_BULLET = re.compile(r"^\s*(?:[-*•·#]|\d{1,2}[.)]|[a-z][.)])\s*")
_LISTED = re.compile(r"^\s*(?:#|\d{1,2}[.)])\s*")  # a numbered or "#" problem list item
_ITEM_END = re.compile(r"\s+[–—-]\s+|\s*[:;]\s+|\s*[:;]?$|,\s+(?=(?:continue|start|stop|increase|decrease|f/u)\b)")
_NOT_A_PROBLEM = re.compile(
    r"\b(i|we|he|she|they|you|will|would|should|recommend\w*|discuss\w*|advis\w*|"
    r"continue|order\w*|follow|return|call|schedule\w*|refer\w*|prescrib\w*|start\w*|"
    r"medical reasoning|patient education|additional testing|medical treatment|"
    r"monitor\w*|notify|agree\w*|explain\w*|understand\w*|the patient)\b",
    re.IGNORECASE,
)
_VERB = re.compile(r"\b(is|are|was|were|has|have|had|does|did|reports?|states?|shows?|presents?|agrees?)\b", re.I)


def problem_spans(text: str, layout: VisitLayout | None = None) -> list[SearchSpan]:
    """The problems a visit note names: the short lines of its assessment/plan and its chief complaint
    ("Congestive heart failure.", "1. Right knee sprain.", "IMPRESSION: ..."), the problem of a numbered or "#"
    list item ("1. HTN – continue lisinopril", "#Type 2 DM: A1c 8.1"), the short verbless sentences of an
    assessment run into one paragraph, and the problems a clinician states in a conversation; each searched on
    its own."""
    layout = read_layout(text) if layout is None else layout
    text = same_length_text(text)
    out = [SearchSpan(text[a:b], a, b, "problem", section="plan", read=_spoken(p)) for a, b, p in layout.problems]
    for start, end, part in layout.parts() if layout.kind != "conversation" else []:
        if part not in ("plan", "cc"):
            continue
        line_start = text.rfind("\n", 0, start) + 1
        if _BULLET.fullmatch(text[line_start:start] + " ") or not text[line_start:start].strip():
            start = line_start  # the line's list number ("1.") belongs to its problem
        for line in re.finditer(r"[^\n]+", text[start:end]):
            raw = line.group()
            here = start + line.start()
            ls = text.rfind("\n", 0, here) + 1
            le = text.find("\n", here)
            le = len(text) if le < 0 else le
            lead = text[ls:here][header_end(text[ls:le]) :]  # what stands before it on its line, past a header
            if (lead.strip() and not _BULLET.fullmatch(lead + " ")) or text[start + line.end() : le].strip():
                # a stretch of a longer line (a note run into one paragraph): its problem headings only
                out += [
                    p for p in _run_in_problems(text, ls, text[ls:le], part) if here <= p.start < start + line.end()
                ]
                continue
            body = _BULLET.sub("", raw[header_end(raw) :]).strip().rstrip(".:")
            if _LISTED.match(raw):  # a list item: its problem is what comes before a dash or colon
                cut = _ITEM_END.search(body)
                body = body[: cut.start()].strip().rstrip(".") if cut else body
            words = body.split()
            if len(words) > 12 and part == "plan":
                out += _run_in_problems(text, here, raw)
            if not (1 <= len(words) <= 12) or _NOT_A_PROBLEM.search(body) or not re.search(r"[A-Za-z]{3}", body):
                continue
            offset = here + raw.index(body[:1])
            out.append(SearchSpan(body, offset, offset + len(body), "problem", section=part))
    return out


_RUN_IN = re.compile(
    r"(?:^|(?<=[.!?]\s)|(?<=•\s))(?!(?:Mrs?|Ms|Dr|St)\.)([A-Z][^.!?•]{2,80}?)\.(?=\s+(?:[A-Z•]|[-*]\s|\d{1,2}[.)]\s))"
)


def _spoken(phrase: str) -> str:
    """A spoken problem phrase with its abbreviations written as a note writes them ("chf" -> "CHF"), so they are
    spelled out like a note's: a transcript is in lower case."""
    table = abbreviations()
    words = [w.upper() if len(w) >= 3 and w.upper() in table else w for w in phrase.split()]
    for i in range(1, len(words)):  # "type two diabetes", "stage three": the Index writes the number
        if words[i - 1].lower() in _NUMBERED and words[i].lower() in _NUMBERS:
            words[i] = str(_NUMBERS.index(words[i].lower()) + 1)
    return " ".join(words)


_NUMBERED = {"type", "stage", "grade", "class", "level", "degree", "phase"}
_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")


def _run_in_problems(text: str, base: int, line: str, section: str = "plan") -> list[SearchSpan]:
    """The problem headings of an assessment run into one line ("... problems. Congestive heart failure. • Medical
    Reasoning: ..."): short sentences without a verb, each followed by more text."""
    out = []
    for m in _RUN_IN.finditer(line):
        body = re.sub(r"\s+(?:Mrs?|Ms|Dr)$", "", m.group(1).strip())  # "• Iron deficiency anemia Mrs. Cooper is"
        words = body.split()
        if 1 <= len(words) <= 12 and not _NOT_A_PROBLEM.search(body) and not _VERB.search(body):
            out.append(SearchSpan(body, base + m.start(1), base + m.start(1) + len(body), "problem", section=section))
    return out


def note_spans(text: str) -> list[SearchSpan]:
    """What the ranker searches in a note: every sentence and every problem the note names."""
    layout = read_layout(text)
    return sentence_spans(text, layout) + problem_spans(text, layout)


def mention_spans(entities: Iterable[Entity], kind: str) -> list[SearchSpan]:
    """Extracted mentions of the system's entity kind as searchable spans."""
    out = []
    for e in entities:
        if e.kind != kind:
            continue
        text = " ".join(x for x in (e.mention, e.text) if x).strip()
        if text:
            out.append(SearchSpan(e.mention or text, e.start, e.end, "mention", e.assertion, e.section))
    return out
