"""How ICD-10-CM codes are written: with or without the dot, and as a user types a chapter or a block.

Its own module so that the code system (`icd10cm.py`) and its Alphabetic Index (`index.py`) share it
without importing each other.
"""

from __future__ import annotations

import re

_CHAPTER = re.compile(r"(?:CHAPTER|CH)?(\d{1,2})")
_BLOCK = re.compile(r"[A-Z]\d[0-9A-Z]-[A-Z]\d[0-9A-Z]")


def raw(code: str) -> str:
    """A code without its dot: `E11.65` -> `E1165`."""
    return code.replace(".", "")


def dotted(raw_code: str) -> str:
    """A code with its dot after the category: `E1165` -> `E11.65`."""
    return raw_code if len(raw_code) <= 3 else f"{raw_code[:3]}.{raw_code[3:]}"


def normalize_icd(code: str) -> str:
    """A code as the graph files it: `e11.65` -> `E11.65`, `ch4` or `4` -> `CH4`, `E08-E13` kept,
    `S22.5-` -> `S22.5`."""
    s = re.sub(r"\s+", "", str(code)).upper()
    m = _CHAPTER.fullmatch(s)
    if m:
        return f"CH{int(m.group(1))}"
    if _BLOCK.fullmatch(s):
        return s
    s = s.rstrip("-").rstrip(".")
    return dotted(s.replace(".", ""))
