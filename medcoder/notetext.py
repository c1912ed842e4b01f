"""A note as text: the checks every note passes before any work, and excerpts of it for prompts."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from medcoder.errors import MedcoderError

T = TypeVar("T")


class NoteError(MedcoderError):
    """A note that cannot be coded: empty, binary, or too long."""


# byte-order marks of the encodings a note file may come in (Windows tools save UTF-16 with one)
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8"),
    (b"\xff\xfe", "utf-16-le", "UTF-16 LE"),
    (b"\xfe\xff", "utf-16-be", "UTF-16 BE"),
)


def note_encoding(data: str | bytes) -> str:
    """The encoding a note's bytes are read in: utf-8, utf-8-sig, utf-16-le or utf-16-be (text: "text")."""
    if isinstance(data, str):
        return "text"
    return next((codec for bom, codec, _ in _BOMS if data.startswith(bom)), "utf-8")


def decode_note(data: bytes) -> str:
    """A note file's bytes as text: UTF-8, or UTF-8 / UTF-16 LE / UTF-16 BE with a byte-order mark."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec.replace("-sig", ""))
            except UnicodeDecodeError as exc:
                raise NoteError(
                    f"the note starts with a {name} byte-order mark but is not {name} text "
                    f"(byte {exc.start + len(bom)})"
                ) from exc
    if b"\x00" in data[:8192]:  # UTF-16 without a mark reads as binary too: save it with one, or as UTF-8
        raise NoteError("the note is binary, not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(f"the note is not UTF-8 or UTF-16 text (byte {exc.start})") from exc


def read_note(data: str | bytes, max_chars: int) -> str:
    """Check a note before any work is done: text, not empty, not binary, within the size limit."""
    if isinstance(data, bytes):
        data = decode_note(data)
    if "\x00" in data:
        raise NoteError("the note is binary, not text")
    if not data.strip():
        raise NoteError("the note is empty")
    if len(data) > max_chars:
        raise NoteError(
            f"the note has {len(data):,} characters, over the workflow's limit of {max_chars:,} (max_note_chars)"
        )
    return data


def locate(text: str, needle: str) -> tuple[int, int] | None:
    """Where `needle` occurs in `text`: exactly, ignoring case, or ignoring runs of whitespace."""
    needle = needle.strip().strip('"').strip()
    if len(needle) < 2:
        return None
    i = text.find(needle)
    if i >= 0:
        return i, i + len(needle)
    i = text.lower().find(needle.lower())
    if i >= 0:
        return i, i + len(needle)
    words = [re.escape(w) for w in needle.split()]
    if not words:
        return None
    m = re.search(r"\s+".join(words), text, re.IGNORECASE)
    return (m.start(), m.end()) if m else None


def same_length_text(note: str) -> str:
    """The note with Windows (CRLF) and old Mac (CR) line endings read as line ends, every offset unchanged (a
    "\r" before "\n" becomes a space): the layout rules read lines, and evidence offsets must stay the file's."""
    return note.replace("\r\n", " \n").replace("\r", "\n") if "\r" in note else note


def excerpt(note: str, start: int, end: int, chars: int) -> str:
    """The note around a span, cut at line or sentence ends where possible."""
    lo = max(0, start - chars // 2)
    hi = min(len(note), end + chars // 2)
    cut = note.find("\n", lo, start)
    lo = cut + 1 if cut >= 0 else lo
    return note[lo:hi].strip()


def apart(spans: Iterable[tuple[int, int]]) -> list[int]:
    """Indexes of the spans that do not overlap an earlier one: what to show when a sentence and the problem
    line inside it both found a code (the same words twice read as noise)."""
    kept: list[tuple[int, int]] = []
    out = []
    for i, (a, b) in enumerate(spans):
        if all(b <= lo or a >= hi for lo, hi in kept):
            kept.append((a, b))
            out.append(i)
    return out


def snippet(note: str, start: int, end: int, context: int = 30, span_chars: int = 80) -> tuple[str, str, str]:
    """(before, span, after): the evidence with some context on each side, cut at word boundaries, an ellipsis
    where the note goes on, line breaks as spaces; a long span keeps its first words. For terminals."""

    def _flat(text: str) -> str:
        return " ".join(text.split())

    span = _flat(note[start:end])
    if len(span) > span_chars:
        cut = span.rfind(" ", 0, span_chars)
        span = span[: cut if cut > span_chars // 2 else span_chars].rstrip(" ,;:") + "…"
    lo = max(0, start - context)
    if lo > 0:
        while lo < start and not note[lo - 1].isspace():  # start at the beginning of a word
            lo += 1
    hi = min(len(note), end + context)
    if hi < len(note):
        while hi > end and not note[hi].isspace():  # end at the end of a word
            hi -= 1
    before, after = _flat(note[lo:start]), _flat(note[end:hi])
    lead = ("…" if lo > 0 and before else "") + before + (" " if note[lo:start][-1:].isspace() else "")
    tail = (" " if note[end:hi][:1].isspace() else "") + after + ("…" if hi < len(note) and after else "")
    return lead, span, tail


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


# a sentence ends at . ! ? before a capital, but not after a title ("Mr. Walker reports ...")
# (or before an inline bullet: a note flattened to one paragraph keeps its "•" items)
_SENTENCE = re.compile(r"\S.*?(?:(?<!\bMr)(?<!\bMrs)(?<!\bMs)(?<!\bDr)(?<!\bSt)[.!?](?=\s+[A-Z•])|$)")


def sentences(text: str) -> Iterator[tuple[int, int, str]]:
    """The note's sentences as (start, end, text): lines first (notes put one finding per line), then
    sentence ends within a line. The one splitter that retrieval, the ranker's features and the rules share."""
    for line in re.finditer(r"[^\n]+", text):
        base = line.start()
        for m in _SENTENCE.finditer(line.group()):
            s = m.group().strip()
            if len(s) > 3:
                start = base + m.start()
                yield start, start + len(s), s
