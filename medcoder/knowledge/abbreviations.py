"""Clinical abbreviations a visit note uses for its problems ("CHF", "right knee MCL strain"), spelled out for search.

Code labels never use them, so a problem line that says "CHF." finds nothing by its words; the search text
gets the expansion beside the abbreviation ("CHF (congestive heart failure)") while the evidence a coder sees
stays the note's own words. Only abbreviations with one meaning in clinical notes are listed
(`data/clinical_abbreviations.tsv`, matched case-sensitively as whole tokens).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

_FILE = "clinical_abbreviations.tsv"


@lru_cache(maxsize=1)
def abbreviations() -> dict[str, str]:
    """abbreviation -> expansion, from the shipped table."""
    text = resources.files("medcoder.knowledge").joinpath("data", _FILE).read_text(encoding="utf-8")
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        abbr, _, expansion = line.partition("\t")
        if abbr.strip() and expansion.strip():
            out[abbr.strip()] = expansion.strip()
    return out


@lru_cache(maxsize=1)
def _pattern() -> re.Pattern[str]:
    keys = sorted(abbreviations(), key=len, reverse=True)
    return re.compile(r"(?<![A-Za-z0-9/-])(" + "|".join(re.escape(k) for k in keys) + r")(?![A-Za-z0-9/-])")


def expand(text: str) -> str:
    """`text` with each known abbreviation followed by its expansion in parentheses (unchanged when none)."""
    table = abbreviations()
    return _pattern().sub(lambda m: f"{m.group(1)} ({table[m.group(1)]})", text)


def spell_out(text: str) -> str:
    """`text` with each known abbreviation replaced by its expansion ("CHF" -> "congestive heart failure"):
    for reading a phrase through the Index, where the short form is a word no entry has."""
    table = abbreviations()
    return _pattern().sub(lambda m: table[m.group(1)], text)


__all__ = ["abbreviations", "expand", "spell_out"]
