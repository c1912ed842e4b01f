"""A note as text: the checks every note passes before any work, and excerpts of it for prompts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from medcoder.errors import MedcoderError

T = TypeVar("T")


class NoteError(MedcoderError):
    """A note that cannot be coded: empty, binary, or too long."""


def read_note(data: str | bytes, max_chars: int) -> str:
    """Check a note before any work is done: text, not empty, not binary, within the size limit."""
    if isinstance(data, bytes):
        if b"\x00" in data[:8192]:
            raise NoteError("the note is binary, not text")
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError(f"the note is not UTF-8 text (byte {exc.start})") from exc
    if "\x00" in data:
        raise NoteError("the note is binary, not text")
    if not data.strip():
        raise NoteError("the note is empty")
    if len(data) > max_chars:
        raise NoteError(f"the note has {len(data):,} characters, over the workflow's limit of {max_chars:,} "
                        "(max_note_chars)")
    return data


def excerpt(note: str, start: int, end: int, chars: int) -> str:
    """The note around a span, cut at line or sentence ends where possible."""
    lo = max(0, start - chars // 2)
    hi = min(len(note), end + chars // 2)
    cut = note.find("\n", lo, start)
    lo = cut + 1 if cut >= 0 else lo
    return note[lo:hi].strip()


@dataclass
class Segment(Generic[T]):
    """A stretch of a note and the payloads of the spans that cover it (none: plain text)."""

    start: int
    end: int
    text: str
    covers: list[T] = field(default_factory=list)


def segments(note: str, spans: Iterable[tuple[int | None, int | None, T]]) -> list[Segment[T]]:
    """The note cut at every span boundary, each piece with the spans covering it, in the order given: what
    evidence highlighting draws (a run's HTML report, the review page). Spans are clipped to the note."""
    kept = [(max(0, a), min(len(note), b), p) for a, b, p in spans if a is not None and b is not None]
    kept = [s for s in kept if s[0] < s[1]]
    cuts = sorted({0, len(note), *(s[0] for s in kept), *(s[1] for s in kept)})
    return [Segment(a, b, note[a:b], [p for lo, hi, p in kept if lo <= a and b <= hi]) for a, b in zip(cuts, cuts[1:])]
