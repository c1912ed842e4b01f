"""Text in a note that talks to the coder instead of about the patient: found, blanked, recorded.

A note is data. Sentences that instruct a model or a coder ("ignore previous instructions",
"assign code Z99.89", "SYSTEM:"), chat-template tokens, HTML comments, invisible Unicode
(tag characters, bidi and zero-width marks) and codes written into the text are found on a
normalized copy (NFKC, look-alike letters folded, hidden characters decoded), then blanked
with spaces in the text the agents read, so offsets and evidence stay exact while no code can
rest on them. The run's audit trail records every blanked span and why.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# letters that look Latin in other scripts (Cyrillic, Greek), folded before matching
_LOOKALIKE = str.maketrans(
    "АВЕКМНОРСТХІЅЈаеорсухіјѕԁɡοαερτυνΑΕΗΙΚΜΝΟΡΤΥΧ", "ABEKMHOPCTXISJaeopcyxijsdgoaeptuvAEHIKMNOPTYX"
)
_END = r"(?:[.!?;](?=\s|$)|\n|$)"  # a span runs to the end of its sentence, clause or line
_TO_END = r"[^\n]*?" + _END
_CLAUSE = r"(?:[^\n.!?;]|\.(?=\d))"  # within one clause (a code's dot does not end it)
_HIDDEN = re.compile("[\U000e0000-\U000e007f\u202a-\u202e\u2066-\u2069]+")  # tag characters, bidi controls

_RULES: list[tuple[str, re.Pattern[str]]] = [
    (
        "instruction override",
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.!?;]{0,60}?\b(?:instructions?|prompts?|rules?|"
            r"guidelines?|everything|all of the|the above|previous|prior|earlier|system)\b" + _TO_END,
            re.I,
        ),
    ),
    (
        "role play",
        re.compile(
            r"\b(?:you are now|from now on,? you|act as|pretend (?:to be|you)|as an ai|language model|jailbreak|"
            r"developer mode|new instructions?|updated instructions?)\b" + _TO_END,
            re.I,
        ),
    ),
    (
        "chat markup",
        re.compile(
            r"<\|[a-z_]{2,20}\|>|\[/?INST\]|<</?SYS>>|</?s>|^[ \t#>*\[(<-]*(?:system|assistant|developer|instructions?|"
            r"prompt)\s*(?:message|prompt|override|note)?\s*\**\s*[:\]>)]" + _TO_END,
            re.I | re.M,
        ),
    ),
    (
        "prompt request",
        re.compile(
            r"\b(?:reveal|print|show|repeat|output|tell me|display|leak)\b"
            + _CLAUSE
            + r"{0,40}?\b(?:system prompt|your prompt|"
            r"the prompt|your instructions|hidden instructions|initial instructions)\b" + _TO_END,
            re.I,
        ),
    ),
    (
        "coding instruction",
        re.compile(
            r"\b(?:output|assign|add|include|return|emit|print|bill|report|append|insert|use|enter|select|apply|"
            r"must (?:be )?cod(?:e|ed)|should (?:be )?cod(?:e|ed))\b" + _CLAUSE + r"{0,40}?"
            r"\b(?:codes?(?!\s*status)|icd(?:-?10)?(?:-?cm)?|atc|billing)\b"
            + _TO_END
            + r"|\bcode (?:this|it|the)(?: (?:note|patient|visit|encounter|case|chart))? (?:as|with)\b"
            + _TO_END,
            re.I,
        ),
    ),
    (
        "address to the model",
        re.compile(
            r"\b(?:note|message|attention|instructions?|reminder)\s+(?:to|for)\s+(?:the\s+)?(?:ai|model|llm|coder|"
            r"coding (?:ai|system|assistant|model|tool)|assistant|system|chatbot|medcoder)\b" + _TO_END,
            re.I,
        ),
    ),
    (
        "coding instruction",
        re.compile(
            _CLAUSE
            + r"*\b(?:must|should|shall|needs? to|has to) be (?:coded|billed|assigned|added|reported)\b"
            + _TO_END
            + r"|\b(?:the\s+)?(?:ai|model|llm|assistant|chatbot|coder|coding (?:system|tool|assistant))\s+"
            r"(?:must|should|shall|will|needs? to|has to)\b" + _TO_END,
            re.I,
        ),
    ),
    (
        "instruction override",
        re.compile(  # the same, in Spanish (CodiEsp-style notes)
            r"\b(?:ignora|ignore|olvida|omite)\b"
            + _CLAUSE
            + r"{0,60}?\b(?:instrucciones|indicaciones|anteriores|previas)\b"
            + _TO_END
            + r"|\b(?:a[ñn]ade|asigna|agrega|incluye)\b"
            + _CLAUSE
            + r"{0,40}?\bc[óo]digos?\b"
            + _TO_END,
            re.I,
        ),
    ),
    ("html comment", re.compile(r"<!--.*?(?:-->|$)", re.S)),
    (
        "written code",
        re.compile(
            r"\b[A-TV-Z]\d{2}\.[0-9A-Z]{1,4}\b|"
            r"\b[A-Z]\d{2}[A-Z]{2}\d{2}\b"
        ),
    ),
]


_state = {"enabled": True}


def set_enabled(on: bool) -> None:
    """Switch the guard (benchmarks switch it off to measure what it prevents); not a user setting."""
    _state["enabled"] = on
    _find.cache_clear()
    coding_text.cache_clear()


@dataclass(frozen=True)
class Suspect:
    """A span of the note (character offsets) that agents do not read, and the rule that found it."""

    start: int
    end: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "reason": self.reason}


def _normalized(note: str) -> tuple[str, list[int]]:
    """The note as matching sees it, and for each of its characters the note offset it came from."""
    out: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(note):
        cp = ord(ch)
        if 0xE0020 <= cp <= 0xE007E:  # tag characters: invisible ASCII
            text = chr(cp - 0xE0000)
        elif unicodedata.category(ch) == "Cf":  # zero-width and bidi marks: dropped
            continue
        else:
            text = unicodedata.normalize("NFKC", ch).translate(_LOOKALIKE) if cp > 127 else ch
        out.append(text)
        where.extend([i] * len(text))
    return "".join(out), where


@lru_cache(maxsize=64)
def _find(note: str) -> tuple[Suspect, ...]:
    if not _state["enabled"]:
        return ()
    norm, where = _normalized(note)
    found: list[Suspect] = []
    for reason, pattern in _RULES:
        for m in pattern.finditer(norm):
            if m.end() > m.start():
                found.append(Suspect(where[m.start()], where[m.end() - 1] + 1, reason))
    # each run of invisible characters (tag characters, bidi controls); the visible text they wrap is judged by
    # the rules above on the normalized copy, so a right-to-left note keeps its words
    found += [Suspect(m.start(), m.end(), "hidden characters") for m in _HIDDEN.finditer(note)]
    return tuple(sorted((_continued(note, s) for s in found), key=lambda s: (s.start, s.end)))


def _continued(note: str, s: Suspect) -> Suspect:
    """A span that stops at a line break mid-sentence (the next line starts in lower case) takes that line too."""
    end = s.end
    while True:
        brk = end - 1 if end and note[end - 1] == "\n" else end if note[end : end + 1] == "\n" else -1
        if brk < 0 or not note[brk + 1 : brk + 2].islower():
            break
        stop = note.find("\n", brk + 1)
        end = len(note) if stop < 0 else stop + 1
    return s if end == s.end else Suspect(s.start, end, s.reason)


def suspects(note: str) -> list[Suspect]:
    """Every span the agents must not read, in note order (spans may overlap)."""
    return list(_find(note))


@lru_cache(maxsize=64)
def coding_text(note: str) -> str:
    """The note with its suspect spans blanked by spaces (newlines kept): same length, same offsets."""
    spans = _find(note)
    if not spans:
        return note
    chars = list(note)
    for s in spans:
        for i in range(s.start, s.end):
            if chars[i] != "\n":
                chars[i] = " "
    return "".join(chars)
