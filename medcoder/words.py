"""Words of a text as search and the test model count them: lower case, no stopwords, light stemming.

Shared by BM25 code search and the fake model, which must not depend on the knowledge layer.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    "a an and as at by for from in into of on or other than the to with without w due nos unspecified specified".split()
)


def stem(token: str) -> str:
    """Very light suffix folding so that plurals meet their singular."""
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("s") and not token.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def tokenize(text: str, keep_stopwords: bool = False) -> list[str]:
    words = _TOKEN.findall(text.lower())
    return [stem(w) for w in words if keep_stopwords or w not in STOPWORDS]
