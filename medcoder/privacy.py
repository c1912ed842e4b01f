"""Keeping a note's text out of what medcoder stores when asked to (`store_note=False`).

The audit trail then keeps codes, offsets, scores and the digest of every text that quoted the
note (prompts, mentions, evidence), so a chain still verifies and an auditor can match a note
they hold against it, while the home folder holds no sentence of the note.
"""

from __future__ import annotations

import hashlib
from typing import Any

_SHINGLE = 24  # a stored string holding any 24 characters of the note in a row is redacted


class NoteRedactor:
    """Replaces strings that quote the note by `{"redacted": sha256, "chars": n}`."""

    def __init__(self, note: str) -> None:
        self.note = note
        step = _SHINGLE // 2
        self._shingles = {
            note[i : i + _SHINGLE]
            for i in range(0, max(1, len(note) - _SHINGLE + 1), step)
            if note[i : i + _SHINGLE].strip()
        }

    def quotes(self, text: str) -> bool:
        if len(text) >= 8 and text.strip() and text.strip() in self.note:
            return True
        return len(text) >= _SHINGLE + _SHINGLE // 2 and any(s in text for s in self._shingles)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            if self.quotes(value):
                return {"redacted": hashlib.sha256(value.encode()).hexdigest(), "chars": len(value)}
            return value
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self(v) for v in value]
        return value
