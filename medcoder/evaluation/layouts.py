"""The same visit note in the layouts other clinics write: SOAP, abbreviated headers, no headers, one paragraph,
a numbered problem list, lower-case headers, Windows line endings, bullets.

A note's codes should not depend on its layout: the layout benchmark (`benchmarks/note_formats.py`) and the
tests code each variant of a coded note against the same reference codes. Variants are built from the note's
own headers (`visit.sections.find_headers`), so only the layout changes, never a word of the content.
"""

from __future__ import annotations

import re
from typing import Callable

from medcoder.notetext import sentences
from medcoder.visit.sections import find_headers

# canonical header name -> SOAP letter (what a SOAP note files it under)
_SOAP = {
    "chief_complaint": "S",
    "history_of_present_illness": "S",
    "past_medical_history": "S",
    "family_history": "S",
    "social_history": "S",
    "medications": "S",
    "allergies": "S",
    "review_of_systems": "S",
    "physical_examination": "O",
    "results": "O",
    "assessment": "A",
    "assessment_and_plan": "A",
    "discharge_diagnoses": "A",
    "plan": "P",
    "instructions": "P",
}
# canonical header name -> the abbreviation many notes use
_ABBREVIATED = {
    "chief_complaint": "CC",
    "history_of_present_illness": "HPI",
    "past_medical_history": "PMH",
    "family_history": "FH",
    "social_history": "SH",
    "medications": "Meds",
    "allergies": "All",
    "review_of_systems": "ROS",
    "physical_examination": "PE",
    "results": "Labs/Imaging",
    "assessment": "Assessment",
    "assessment_and_plan": "A/P",
    "plan": "Plan",
    "instructions": "Instructions",
}


def _blocks(note: str) -> list[tuple[str, str, str]]:
    """(canonical header name, header as written, body) for each section; ("", "", text) before the first."""
    heads = find_headers(note)
    out: list[tuple[str, str, str]] = []
    if not heads:
        return [("", "", note.strip())]
    if note[: heads[0][0]].strip():
        out.append(("", "", note[: heads[0][0]].strip()))
    for i, (start, body, name, title) in enumerate(heads):
        end = heads[i + 1][0] if i + 1 < len(heads) else len(note)
        out.append((name, title, note[body:end].strip()))
    return out


def _join(parts: list[str]) -> str:
    return "\n\n".join(p for p in parts if p) + "\n"


def soap(note: str) -> str:
    """Headers written the SOAP way: one `S:` / `O:` / `A:` / `P:` where the letter changes."""
    parts, last = [], ""
    for name, _, body in _blocks(note):
        letter = _SOAP.get(name, last or "S")
        parts.append(f"{letter}:\n{body}" if letter != last else body)
        last = letter
    return _join(parts)


def abbreviated(note: str) -> str:
    """Headers abbreviated and inline with their text ("HPI: Ms. Thompson is ...")."""
    return _join(
        [f"{_ABBREVIATED.get(name, title.title())}: {body}" if name else body for name, title, body in _blocks(note)]
    )


def no_headers(note: str) -> str:
    """The sections' text in order with no header at all (a dictated note)."""
    return _join([body for _, _, body in _blocks(note)])


def one_paragraph(note: str) -> str:
    """The whole note, headers removed, as one paragraph."""
    return " ".join(" ".join(body.split()) for _, _, body in _blocks(note)) + "\n"


def lower_headers(note: str) -> str:
    """Headers in lower case with a colon ("assessment and plan:")."""
    return _join([f"{title.lower()}:\n{body}" if name else body for name, title, body in _blocks(note)])


def crlf(note: str) -> str:
    """The note as written, saved with Windows line endings."""
    return note.replace("\r\n", "\n").replace("\n", "\r\n")


def bullets(note: str) -> str:
    """Headers kept; every sentence of a section a bullet of its own ("- ...")."""
    parts = []
    for name, title, body in _blocks(note):
        items = "\n".join("- " + re.sub(r"^[-*•]\s*", "", s) for _, _, s in sentences(body))
        parts.append(f"{title}:\n{items}" if name else items)
    return _join(parts)


_PROBLEM_HEAD = re.compile(r"^(?:\d+\.\s*)?(?P<problem>[^.\n]{3,90}?)\.?\s*$")


def problem_list(note: str) -> str:
    """The assessment and plan as one numbered problem list, a problem a line with its plan after a dash
    ("1. Congestive heart failure – Medical Reasoning: ... Medical Treatment: ..."); other sections as written."""
    parts: list[str] = []
    lines: list[str] = []
    items: list[tuple[str, list[str]]] = []
    first_is_problem = False
    at = -1  # where the assessment and plan goes: the place of its first section
    for name, title, body in _blocks(note):
        if name not in ("assessment_and_plan", "assessment", "plan"):
            parts.append(f"{title}\n{body}" if name else body)
            continue
        at = len(parts) if at < 0 else at
        current: tuple[str, list[str]] | None = None
        for raw in body.splitlines():
            line = raw.strip()
            if not line:
                continue
            if re.match(r"^[•*\-]", line) and current is not None:
                current[1].append(re.sub(r"^[•*\-]\s*", "", line))
                continue
            m = _PROBLEM_HEAD.match(line)
            if m and len(line.split()) <= 10:
                current = (m.group("problem").strip(), [])
                first_is_problem = first_is_problem if lines or items else True
                items.append(current)
            else:
                current = None
                lines.append(line)
    if at >= 0:
        numbered = [f"{i}. {p}" + (" – " + " ".join(rest) if rest else "") for i, (p, rest) in enumerate(items, 1)]
        lead = 0 if first_is_problem else 1  # a summary line before the problems stays first
        parts.insert(at, "ASSESSMENT AND PLAN\n" + "\n".join(lines[:lead] + numbered + lines[lead:]))
    return _join(parts)


VARIANTS: dict[str, Callable[[str], str]] = {
    "as written": lambda note: note,
    "SOAP": soap,
    "abbreviated headers": abbreviated,
    "no headers": no_headers,
    "one paragraph": one_paragraph,
    "numbered problem list": problem_list,
    "lower-case headers": lower_headers,
    "CRLF line endings": crlf,
    "bullets": bullets,
}
