"""Sections of a clinical note by their headers (HPI, Medications, Assessment and Plan ...), with offsets.

A rule-only splitter below the agents, so the section splitter agent, the drug coder's features
and evaluation read a note's sections the same way. `section_kind` folds the many header names
into the few kinds a ranker learns from.
"""

from __future__ import annotations

import re
from typing import Sequence

from medcoder.notetext import same_length_text
from medcoder.records import Section

# canonical section name -> header spellings (lower case, without the trailing colon)
HEADERS: dict[str, tuple[str, ...]] = {
    "chief_complaint": (
        "chief complaint",
        "chief complaints",
        "cc",
        "reason for visit",
        "reason for consultation",
        "presenting complaint",
    ),
    "history_of_present_illness": (
        "history of present illness",
        "hpi",
        "history of the present illness",
        "present illness",
        "interval history",
        "history",
    ),
    "past_medical_history": (
        "past medical history",
        "pmh",
        "medical history",
        "past history",
        "past surgical history",
        "psh",
        "surgical history",
        "pmhx",
        "pshx",
        "medical and surgical history",
    ),
    "medications": (
        "medications",
        "current medications",
        "meds",
        "medication",
        "home medications",
        "discharge medications",
        "medications on admission",
    ),
    "allergies": ("allergies", "allergy", "all", "drug allergies"),
    "family_history": ("family history", "fh", "fhx", "family medical history"),
    "social_history": ("social history", "sh", "shx"),
    "review_of_systems": ("review of systems", "ros", "review of symptoms"),
    "physical_examination": (
        "physical examination",
        "physical exam",
        "exam",
        "examination",
        "vital signs",
        "vitals",
        "pe",
        "exam findings",
    ),
    "results": (
        "results",
        "labs",
        "laboratory",
        "imaging",
        "laboratory data",
        "studies",
        "diagnostic studies",
        "data",
        "lab results",
        "labs/imaging",
    ),
    "assessment_and_plan": (
        "assessment and plan",
        "assessment & plan",
        "a/p",
        "a&p",
        "a & p",
        "assessment/plan",
        "impression and plan",
        "impression & plan",
        "impression/plan",
        "assessment and recommendations",
    ),
    "assessment": ("assessment", "impression", "diagnosis", "diagnoses", "dx", "a", "clinical impression"),
    "plan": ("plan", "recommendations", "p", "treatment plan", "plan of care"),
    # SOAP's coarse headers: which visit part each sentence under them is, the sentence's own words say
    "subjective": ("subjective", "s"),
    "objective": ("objective", "o"),
    "discharge_diagnoses": (
        "discharge diagnoses",
        "discharge diagnosis",
        "final diagnoses",
        "final diagnosis",
        "principal diagnosis",
        "secondary diagnoses",
    ),
    "hospital_course": ("hospital course", "course"),
    "instructions": ("instructions", "patient instructions", "follow-up", "follow up"),
}
_BY_SPELLING = {s: name for name, spellings in HEADERS.items() for s in spellings}
_LINE_HEADER = re.compile(r"^[ \t]*(?P<title>[A-Za-z][A-Za-z /&\-']{0,60}?)[ \t]*(?::|$)", re.MULTILINE)
_JOINED = re.compile(r"\s*(?:/|&|\band\b)\s*")


def _key(title: str) -> str:
    """A header's title as the vocabulary spells it: lower case, without surrounding dashes or spaces."""
    return title.strip().lower().strip(" -")


def _canonical(key: str) -> str | None:
    """The canonical name of a header as written (lower case): a known spelling, or spellings joined by "/", "&"
    or "and" ("PMH/PSH/FH/SH" is history, "Impression/Plan" the assessment and plan); None when unknown."""
    name = _BY_SPELLING.get(key)
    if name is not None:
        return name
    names = [_BY_SPELLING.get(p) for p in _JOINED.split(key) if p]
    if len(names) < 2 or None in names:
        return None
    if {"assessment", "plan"} <= set(names):
        return "assessment_and_plan"
    return names[0]


def find_headers(note: str) -> list[tuple[int, int, str, str]]:
    """(start of header, start of body, canonical name, title as written) for each known header."""
    found = []
    note = same_length_text(note)
    for m in _LINE_HEADER.finditer(note):
        title = m.group("title").strip()
        key = _key(title)
        name = _canonical(key)
        line_end = note.find("\n", m.start())
        line_end = len(note) if line_end < 0 else line_end
        has_colon = note[m.end() - 1 : m.end()] == ":"
        alone = not note[m.end() : line_end].strip()
        if len(key) == 1 and not has_colon:  # "S:" is SOAP's header; a lone letter on its line is not
            continue
        if name is None and alone and title.isupper() and len(title.split()) <= 6 and len(title) > 3:
            name = re.sub(r"[^a-z]+", "_", key).strip("_")  # an unknown ALL-CAPS header line
        if name is None or not (has_colon or alone):
            continue
        body = m.end() if has_colon else line_end
        found.append((m.start(), body, name, title))
    return found


def header_end(line: str) -> int:
    """Where a line's text begins after an inline header it starts with ("Assessment: Left shoulder pain" -> 12);
    0 when it starts with none."""
    m = _LINE_HEADER.match(line)
    if not m or line[m.end() - 1 : m.end()] != ":" or _canonical(_key(m.group("title"))) is None:
        return 0
    return m.end() + len(line[m.end() :]) - len(line[m.end() :].lstrip())


def split_by_rules(note: str) -> list[Section]:
    """The note's sections by their headers, numbered s0, s1 ... (none when it has no header)."""
    headers = find_headers(note)
    sections: list[Section] = []
    if headers and note[: headers[0][0]].strip():
        sections.append(Section(name="preamble", start=0, end=headers[0][0]))
    for i, (start, body, name, title) in enumerate(headers):
        end = headers[i + 1][0] if i + 1 < len(headers) else len(note)
        sections.append(Section(name=name, title=title, start=body, end=end, header_start=start))
    return [s.model_copy(update={"id": f"s{i}"}) for i, s in enumerate(sections)]


# section name -> the kind a ranker learns from
_KINDS = {
    "medications": "medications",
    "allergies": "allergies",
    "assessment_and_plan": "plan",
    "assessment": "plan",
    "plan": "plan",
    "instructions": "plan",
    "discharge_diagnoses": "plan",
    "history_of_present_illness": "hpi",
    "chief_complaint": "hpi",
    "past_medical_history": "history",
    "family_history": "history",
    "social_history": "history",
    "review_of_systems": "exam",
    "physical_examination": "exam",
    "results": "exam",
}


def section_kind(name: str) -> str:
    """medications | allergies | plan | hpi | history | exam | other, from a section's canonical name."""
    return _KINDS.get(name, "other")


def section_at(sections: Sequence[Section], offset: int) -> str:
    """The name of the section holding a character offset ("" when none does)."""
    for s in sections:
        header = s.start if s.header_start is None else s.header_start
        if s.start <= offset < s.end or header <= offset < s.end:
            return s.name
    return ""
