"""A note's visit layout: each sentence's visit part, whether it is a visit at all, and the problems it states.

Headers win where they stand (`visit.sections.find_headers`, every vocabulary: the coded notes', SOAP's,
abbreviations, lower case, inline); a coarse header ("S:", "A/P") leaves the choice among its parts to the learned
sentence classifier, and no header leaves it every part. A conversation (`Doctor:` / `Patient:` turns) is read
by `conversation.read_conversation`. Whether a note is a visit is decided from its content (the note model), or
from three visit headers; a case report keeps its headers' parts only, as the case-report ranker learned them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from functools import lru_cache

from medcoder.notetext import same_length_text, sentences
from medcoder.records import Section
from medcoder.visit.classifier import shipped_model
from medcoder.visit.conversation import read_conversation, turns
from medcoder.visit.parts import PARTS, SECTION_NAMES, coarse, header_parts
from medcoder.visit.sections import split_by_rules

logger = logging.getLogger(__name__)

VISIT_THRESHOLD = 0.5  # the note model's P(visit) from which a note without visit headers is read as a visit


@dataclass(frozen=True)
class LayoutSentence:
    """A sentence with its visit part, where the part came from, and the text to read when it differs from the
    text (a question the patient answered "no" reads as denied)."""

    start: int
    end: int
    text: str
    part: str
    source: str  # header | classifier | conversation | none
    confidence: float = 1.0
    read: str = ""
    header_line: bool = False  # the sentence is a header's title only ("EXAM")
    header: str = ""  # the canonical name of the header it sits under ("" when none)


@dataclass
class VisitLayout:
    """How a note is laid out, read from its content."""

    kind: str  # visit | case | conversation
    visit_probability: float
    sentences: list[LayoutSentence] = field(default_factory=list)
    problems: list[tuple[int, int, str]] = field(default_factory=list)  # problems a conversation states
    header_parts: int = 0  # distinct visit parts the headers name

    @property
    def is_visit(self) -> bool:
        return self.kind in ("visit", "conversation")

    def parts(self) -> list[tuple[int, int, str]]:
        """(start, end, ranker part) of the note's stretches: neighbouring sentences of one part merged, each
        stretch running to the next one's first sentence or to the next header line, whichever comes first."""
        out: list[tuple[int, int, str]] = []
        open_ = False  # whether the last stretch still takes sentences
        for s in self.sentences:
            part = coarse(s.part)
            if open_ and (s.header_line or out[-1][2] != part):
                out[-1] = (out[-1][0], s.start, out[-1][2])
                open_ = False
            if s.header_line or open_:
                continue
            out.append((s.start, s.end, part))
            open_ = True
        if out and open_:
            out[-1] = (out[-1][0], max(out[-1][1], self.sentences[-1].end), out[-1][2])
        return out

    @property
    def from_headers(self) -> bool:
        """Every sentence sits under a header that names its section (not SOAP's coarse "S:" / "O:", not text
        before the first header): the note's sections are its headers' (the classifier may still have told the
        assessment from the plan under an "ASSESSMENT AND PLAN")."""
        return self.kind != "conversation" and all(
            s.header and s.header not in ("subjective", "objective", "preamble") for s in self.sentences
        )

    def sections(self, note: str) -> list[Section]:
        """The note's sections: by its headers where they say every part, else one per stretch of a visit part
        (named as the header of that part would be), with offsets into the note."""
        if self.from_headers:
            return split_by_rules(same_length_text(note))
        out: list[Section] = []
        for s in self.sentences:
            if s.header_line:
                continue
            name = SECTION_NAMES.get(s.part, "other")
            if out and out[-1].name == name:
                out[-1] = out[-1].model_copy(update={"end": s.end})
                continue
            out.append(Section(id=f"s{len(out)}", name=name, start=s.start, end=s.end, confidence=s.confidence))
        return out

    def summary(self) -> dict[str, object]:
        """What the audit trail records of the layout: kind, P(visit), and how many sentences each source placed."""
        sources: dict[str, int] = {}
        for s in self.sentences:
            sources[s.source] = sources.get(s.source, 0) + 1
        return {
            "kind": self.kind,
            "visit_probability": round(self.visit_probability, 3),
            "header_parts": self.header_parts,
            "sentences_by_source": sources,
            "problems": [p for _, _, p in self.problems],
        }


def read_layout(note: str) -> VisitLayout:
    """The note's layout (cached: the ranker, the rules and the drug coder each ask for the same note)."""
    return _read_layout(note)


@lru_cache(maxsize=32)
def _read_layout(note: str) -> VisitLayout:
    text = same_length_text(note)
    spoken = turns(text)
    if spoken:
        said, problems = read_conversation(text, spoken)
        return VisitLayout(
            "conversation",
            1.0,
            [LayoutSentence(s.start, s.end, s.text, s.part, "conversation", 1.0, s.read) for s in said],
            problems,
        )
    return _read_written(text)


def _read_written(text: str) -> VisitLayout:
    sections = split_by_rules(text)
    named = [s for s in sections if s.name != "preamble"]
    header_count = len({next(iter(c)) for s in named if len(c := {coarse(p) for p in header_parts(s.name)}) == 1})
    found = [(a, b, s) for a, b, s in sentences(text) if re.search(r"[A-Za-z]{3}", s)]
    model = shipped_model()
    probability = model.visit_probability(text)
    kind = "visit" if header_count >= 3 or probability >= VISIT_THRESHOLD else "case"
    out: list[LayoutSentence] = []
    content: list[int] = []  # indexes of the sentences the classifier reads (not header titles, not inline ones)
    allowed: list[tuple[str, ...]] = []
    for a, b, s in found:
        section = next(
            (x for x in sections if (x.start if x.header_start is None else x.header_start) <= a < x.end), None
        )
        options: tuple[str, ...]
        if section is None or section.name == "preamble":
            options = PARTS if kind == "visit" else ("other",)
        else:
            options = header_parts(section.name)
            if len(options) > 1 and kind != "visit":  # a case report keeps its headers' parts only
                options = options[:1] if len({coarse(p) for p in options}) == 1 else ("other",)
        if section is not None and section.header_start is not None and b <= section.start + 1:  # a title alone
            out.append(LayoutSentence(a, b, s, "other", "header", header_line=True, header=section.name))
            continue
        if section is not None and section.header_start is not None and a < section.start < b:
            # an inline header ("HPI: Ms. Thompson is ..."): its title is a line of its own, the sentence the rest
            body = section.start + len(text[section.start : b]) - len(text[section.start : b].lstrip())
            out.append(
                LayoutSentence(
                    a,
                    section.start,
                    text[a : section.start].strip(),
                    "other",
                    "header",
                    header_line=True,
                    header=section.name,
                )
            )
            a, s = body, text[body:b]
        if len(options) == 1:
            out.append(
                LayoutSentence(
                    a, b, s, options[0], "header" if section else "none", header=section.name if section else ""
                )
            )
        else:
            out.append(LayoutSentence(a, b, s, "other", "classifier", header=section.name if section else ""))
        content.append(len(out) - 1)
        allowed.append(options)
    if any(out[i].source == "classifier" for i in content):
        decoded = model.decode([out[i].text for i in content], allowed)
        for i, (part, p) in zip(content, decoded):
            old = out[i]
            if old.source == "classifier":
                out[i] = LayoutSentence(
                    old.start, old.end, old.text, part, "classifier", round(p, 3), header=old.header
                )
    return VisitLayout(kind, probability, out, [], header_count)
