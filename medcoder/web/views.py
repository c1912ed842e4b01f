"""What the pages and the API show, built from a session and the audit store as plain data.

Both faces read the same views: the review page renders `review_view`, `/api/sessions/{id}` returns
it as JSON; the audit page renders `audit_story`, `/api/runs/{id}/audit` returns it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from medcoder.audit.events import (
    DECISION,
    MODEL_CALL,
    NODE_END,
    NODE_START,
    RUN,
    SESSION_PREFIX,
    TOOL,
    kind_of,
    sentence,
)
from medcoder.audit.store import AuditStore
from medcoder.notetext import segments
from medcoder.records import CODE_STATUSES

if TYPE_CHECKING:
    from medcoder.session import ReviewState, Session


def code_key(system: str, code: str) -> str:
    """One id for a code across systems (`icd10cm:E11.65`), used in the page's data attributes."""
    return f"{system}:{code}"


def status_counts(statuses: Iterable[str]) -> dict[str, int]:
    """How many codes are proposed, accepted, rejected."""
    seen = list(statuses)
    return {status: seen.count(status) for status in CODE_STATUSES}


def _segments(note: str, spans: list[tuple[int, int, str, bool]]) -> list[dict[str, Any]]:
    """The note cut at every evidence boundary, each piece with the code keys covering it and whether a code
    in the list (not only a suggestion) covers it."""
    return [
        {
            "start": seg.start,
            "end": seg.end,
            "text": seg.text,
            "codes": list(dict.fromkeys(key for key, _ in seg.covers)),
            "listed": any(x for _, x in seg.covers),
        }
        for seg in segments(note, [(a, b, (key, listed)) for a, b, key, listed in spans])
    ]


def review_view(session: "Session", item: dict[str, Any]) -> dict[str, Any]:
    """Everything the review page shows: the note cut into highlighted segments, the codes ranked by
    confidence with their evidence and status, the suggestions below the threshold, the decisions; the
    rows are the session's `ReviewRow`s and the run's `CodedItem`s and `Suggestion`s, as JSON."""
    result = session.result
    note = result.note or session.note
    proposed = {(c.system, c.code): c for c in result.codes}
    codes = []
    review = session.review()  # one read of the review's checkpoint
    for row in review.codes:
        src = proposed.get((row.system, row.code))
        codes.append(
            {
                **row.model_dump(mode="json", exclude={"evidence"}),
                "key": code_key(row.system, row.code),
                "confidence": float(src.confidence if src else row.confidence),
                "evidence": [e.to_state() for e in src.evidence] if src else [],
                "critic": src.verdict.decision if src else "",
            }
        )
    codes.sort(key=lambda c: (c["origin"] != "medcoder", -c["confidence"]))
    listed = {c["key"] for c in codes}
    suggestions = []
    for s in result.suggestions:
        key = code_key(s.system, s.code)
        if key in listed:
            continue  # the coder added it: it is in the list now
        suggestions.append(
            {
                **s.model_dump(mode="json", include={"code", "system", "label", "confidence", "evidence"}),
                "key": key,
                "reason": s.reason or "",
            }
        )
    suggestions.sort(key=lambda s: -s["confidence"])
    spans = [(e["start"], e["end"], c["key"], True) for c in codes for e in c["evidence"]]
    spans += [(e["start"], e["end"], s["key"], False) for s in suggestions for e in s["evidence"]]
    decisions = review.decisions
    return {
        "id": session.id,
        "item": item,
        "note_chars": len(note),
        "codes": codes,
        "suggestions": suggestions,
        "segments": _segments(note, spans),
        "decisions": decisions,
        "version": len(decisions),
        "done": review.done,
        "counts": status_counts(c["status"] for c in codes),
        "rankers": session.rankers(),
        "workflow": result.workflow,
    }


def review_status(review: "ReviewState") -> str:
    """to review (no decision yet), in progress, done (the coder finished the note); from `Session.review()`."""
    if review.done:
        return "done"
    return "in progress" if review.decisions else "to review"


_DETAIL = {RUN, MODEL_CALL, TOOL, NODE_START, NODE_END}  # one click away on the audit page (the header shows the run)


def audit_story(store: AuditStore, run_id: str) -> dict[str, Any]:
    """A run's events as a story in two parts (the coding run, then the review), with the chain's verdict."""
    info = store.run(run_id)
    check = store.verify(info.run_id)
    chapters: list[dict[str, Any]] = [{"title": "Coding run", "events": []}]
    t0 = info.created
    for ev in store.events(info.run_id):
        if ev.kind.startswith(SESSION_PREFIX) and chapters[-1]["title"] == "Coding run":
            chapters.append({"title": "Review", "events": []})
        entry = kind_of(ev.kind)
        chapters[-1]["events"].append(
            {
                "seq": ev.seq,
                "at": round(ev.ts - t0, 2),
                "node": ev.node,
                "kind": ev.kind,
                "text": sentence(ev),
                "meaning": entry.meaning if entry else "",
                "decision": ev.kind == DECISION,
                "detail": ev.kind in _DETAIL or (entry is None),
            }
        )
    return {
        "run_id": info.run_id,
        "workflow": info.workflow,
        "status": info.status,
        "created": info.created,
        "finished": info.finished,
        "note_digest": info.note_digest,
        "models": {n: m.get("name") for n, m in info.settings.get("models", {}).items()},
        "verified": {"ok": check.ok, "events": check.events, "first_bad": check.first_bad, "reason": check.reason},
        "chapters": [c for c in chapters if c["events"]],
    }
