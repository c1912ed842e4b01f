"""Sections of a clinical note by their headers (HPI, Medications, Assessment and Plan ...), with offsets.

A rule-only splitter below the agents, so the section splitter agent, the drug coder's features
and evaluation read a note's sections the same way. `section_kind` folds the many header names
into the few kinds a ranker learns from.
"""

from __future__ import annotations

import re
from typing import Sequence

from medcoder.records import Section

# canonical section name -> header spellings (lower case, without the trailing colon)
HEADERS: dict[str, tuple[str, ...]] = {
    "chief_complaint": ("chief complaint", "cc", "reason for visit", "reason for consultation", "presenting complaint"),
    "history_of_present_illness": (
        "history of present illness",
        "hpi",
        "history of the present illness",
        "present illness",
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
    "allergies": ("allergies", "allergy"),
    "family_history": ("family history", "fh", "family medical history"),
    "social_history": ("social history", "sh"),
    "review_of_systems": ("review of systems", "ros"),
    "physical_examination": ("physical examination", "physical exam", "exam", "examination", "vital signs", "vitals"),
    "results": ("results", "labs", "laboratory", "imaging", "laboratory data", "studies", "diagnostic studies"),
    "assessment_and_plan": (
        "assessment and plan",
        "assessment & plan",
        "a/p",
        "assessment/plan",
        "impression and plan",
    ),
    "assessment": ("assessment", "impression", "diagnosis", "diagnoses"),
    "plan": ("plan", "recommendations"),
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
_LINE_HEADER = re.compile(r"^[ \t]*(?P<title>[A-Za-z][A-Za-z /&\-']{1,60}?)[ \t]*(?::|$)", re.MULTILINE)


def find_headers(note: str) -> list[tuple[int, int, str, str]]:
    """(start of header, start of body, canonical name, title as written) for each known header."""
    found = []
    for m in _LINE_HEADER.finditer(note):
        title = m.group("title").strip()
        key = title.lower().strip(" -")
        name = _BY_SPELLING.get(key)
        line_end = note.find("\n", m.start())
        line_end = len(note) if line_end < 0 else line_end
        has_colon = note[m.end() - 1 : m.end()] == ":"
        alone = not note[m.end() : line_end].strip()
        if name is None and alone and title.isupper() and len(title.split()) <= 6 and len(title) > 3:
            name = re.sub(r"[^a-z]+", "_", key).strip("_")  # an unknown ALL-CAPS header line
        if name is None or not (has_colon or alone):
            continue
        body = m.end() if has_colon else line_end
        found.append((m.start(), body, name, title))
    return found


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


# section name -> where in a visit note it sits: finer than `section_kind`, for the diagnosis ranker
VISIT_PARTS = ("cc", "hpi", "history", "meds", "ros", "exam", "results", "plan", "other")
_VISIT = {
    "chief_complaint": "cc",
    "history_of_present_illness": "hpi",
    "past_medical_history": "history",
    "family_history": "history",
    "social_history": "history",
    "medications": "meds",
    "allergies": "meds",
    "review_of_systems": "ros",
    "physical_examination": "exam",
    "results": "results",
    "assessment_and_plan": "plan",
    "assessment": "plan",
    "plan": "plan",
    "discharge_diagnoses": "plan",
    "instructions": "plan",
}


def visit_part(name: str) -> str:
    """cc | hpi | history | meds | ros | exam | results | plan | other, from a section's canonical name."""
    return _VISIT.get(name, "other")


def visit_parts(note: str) -> list[tuple[int, int, str]]:
    """(start, end, part) of each section of the note by its headers; empty when the note has none."""
    return [(s.start, s.end, visit_part(s.name)) for s in split_by_rules(note)]


def part_at(parts: list[tuple[int, int, str]], offset: int) -> str:
    """The visit part holding a character offset ("other" outside every section)."""
    for start, end, part in parts:
        if start <= offset < end:
            return part
    return "other"


def is_visit_note(parts: list[tuple[int, int, str]]) -> bool:
    """A visit note: at least three of its sections are the parts of a visit (HPI, exam, plan ...)."""
    return len({p for _, _, p in parts if p != "other"}) >= 3
